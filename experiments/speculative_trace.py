"""Where a speculative mode loses an episode: one mode of a host protocol, step by step.

    python -m experiments.speculative_trace [--task=cheetah-run] [--mode=mlp-3] [--episodes=16] [--watch=1]
        [--out=experiments/results/speculative/TASK-host/trace-MODE]

Runs MODE (a protocol mode: naive-K, fallback-K, CORRECTOR-K[+fallback][:policy], CORRECTOR-K[@SCALE][+critic])
of the committed agent (experiments/results/agents/TASK-1M) with the corrector of the host protocol
(experiments/results/speculative/TASK-host/correctors) on the protocol's evaluation episodes (seed
0, the episodes of results.csv's rows), and writes under --out:
- steps.csv: a row per step: episode, step, k (steps since the plan), replanned, correction
  (max |a - a_plan|), mismatch, reward, the watched observation entry, the executed action;
- summary.json: per episode the return and the watched entry's largest absolute value; per action
  entry, the share of steps with the action at a bound (|a| >= SATURATED), on the steps that
  planned and on those that reused a plan; the machine.
For cheetah-run, entry 1 of the observation is the torso's pitch (rooty, radians): past pi/2 the
cheetah lies on its back.
"""
from __future__ import annotations

import csv
import json
import pathlib

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
SATURATED = 0.99  # |action| at or above this counts as at its bound
EVAL_SEED = 0  # the protocol's evaluation seed


def define_flags() -> None:
    flags.DEFINE_string("task", "cheetah-run", "a task with a host protocol under experiments/results/speculative")
    flags.DEFINE_string("mode", "mlp-3", "the protocol mode to trace")
    flags.DEFINE_integer("episodes", 16, "episodes (the protocol's first ones)")
    flags.DEFINE_integer("watch", 1, "the observation entry kept at every step (cheetah-run: 1, the torso's pitch)")
    flags.DEFINE_string("out", None, "output directory (default: the protocol's trace-MODE)")


def mode_named(name: str, corrector_names: list[str]):
    """The protocol mode called `name`; ValueError naming the choices."""
    from tdmpc2_jax.speculative.modes import parse_variant, protocol_modes

    if "@" in name or name.endswith("+critic"):
        return parse_variant(name, corrector_names)
    k = int(name.split("-")[1].split("+")[0].split(":")[0]) if "-" in name else 1
    modes = {m.name: m for m in protocol_modes([k], corrector_names, ("latent", "policy"))}
    if name not in modes:
        raise ValueError(f"unknown mode {name!r}: at K={k} the modes are {', '.join(modes)}")
    return modes[name]


def saturation(actions: np.ndarray) -> list[float]:
    """[A] share of rows of actions [N, A] at a bound, per entry."""
    return np.mean(np.abs(actions) >= SATURATED, axis=0).round(4).tolist() if len(actions) else []


def trace(task: str, mode_name: str, episodes: int, watch: int) -> tuple[list[dict], dict]:
    """(steps.csv rows, summary) of `episodes` protocol episodes of one mode."""
    import jax
    import jax.numpy as jnp

    from tdmpc2_jax import acting, xla
    from tdmpc2_jax.configs.dmc import get_config
    from tdmpc2_jax.environments import make_env
    from tdmpc2_jax.loading import load_for_task
    from tdmpc2_jax.run_record import eval_seed, resolve
    from tdmpc2_jax.speculative import fitting
    from tdmpc2_jax.speculative.calibration import read_calibration
    from tdmpc2_jax.speculative.controller import Speculator
    from tdmpc2_jax.speculative.modes import settings_of
    from tdmpc2_jax.speculative.protocol import calibration_seed
    from tdmpc2_jax.world_model import WorldModel

    run = resolve(get_config(task))
    checkpoint = str(RESULTS / "agents" / f"{task}-1M" / "model")
    correctors = RESULTS / "speculative" / f"{task}-host" / "correctors"
    env = make_env(run, eval_seed(EVAL_SEED))
    agent_cfg, params = load_for_task(checkpoint, run, env.obs_dim, env.action_dim)
    mode = mode_named(mode_name, sorted(p.name for p in correctors.iterdir()) if correctors.exists() else [])
    corrector, corrector_params = (None, None)
    if mode.corrector:
        corrector, corrector_params, _ = fitting.load(str(correctors / mode.corrector), task, agent_cfg.latent_dim, mode.k)
    tau = None
    if mode.fallback:
        taus = read_calibration(checkpoint, task, "host", calibration_seed(EVAL_SEED))
        if (mode.k, mode.mismatch) not in taus:
            raise ValueError(f"{checkpoint} has no thresholds of seed {calibration_seed(EVAL_SEED)} for {mode.name}: "
                             "run the protocol's evaluation with --calibrate first")
        tau = jnp.asarray(taus[mode.k, mode.mismatch])
    speculator = Speculator(WorldModel(agent_cfg), settings_of(mode), tau=tau, corrector=corrector)
    step = xla.jit(speculator.step)
    seen = []  # (watched entry, action) of every step, in order

    def policy(state, obs, key, t0):
        action, state, info = step(params, corrector_params, state, obs, key, t0)
        seen.append((float(obs[watch]), np.asarray(action)))
        return action, state, info

    result = acting.host_episodes(env, policy, speculator.init_state, jax.random.key(EVAL_SEED), episodes,
                                  on_episode=lambda e, ret, n: print(f"episode {e + 1}/{episodes}: return {ret:.1f}",
                                                                     flush=True))
    info = result.info
    starts = np.cumsum([0] + result.lengths[:-1])
    rows = []
    for e, (start, length) in enumerate(zip(starts, result.lengths)):
        for t in range(length):
            i = start + t
            rows.append(dict(episode=e, step=t, k=int(info.k[i]), replanned=int(info.replanned[i]),
                             correction=round(float(info.correction[i]), 5), mismatch=round(float(info.mismatch[i]), 5),
                             reward=round(float(result.rewards[i]), 5), watched=round(seen[i][0], 5),
                             action=" ".join(f"{a:.4f}" for a in seen[i][1])))
    actions = np.stack([a for _, a in seen])
    replanned = np.asarray(info.replanned, bool)
    watched = np.asarray([w for w, _ in seen])
    summary = dict(task=task, mode=mode.name, seed=EVAL_SEED, watch=watch, saturated_at=SATURATED,
                   returns=np.round(result.returns, 3).tolist(),
                   watched_max_abs=[float(np.abs(watched[s:s + n]).max()) for s, n in zip(starts, result.lengths)],
                   saturated_planned=saturation(actions[replanned]), saturated_reused=saturation(actions[~replanned]),
                   machine=machine())
    return rows, summary


def machine() -> str:
    from experiments.mjx_fidelity import machine as described

    return described()


def main(argv: list[str]) -> None:
    del argv
    from tdmpc2_jax.cli import fail, setup_process
    from tdmpc2_jax.configs.dmc import get_config

    if FLAGS.episodes < 1:
        fail(f"--episodes={FLAGS.episodes}: give at least 1")
    setup_process(get_config(FLAGS.task))
    out = pathlib.Path(FLAGS.out or RESULTS / "speculative" / f"{FLAGS.task}-host" / f"trace-{FLAGS.mode}")
    try:
        rows, summary = trace(FLAGS.task, FLAGS.mode, FLAGS.episodes, FLAGS.watch)
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "steps.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {out}/steps.csv, summary.json")


if __name__ == "__main__":
    define_flags()
    app.run(main)
