"""How well a trained agent's termination head tells the terminal states of a terminating task.

    python -m experiments.termination_head --checkpoint=DIR --task=mujoco-walker [--episodes=10] [--seed=0]

Rolls out the checkpoint's policy prior (actions sampled from it, so that some episodes end in a fall)
on the host task and keeps every transition (observation, action, next observation, `terminated`; a
time limit is not a terminal). For the checkpoint and for a freshly initialised model of the same
architecture, it prints the termination head's binary cross-entropy and its mean predicted
probability of termination on the terminal and on the other transitions, on three latents of the
next state: the dynamics rolled `horizon` steps from the observation that many steps earlier (the
latent the loss trains on at a window's last step, the only place the official strict-length
windows put a terminal transition), the dynamics one step from the observation, and the encoded
next observation. Transitions fewer than `horizon` steps into their episode are left out. Where the
checkpoint holds its replay buffer, the same table is printed for the buffer's transitions (the
data the head was trained on).
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

from tdmpc2_jax import checkpoints
from tdmpc2_jax.cli import fail, parse_flags, setup_process
from tdmpc2_jax.envs.registry import make_host_env
from tdmpc2_jax.loading import read_checkpoint
from tdmpc2_jax.world_model import WorldModel

FLAGS = flags.FLAGS


def rollouts(model: WorldModel, params, task: str, episodes: int, seed: int) -> dict[str, np.ndarray]:
    """obs [T, obs_dim], action [T, A], next_obs [T, obs_dim], terminal [T] and step (index in its
    episode) [T] of `episodes` policy-prior episodes."""
    env = make_host_env(task, seed)
    act = jax.jit(lambda obs, key: model.pi(params, model.encode(params, obs),
                                            jax.random.normal(key, (model.cfg.action_dim,))).action)
    keys = iter(jax.random.split(jax.random.key(seed), 10**6))
    data = {name: [] for name in ("obs", "action", "next_obs", "terminal", "step")}
    for _ in range(episodes):
        obs, done, t = env.reset(), False, 0
        while not done:
            action = np.asarray(act(jnp.asarray(obs), next(keys)))
            step = env.step(action)
            for name, value in zip(data, (obs, action, step.obs, step.terminated, t)):
                data[name].append(value)
            obs, done, t = step.obs, step.done, t + 1
    return {name: np.asarray(values, np.int32 if name == "step" else np.float32) for name, values in data.items()}


def buffer_transitions(directory: str) -> dict[str, np.ndarray] | None:
    """The transitions of a checkpoint's replay buffer, indexed by the row of their next observation
    (step -1 for an episode's first row, which no transition leads to); None without a buffer."""
    import orbax.checkpoint as ocp

    step, meta = checkpoints.read_meta(directory)
    if not meta.get("has_buffer"):
        return None
    buffer = ocp.PyTreeCheckpointer().restore(os.path.join(os.path.abspath(directory), str(step), "state"))["buffer"]
    obs, episode = np.asarray(buffer["obs"]), np.asarray(buffer["episode"])
    steps = np.full(len(episode), -1, np.int32)
    for row in range(1, len(episode)):
        if episode[row] == episode[row - 1]:
            steps[row] = steps[row - 1] + 1
    return dict(obs=np.roll(obs, 1, axis=0), action=np.asarray(buffer["action"]), next_obs=obs,
                terminal=np.asarray(buffer["terminated"]), step=steps)


def next_latents(model: WorldModel, params, data: dict[str, np.ndarray], rolled: int, rows: np.ndarray) -> jax.Array:
    """The next state's latent of transitions `rows` [N]: the dynamics rolled `rolled` steps from the
    observation `rolled - 1` transitions earlier, or (rolled=0) the encoded next observation."""
    if rolled == 0:
        return model.encode(params, jnp.asarray(data["next_obs"][rows]))
    z = model.encode(params, jnp.asarray(data["obs"][rows - rolled + 1]))
    for back in range(rolled - 1, -1, -1):
        z = model.next(params, z, jnp.asarray(data["action"][rows - back]))
    return z


def head_figures(model: WorldModel, params, data: dict[str, np.ndarray], rolled: int, rows: np.ndarray) -> dict:
    """BCE and mean p(terminal) on the terminal and the other transitions of `rows`."""
    logits = model.termination(params, next_latents(model, params, data, rolled, rows))
    terminal = data["terminal"][rows]
    p = np.asarray(jax.nn.sigmoid(logits))
    bce = float(jnp.mean(optax.sigmoid_binary_cross_entropy(logits, jnp.asarray(terminal))))
    return dict(bce=bce, p_terminal=float(p[terminal == 1].mean()) if terminal.any() else float("nan"),
                p_other=float(p[terminal == 0].mean()))


def print_table(model: WorldModel, trained, fresh, task: str, source: str, data: dict[str, np.ndarray]) -> None:
    """The head's figures on the transitions of `data` at least `horizon - 1` steps into their
    episode, for both models and the three next-state latents, as a markdown table."""
    horizon = model.cfg.horizon
    latents = ((horizon, f"dynamics, {horizon} steps (as trained)"), (1, "dynamics, 1 step"), (0, "encoded next obs"))
    rows = np.flatnonzero(data["step"] >= horizon - 1)  # transitions with `horizon` steps of their episode behind
    print(f"\n{task}, {source}: {len(rows)} transitions {horizon - 1}+ steps into their episode, "
          f"{int(data['terminal'][rows].sum())} terminal")
    print("| model | next-state latent | BCE | mean p(terminal), terminal | mean p(terminal), other |")
    print("|---|---|---|---|---|")
    for name, params in (("trained", trained), ("fresh", fresh)):
        for rolled, latent in latents:
            f = head_figures(model, params, data, rolled, rows)
            print(f"| {name} | {latent} | {f['bce']:.4f} | {f['p_terminal']:.3f} | {f['p_other']:.4f} |")


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    flags.DEFINE_string("checkpoint", None, "an orbax checkpoint directory of an episodic agent", required=True)
    flags.DEFINE_string("task", None, "a terminating task, e.g. mujoco-walker", required=True)
    flags.DEFINE_integer("episodes", 10, "policy-prior episodes rolled out")
    flags.DEFINE_integer("seed", 0, "seed of the episodes and of the fresh model")


def main(argv: list[str]) -> None:
    del argv
    setup_process()
    try:
        cfg, trained = read_checkpoint(FLAGS.checkpoint)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    if not cfg.episodic:
        fail(f"{FLAGS.checkpoint} is not an episodic agent: it has no termination head")
    model = WorldModel(cfg)
    fresh = model.init(jax.random.key(FLAGS.seed))
    episodes = rollouts(model, trained, FLAGS.task, FLAGS.episodes, FLAGS.seed)
    print_table(model, trained, fresh, FLAGS.task, f"{FLAGS.episodes} policy-prior episodes", episodes)
    stored = buffer_transitions(FLAGS.checkpoint)
    if stored is not None:
        print_table(model, trained, fresh, FLAGS.task, "the checkpoint's replay buffer", stored)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
