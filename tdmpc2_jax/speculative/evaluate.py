"""The speculative-execution protocol: every mode on the same seeds, a table and a plot.

    python -m tdmpc2_jax.speculative.evaluate --config=configs/mjx.py:cartpole-balance \
        --checkpoint runs/.../checkpoints --k 2,3,4,6 --correctors mlp=correctors/mlp,transformer=correctors/tf \
        --episodes 16 --out experiments/results/speculative/cartpole-balance [--calibrate]

Modes: full replanning (K=1), and for each K: naive-K, fallback only, corrector-K and corrector-K
with fallback for each corrector. Every mode runs the same episodes (same reset and planner keys).
Reported per mode: return mean, std and 5th percentile (and as a fraction of full replanning),
planner calls per step, measured wall-clock per step (encoder, corrector and planner included;
batched episodes on MJX are timed as a whole and divided by steps), and the distribution of e_k.
`--modes full,naive-2` re-runs (or re-times) only those modes and replaces their rows in an
existing OUT/results.csv. Thresholds tau_k come from `speculative_calibration.json` beside the
checkpoint; `--calibrate` makes the missing ones: a quantile of e_k per k under full replanning,
where e_k compares each observation with the latent that the plan made k steps earlier predicted
for it. `--config=configs/dmc.py:TASK` runs the same protocol on host MuJoCo, one episode after
another.
"""
from __future__ import annotations

import csv
import json
import os
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from tdmpc2_jax import xla
from tdmpc2_jax.cli import fail, parse_flags, quiet_libraries, use_compilation_cache

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/mjx.py:TASK or configs/dmc.py:TASK",
                                          lock_config=True)
flags.DEFINE_string("checkpoint", None, "the trained agent")
flags.DEFINE_list("k", ["2", "3", "4", "6"], "execution horizons K")
flags.DEFINE_list("correctors", [], "NAME=DIR pairs of trained correctors")
flags.DEFINE_integer("episodes", 16, "episodes per mode (the same seeds for every mode)")
flags.DEFINE_string("out", None, "directory for results.md, results.csv and results.png")
flags.DEFINE_bool("calibrate", False, "calibrate the missing thresholds tau (and save them)")
flags.DEFINE_float("quantile", 0.95, "quantile of e_k used as tau_k")
flags.DEFINE_integer("seed", 0, "evaluation seed")
flags.DEFINE_list("modes", [], "run only these modes (e.g. full,naive-2) and replace their rows in OUT/results.csv, "
                  "keeping the others (to re-run or re-time part of the protocol)")
FLAGS = flags.FLAGS
CALIBRATION_FILE = "speculative_calibration.json"


class Mode(NamedTuple):
    name: str
    k: int
    fallback: bool = False
    corrector: str | None = None


def protocol_modes(ks: list[int], corrector_names: list[str]) -> list[Mode]:
    modes = [Mode("full", 1)]
    for k in ks:
        modes += [Mode(f"naive-{k}", k), Mode(f"fallback-{k}", k, fallback=True)]
        for name in corrector_names:
            modes += [Mode(f"{name}-{k}", k, corrector=name), Mode(f"{name}-{k}+fallback", k, True, name)]
    return modes


# ---------------------------------------------------------------------- calibration
def calibration_path(checkpoint: str) -> str:
    directory = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(os.path.abspath(checkpoint))
    return os.path.join(directory, CALIBRATION_FILE)


def read_calibration(checkpoint: str, task: str) -> dict[int, list[float]]:
    path = calibration_path(checkpoint)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {int(k): v["tau"] for k, v in json.load(f).get(task, {}).items()}


def write_calibration(checkpoint: str, task: str, k: int, tau: np.ndarray, quantile: float, episodes: int) -> None:
    path = calibration_path(checkpoint)
    table = json.load(open(path)) if os.path.exists(path) else {}
    table.setdefault(task, {})[str(k)] = dict(tau=[float(t) for t in tau], quantile=quantile, episodes=episodes)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(table, f, indent=1)
    os.replace(tmp, path)


# ---------------------------------------------------------------------- running one mode
def run_mjx(env, speculator, params, corrector_params, key: jax.Array, episodes: int) -> dict[str, Any]:
    """One episode per environment, all at once; the wall-clock of the compiled program's run."""
    from tdmpc2_jax.speculative.rollout import episodes_batch

    rollout = xla.jit(lambda p, c, k: episodes_batch(env, speculator, p, c, k, episodes, env.episode_length))
    rollout = rollout.lower(params, corrector_params, key).compile()
    start = time.perf_counter()
    result = jax.block_until_ready(rollout(params, corrector_params, key))
    seconds = time.perf_counter() - start
    return summarize(np.asarray(result.returns), result.info, seconds / env.episode_length,
                     speculator.settings.horizon_k)


