"""A tiny dataset in the official TD-MPC2 multitask chunk format, for the offline reader's tests.

Real dm_control episodes with uniform random actions of three mt30 tasks (walker-walk, cartpole-swingup,
cup-catch; task ids 0, 1, 2 in that order) under the TD-MPC2 protocol (action repeat 2, 500 agent
steps, 501 rows per episode). Observations are zero-padded to 24 dims and actions to 6; row 0 of an
episode has NaN action and reward. Each chunk is a tensordict `TensorDict` of batch [episodes, 501]
with float32 obs/action/reward and int64 task, written with `torch.save`; `reference.npz` holds the
same arrays over all chunks in order, and README.json says how the set was made.

Needs torch, tensordict and dm_control (the official code's environment):

    python -m experiments.offline_fixture --out tests/fixtures/offline_mt3

With --from-reference it writes one chunk of the first episodes of an existing reference instead, in
the format of whichever tensordict is installed (e.g. an old one):

    python -m experiments.offline_fixture --from-reference tests/fixtures/offline_mt3/reference.npz \
        --episodes 3 --out tests/fixtures/offline_old_format
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from importlib import metadata

import numpy as np

TASKS = ("walker-walk", "cartpole-swingup", "cup-catch")
OBS_DIM, ACTION_DIM = 24, 6  # mt30's largest observation and action
ACTION_REPEAT, STEPS = 2, 500


def episode(task: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One padded episode: obs [501, 24], action [501, 6] and reward [501] (row 0 NaN)."""
    from tdmpc2_jax.envs.dmc import DMCEnv

    env = DMCEnv(task, seed, episode_length=STEPS, action_repeat=ACTION_REPEAT)
    rng = np.random.default_rng(seed)
    obs = np.zeros((STEPS + 1, OBS_DIM), np.float32)
    action = np.zeros((STEPS + 1, ACTION_DIM), np.float32)
    reward = np.zeros((STEPS + 1,), np.float32)
    obs[0, :env.obs_dim] = env.reset()
    action[0], reward[0] = np.nan, np.nan
    for t in range(1, STEPS + 1):
        a = env.random_action(rng)
        result = env.step(a)
        if result.physics_error:
            raise RuntimeError(f"{task} seed {seed}: physics error at step {t}")
        obs[t, :env.obs_dim], action[t, :env.action_dim], reward[t] = result.obs, a, result.reward
    return obs, action, reward


def save_chunk(path: str, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, task: np.ndarray) -> None:
    """One chunk: TensorDict of batch [N, L] saved with torch.save."""
    import torch
    from tensordict import TensorDict

    td = TensorDict({"obs": torch.from_numpy(np.ascontiguousarray(obs)),
                     "action": torch.from_numpy(np.ascontiguousarray(action)),
                     "reward": torch.from_numpy(np.ascontiguousarray(reward)),
                     "task": torch.from_numpy(np.ascontiguousarray(task)).to(torch.int64)},
                    batch_size=list(reward.shape))
    torch.save(td, path)


def versions() -> dict[str, str]:
    import torch
    import tensordict

    found = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
             "tensordict": getattr(tensordict, "__version__", "unknown")}
    for name in ("dm_control", "mujoco"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def make_fixture(out: str, episodes_per_task: int, num_chunks: int, seed: int) -> dict:
    """Rollouts of every task, interleaved by task and split in `num_chunks` chunk files."""
    rollouts = []
    for e in range(episodes_per_task):
        for t, task in enumerate(TASKS):
            rollouts.append((t, episode(task, seed + 100 * t + e)))
    obs = np.stack([r[1][0] for r in rollouts])
    action = np.stack([r[1][1] for r in rollouts])
    reward = np.stack([r[1][2] for r in rollouts])
    task = np.repeat(np.array([r[0] for r in rollouts], np.int64)[:, None], STEPS + 1, axis=1)
    bounds = np.linspace(0, len(rollouts), num_chunks + 1).astype(int)
    files = []
    for c in range(num_chunks):
        part = slice(bounds[c], bounds[c + 1])
        name = f"chunk_{c}.pt"
        save_chunk(os.path.join(out, name), obs[part], action[part], reward[part], task[part])
        files.append({"file": name, "episodes": int(bounds[c + 1] - bounds[c])})
    np.savez_compressed(os.path.join(out, "reference.npz"), obs=obs, action=action, reward=reward, task=task)
    return {"task_order": list(TASKS), "task_ids": {name: i for i, name in enumerate(TASKS)},
            "episode_order": "interleaved: episode k of every task in task order, then episode k+1",
            "episodes_per_task": episodes_per_task,
            "seeds": "env seed and action-generator seed seed + 100 * task_id + episode", "seed": seed,
            "chunks": files}


def from_reference(out: str, reference: str, episodes: int) -> dict:
    data = np.load(reference)
    arrays = {k: data[k][:episodes] for k in ("obs", "action", "reward", "task")}
    save_chunk(os.path.join(out, "chunk_0.pt"), **arrays)
    return {"source": os.path.relpath(reference, out), "episodes": f"the first {episodes} episodes of the source",
            "chunks": [{"file": "chunk_0.pt", "episodes": episodes}]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for the chunks, reference.npz and README.json")
    parser.add_argument("--episodes-per-task", type=int, default=2)
    parser.add_argument("--chunks", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--from-reference", help="write one chunk of the first --episodes of this reference.npz")
    parser.add_argument("--episodes", type=int, default=3)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.from_reference:
        info = from_reference(args.out, args.from_reference, args.episodes)
    else:
        info = make_fixture(args.out, args.episodes_per_task, args.chunks, args.seed)
    info = {"command": "python -m experiments.offline_fixture " + " ".join(sys.argv[1:] if argv is None else argv),
            "format": "torch.save of a tensordict TensorDict, batch [episodes, 501]: obs [N, 501, 24] float32 "
                      "(zero-padded), action [N, 501, 6] float32 (zero-padded, row 0 NaN), reward [N, 501] "
                      "float32 (row 0 NaN), task [N, 501] int64",
            "protocol": {"action_repeat": ACTION_REPEAT, "agent_steps": STEPS, "rows_per_episode": STEPS + 1,
                         "actions": "uniform in [-1, 1], mapped linearly to each task's action bounds",
                         "observations": "dm_control observation keys in spec order, flattened, float32"},
            **info, "versions": versions()}
    with open(os.path.join(args.out, "README.json"), "w") as file:
        json.dump(info, file, indent=2)
        file.write("\n")
    print(json.dumps(info["chunks"]))


if __name__ == "__main__":
    main()
