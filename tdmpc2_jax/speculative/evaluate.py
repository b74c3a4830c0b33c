"""The speculative-execution protocol: every mode on the same seeds, a table and a plot.

    python -m tdmpc2_jax.speculative.evaluate --config=configs/mjx.py:cartpole-balance \
        --checkpoint runs/.../checkpoints --k 2,3,4,6 --correctors mlp=correctors/mlp,transformer=correctors/tf \
        --episodes 16 --out experiments/results/speculative/cartpole-balance [--calibrate]

Modes: full replanning (K=1), and for each K: naive-K, fallback only, corrector-K and corrector-K
with fallback for each corrector. Every mode runs the same episodes (same reset and planner keys).
Reported per mode: return mean, std, median and 5th percentile (mean and median as fractions of
full replanning), planner calls per step, the rate of fallbacks at each k, the mean correction
||delta a||_2 on reused steps, measured wall-clock per step (encoder, corrector, planner and
physics included; batched episodes on MJX are timed as a whole and divided by steps), the
distribution of the mismatch, and the mean reward at every step index (by_step.csv, and the plot's
right panel). `--mismatch latent,policy` runs every fallback mode with each mismatch: e_k, and the
distance between the policy prior's action at the observed latent and the planned action (modes
named `...:policy`).
`--modes full,naive-2` re-runs (or re-times) only those modes and replaces their rows in an
existing OUT/results.csv; evaluations of other modes may share OUT at the same time (each adds its
rows to what the file holds when it writes). `--resume` runs only the modes that OUT/results.csv
does not have yet (a protocol stopped part-way goes on where it stopped). Thresholds tau_k come
from `speculative_calibration.json` beside the checkpoint; `--calibrate` makes the missing ones: a
quantile of e_k per k under full replanning, where e_k compares each observation with the latent
that the plan made k steps earlier predicted for it. `--config=configs/dmc.py:TASK` runs the same
protocol on host MuJoCo, one episode after another.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from tdmpc2_jax.cli import define_config_flags, episode_progress, fail, parse_flags, start_command, step_progress
from tdmpc2_jax.speculative.calibration import calibration_path, read_calibration, calibration_host, calibration_mjx, \
    write_calibration
from tdmpc2_jax.speculative.modes import protocol_modes, run_host, run_mjx
from tdmpc2_jax.speculative.report import goal_summary, merged_with_disk, read_results, relative_to_full, \
    write_results

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    define_config_flags("configs/mjx.py:TASK or configs/dmc.py:TASK",
                                  "the trained agent")
    flags.DEFINE_list("k", ["2", "3", "4", "6"], "execution horizons K")
    flags.DEFINE_list("correctors", [], "NAME=DIR pairs of trained correctors")
    flags.DEFINE_integer("episodes", 16, "episodes per mode (the same seeds for every mode)")
    flags.DEFINE_string("out", None, "directory for results.md, results.csv and results.png")
    flags.DEFINE_bool("calibrate", False, "calibrate the missing thresholds tau (and save them)")
    flags.DEFINE_float("quantile", 0.95, "quantile of e_k used as tau_k")
    flags.DEFINE_list("mismatch", ["latent"], "what fallback modes compare with tau_k: latent (e_k) and/or policy")
    flags.DEFINE_integer("seed", 0, "evaluation seed")
    flags.DEFINE_list("modes", [], "run only these modes (e.g. full,naive-2) and replace their rows in OUT/results.csv, "
                      "keeping the others (to re-run or re-time part of the protocol)")
    flags.DEFINE_bool("resume", False, "keep the modes already in OUT/results.csv and run only the others")


def main(argv: list[str]) -> None:
    del argv
    config = start_command("checkpoint", "out")
    from tdmpc2_jax.loading import load_for_task
    from tdmpc2_jax.speculative import fitting
    from tdmpc2_jax.speculative.controller import MISMATCHES, SpecSettings, Speculator, calibrate_tau
    from tdmpc2_jax.world_model import WorldModel

    mjx = config.get("backend") == "mjx"
    try:
        ks = sorted({int(k) for k in FLAGS.k})
        pairs = fitting.named_dirs(FLAGS.correctors)
        if mjx:
            from tdmpc2_jax.envs.mjx import MJXEnv

            make_env = lambda: MJXEnv(config.task, impl=config.impl, episode_length=config.episode_length)
        else:
            from tdmpc2_jax.envs.registry import make_host_env
            from tdmpc2_jax.loops.run import eval_seed

            make_env = lambda: make_host_env(config.task, eval_seed(FLAGS.seed), config.episode_length)
        if config.obs != "state":
            raise ValueError("speculative execution runs on state observations (obs=state)")
        env = make_env()
        agent_cfg, params = load_for_task(FLAGS.checkpoint, config, env.obs_dim, env.action_dim)
        correctors = {name: fitting.load(path, config.task, agent_cfg.latent_dim, max(ks)) for name, path in pairs}
        if not FLAGS.mismatch or set(FLAGS.mismatch) - set(MISMATCHES):
            raise ValueError(f"--mismatch takes some of {list(MISMATCHES)}, got {FLAGS.mismatch}")
        modes = protocol_modes(ks, list(correctors), tuple(FLAGS.mismatch))
        unknown = sorted(set(FLAGS.modes) - {m.name for m in modes})
        if unknown:
            raise ValueError(f"unknown modes {unknown}; this protocol has {[m.name for m in modes]}")
        if FLAGS.modes and "full" not in FLAGS.modes and "full" not in {r["mode"] for r in read_results(FLAGS.out)}:
            raise ValueError(f"--modes without full needs {FLAGS.out}/results.csv with a full row to compare with")
        finished = {r["mode"] for r in read_results(FLAGS.out)} if FLAGS.resume else set()
        selected = [m for m in modes if (not FLAGS.modes or m.name in FLAGS.modes) and m.name not in finished]
        backend = "mjx" if mjx else "host"
        taus = read_calibration(FLAGS.checkpoint, config.task, backend)
        missing = sorted({(m.k, m.mismatch) for m in selected if m.fallback} - set(taus))
        if missing and not FLAGS.calibrate:
            named = ", ".join(f"K={k}" + ("" if kind == "latent" else f" ({kind})") for k, kind in missing)
            raise ValueError(f"{FLAGS.checkpoint} has no calibration for {named} on {config.task} ({backend}) "
                             f"({calibration_path(FLAGS.checkpoint)}): pass --calibrate to make it now")
    except (ValueError, FileNotFoundError, ImportError) as err:
        fail(str(err))
    model = WorldModel(agent_cfg)
    if mjx:  # progress lines: every tenth of the batched episodes' steps, or every host episode
        progress = step_progress(env.episode_length)
        run = functools.partial(run_mjx, on_progress=progress)
        calibrate = functools.partial(calibration_mjx, on_progress=progress)
    else:
        progress = episode_progress(FLAGS.episodes)
        run = functools.partial(run_host, on_episode=progress)
        calibrate = functools.partial(calibration_host, on_episode=progress)
    key = jax.random.key(FLAGS.seed)
    if missing:
        # one full-replanning run serves every K and mismatch: the buffer's first K steps do not depend on K
        k_max = max(k for k, _ in missing)
        print(f"calibrating tau for {missing} (full replanning, quantile {FLAGS.quantile}) ...", flush=True)
        watcher = Speculator(model, SpecSettings(horizon_k=k_max))
        checks = calibrate(env, watcher, params, jax.random.fold_in(key, 7), FLAGS.episodes)
        for k, kind in missing:
            values = checks.mismatch if kind == "latent" else checks.policy_mismatch
            taus[k, kind] = np.asarray(calibrate_tau(checks.k, values, k, FLAGS.quantile)).tolist()
            write_calibration(FLAGS.checkpoint, config.task, backend, k, kind, np.asarray(taus[k, kind]), FLAGS.quantile,
                              FLAGS.episodes)

    title = f"{config.task}: speculative execution, {FLAGS.episodes} episodes ({'MJX' if mjx else 'host MuJoCo'})"
    keep_others = bool(FLAGS.modes or FLAGS.resume)
    rows = {r["mode"]: r for r in read_results(FLAGS.out)} if keep_others else {}
    ran = {}
    if finished:
        print(f"{len(finished)} modes already in {FLAGS.out}/results.csv; running the other {len(selected)}", flush=True)
    for mode in selected:
        corrector, corrector_params = (correctors[mode.corrector][:2] if mode.corrector else (None, None))
        settings = SpecSettings(horizon_k=mode.k, fallback=mode.fallback, corrector=corrector is not None,
                                mismatch=mode.mismatch)
        tau = jnp.asarray(taus[mode.k, mode.mismatch]) if mode.fallback else None
        speculator = Speculator(model, settings, tau=tau, corrector=corrector)
        # host episodes draw their initial states from the env's generator: a fresh env per mode
        # gives every mode the same episodes
        result = run(env if mjx else make_env(), speculator, params, corrector_params, key, FLAGS.episodes)
        ran[mode.name] = dict(result, mode=mode.name, K=mode.k)
        rows = merged_with_disk(FLAGS.out, ran) if keep_others else ran
        table = relative_to_full([rows[m.name] for m in modes if m.name in rows])
        result = next(r for r in table if r["mode"] == mode.name)
        print(f"{mode.name:<31} return {result['return_mean']:8.1f} +- {result['return_std']:6.1f} "
              f"({100 * result['of_full']:5.1f}% of full, median {100 * result['median_of_full']:5.1f}%)  "
              f"{result['calls_per_step']:.3f} calls/step  "
              f"{result['ms_per_step']:8.2f} ms/step  (x{result['speedup']:.2f})", flush=True)
        write_results(table, FLAGS.out, title)
    if rows:
        print(goal_summary(relative_to_full([rows[m.name] for m in modes if m.name in rows])))
    print(f"wrote {FLAGS.out}/results.md, results.csv, by_step.csv, results.png")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