def host_episodes(env, speculator, params, corrector_params, key: jax.Array, episodes: int):
    """Episodes one after another on host MuJoCo: (returns [E], StepInfo [steps], seconds per step
    of the jitted speculative step, encoder included, without the first (compiling) call)."""
    step = xla.jit(speculator.step)
    returns, infos, times = [], [], []
    for e in range(episodes):
        obs, state, total, t, done = env.reset(), speculator.init_state(), 0.0, 0, False
        while not done:
            key, k = jax.random.split(key)
            start = time.perf_counter()
            action, state, info = step(params, corrector_params, state, jnp.asarray(obs), k, jnp.asarray(t == 0))
            action = np.asarray(action)
            if e or t:  # the first call compiles
                times.append(time.perf_counter() - start)
            result = env.step(action)
            obs, total, t, done = result.obs, total + result.reward, t + 1, result.done
            infos.append(info)
        returns.append(total)
    return np.asarray(returns), jax.tree.map(lambda *x: np.stack(x), *infos), times


def run_host(env, speculator, params, corrector_params, key: jax.Array, episodes: int) -> dict[str, Any]:
    """Per step: the mean over steps, replans and reuses together (a median would be a reuse's time)."""
    returns, info, times = host_episodes(env, speculator, params, corrector_params, key, episodes)
    return summarize(returns, info, float(np.mean(times)), speculator.settings.horizon_k)


def summarize(returns: np.ndarray, info, seconds_per_step: float, horizon_k: int) -> dict[str, Any]:
    k, mismatch = np.asarray(info.k), np.asarray(info.mismatch)
    checked = mismatch[(k >= 1) & (k < horizon_k)]
    return dict(returns=returns, return_mean=float(returns.mean()), return_std=float(returns.std()),
                return_p5=float(np.percentile(returns, 5)), calls_per_step=float(np.asarray(info.replanned).mean()),
                fallback_rate=float(np.asarray(info.fallback).mean()), ms_per_step=1e3 * seconds_per_step,
                e_p50=float(np.median(checked)) if checked.size else float("nan"),
                e_p95=float(np.percentile(checked, 95)) if checked.size else float("nan"))


# ---------------------------------------------------------------------- output
COLUMNS = ("mode", "K", "return_mean", "return_std", "return_p5", "of_full", "calls_per_step", "fallback_rate",
           "ms_per_step", "speedup", "e_p50", "e_p95")


def relative_to_full(rows: list[dict]) -> list[dict]:
    """Rows (the full-replanning row first) with return and speed-up relative to full replanning."""
    full = rows[0]
    return [dict(r, of_full=r["return_mean"] / full["return_mean"], speedup=full["ms_per_step"] / r["ms_per_step"])
            for r in rows]


def read_results(out: str) -> list[dict]:
    """The rows of OUT/results.csv (none if there is no such file)."""
    path = os.path.join(out, "results.csv")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [{k: v if k == "mode" else int(v) if k == "K" else float(v) for k, v in row.items()}
                for row in csv.DictReader(f)]


def write_results(rows: list[dict], out: str, title: str) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = [f"# {title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in COLUMNS) + " |" for r in rows]
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ax.errorbar(r["calls_per_step"], r["return_mean"], yerr=r["return_std"], fmt="o", capsize=3)
        ax.annotate(r["mode"], (r["calls_per_step"], r["return_mean"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel("planner calls per step")
    ax.set_ylabel("episode return (mean +- std)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "results.png"), dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> None:
    del argv
    config = _CONFIG.value
    if config is None or FLAGS.checkpoint is None or FLAGS.out is None:
        fail("--config, --checkpoint and --out are required")
    quiet_libraries()
    use_compilation_cache(config)
    from tdmpc2_jax.loading import load_for_task
    from tdmpc2_jax.speculative import training
    from tdmpc2_jax.speculative.controller import SpecSettings, Speculator, calibrate_tau
    from tdmpc2_jax.world_model import WorldModel

    mjx = config.get("backend") == "mjx"
    try:
        ks = sorted({int(k) for k in FLAGS.k})
        pairs = [c.split("=", 1) for c in FLAGS.correctors]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"--correctors takes NAME=DIR pairs, got {FLAGS.correctors}")
        if mjx:
            from tdmpc2_jax.envs.mjx import MJXEnv

            make_env = lambda: MJXEnv(config.task, impl=config.impl, episode_length=config.episode_length)
        else:
            from tdmpc2_jax.envs.dmc import DMCEnv
            from tdmpc2_jax.loops.run import eval_seed

            make_env = lambda: DMCEnv(config.task, eval_seed(FLAGS.seed), episode_length=config.episode_length)
        env = make_env()
        cfg, params = load_for_task(FLAGS.checkpoint, config, env.obs_dim, env.action_dim)
        correctors = {name: training.load(path, config.task, cfg.latent_dim, max(ks)) for name, path in pairs}
        modes = protocol_modes(ks, list(correctors))
        unknown = sorted(set(FLAGS.modes) - {m.name for m in modes})
        if unknown:
            raise ValueError(f"unknown modes {unknown}; this protocol has {[m.name for m in modes]}")
        if FLAGS.modes and "full" not in FLAGS.modes and "full" not in {r["mode"] for r in read_results(FLAGS.out)}:
            raise ValueError(f"--modes without full needs {FLAGS.out}/results.csv with a full row to compare with")
        selected = [m for m in modes if not FLAGS.modes or m.name in FLAGS.modes]
        taus = read_calibration(FLAGS.checkpoint, config.task)
        missing = sorted({m.k for m in selected if m.fallback} - set(taus))
        if missing and not FLAGS.calibrate:
            raise ValueError(f"{FLAGS.checkpoint} has no calibration for K={missing} on {config.task} "
                             f"({calibration_path(FLAGS.checkpoint)}): pass --calibrate to make it now")
    except (ValueError, FileNotFoundError, ImportError) as err:
        fail(str(err))
    model = WorldModel(cfg)
    run = run_mjx if mjx else run_host
    key = jax.random.key(FLAGS.seed)
    if missing:
        # one full-replanning run serves every K: the buffer's first K latents do not depend on K
        k_max = max(missing)
        print(f"calibrating tau for K={missing} (full replanning, quantile {FLAGS.quantile}) ...", flush=True)
        watcher = Speculator(model, SpecSettings(horizon_k=k_max))
        checks = (watch_mjx if mjx else watch_host)(env, watcher, params, jax.random.fold_in(key, 7), FLAGS.episodes)
        for k in missing:
            taus[k] = np.asarray(calibrate_tau(checks.k, checks.mismatch, k, FLAGS.quantile)).tolist()
            write_calibration(FLAGS.checkpoint, config.task, k, np.asarray(taus[k]), FLAGS.quantile, FLAGS.episodes)

    title = f"{config.task}: speculative execution, {FLAGS.episodes} episodes ({'MJX' if mjx else 'host MuJoCo'})"
    rows = {r["mode"]: r for r in read_results(FLAGS.out)} if FLAGS.modes else {}
    for mode in selected:
        corrector, corrector_params = (correctors[mode.corrector][:2] if mode.corrector else (None, None))
        settings = SpecSettings(horizon_k=mode.k, fallback=mode.fallback, corrector=corrector is not None)
        tau = jnp.asarray(taus[mode.k]) if mode.fallback else None
        speculator = Speculator(model, settings, tau=tau, corrector=corrector)
        # host episodes draw their initial states from the env's generator: a fresh env per mode
        # gives every mode the same episodes
        result = run(env if mjx else make_env(), speculator, params, corrector_params, key, FLAGS.episodes)
        rows[mode.name] = dict(result, mode=mode.name, K=mode.k)
        table = relative_to_full([rows[m.name] for m in modes if m.name in rows])
        result = next(r for r in table if r["mode"] == mode.name)
        print(f"{mode.name:<24} return {result['return_mean']:8.1f} +- {result['return_std']:6.1f} "
              f"({100 * result['of_full']:5.1f}% of full)  {result['calls_per_step']:.3f} calls/step  "
              f"{result['ms_per_step']:8.2f} ms/step  (x{result['speedup']:.2f})", flush=True)
        write_results(table, FLAGS.out, title)
    print(f"wrote {FLAGS.out}/results.md, results.csv, results.png")


def watch_mjx(env, speculator, params, key: jax.Array, episodes: int):
    """Checks [T, E, K-1] of full-replanning episodes, all at once."""
    from tdmpc2_jax.speculative.rollout import watch_batch

    return xla.jit(lambda p, k: watch_batch(env, speculator, p, k, episodes, env.episode_length))(params, key)


def watch_host(env, speculator, params, key: jax.Array, episodes: int):
    """Checks [steps, K-1] of full-replanning episodes on host MuJoCo, one after another."""
    step, checks = xla.jit(speculator.watch_step), []
    for _ in range(episodes):
        obs, state, t, done = env.reset(), speculator.init_watch_state(), 0, False
        while not done:
            key, k = jax.random.split(key)
            action, state, check = step(params, state, jnp.asarray(obs), k, jnp.asarray(t == 0))
            result = env.step(np.asarray(action))
            obs, t, done = result.obs, t + 1, result.done
            checks.append(check)
    return jax.tree.map(lambda *x: np.stack(x), *checks)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
