"""Wall-clock per step of speculative execution on host MuJoCo, every mode timed in alternation.

    python -m benchmarks.speculative_speed --config=configs/dmc.py:walker-walk \
        --checkpoint experiments/results/agents/walker-walk-1M/model [--k 2,3,4,6] [--steps 120] [--rounds 5] \
        [--correctors mlp=DIR,transformer=DIR] [--modes full,naive-3,mlp-3] [--out speed.json]

A round runs every mode for `steps` agent steps from the same reset (policy, encoder, corrector,
planner when it runs, and physics timed per step, as the protocol does); rounds repeat, so that a
machine whose load changes slows every mode alike. Printed per mode: the median over rounds of a
round's mean milliseconds per step, its spread, planner calls per step, and the ratio of full
replanning's median to the mode's. Without --correctors both correctors are freshly initialised
with the protocol's shapes (the MLP reads 1 step, the transformer 4): their cost does not depend on
their weights. Fallback modes (latent and policy mismatch) run when the checkpoint's calibration
has tau for that K and mismatch on host.
"""
from __future__ import annotations

import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks.multitask import machine
from tdmpc2_jax.cli import define_config_flags, fail, parse_flags, start_command

FLAGS = flags.FLAGS


def define_flags() -> None:
    define_config_flags("configs/dmc.py:TASK", "the trained agent")
    flags.DEFINE_list("k", ["2", "3", "4", "6"], "execution horizons K")
    flags.DEFINE_list("correctors", [], "NAME=DIR pairs of trained correctors (default: untrained mlp and transformer)")
    flags.DEFINE_integer("steps", 120, "agent steps per mode and round")
    flags.DEFINE_integer("rounds", 5, "rounds (every mode once per round)")
    flags.DEFINE_list("modes", [], "time only these modes (full is always timed: the speed-ups are against it)")
    flags.DEFINE_list("variants", [], "corrector modes beyond the protocol's to time too, CORRECTOR-K[@SCALE][+critic]")
    flags.DEFINE_integer("seed", 0, "seed of the resets and the planner")
    flags.DEFINE_string("out", None, "optional JSON file for the figures")


def time_segment(make_env, speculator, step, params, corrector_params, key: jax.Array,
                 steps: int) -> tuple[float, float]:
    """(mean seconds per step, planner calls per step) of `steps` steps from one reset; an episode
    that ends starts the next one. `step`: the speculator's jitted step."""
    env = make_env()
    obs, state, t = env.reset(), speculator.init_state(), 0
    seconds, calls = [], 0
    for key in jax.random.split(key, steps):
        start = time.perf_counter()
        action, state, info = step(params, corrector_params, state, jnp.asarray(obs), key, jnp.asarray(t == 0))
        result = env.step(np.asarray(action))
        seconds.append(time.perf_counter() - start)
        calls += int(info.replanned)
        obs, t = result.obs, t + 1
        if result.done:
            obs, state, t = env.reset(), speculator.init_state(), 0
    return float(np.mean(seconds)), calls / steps


def main(argv: list[str]) -> None:
    del argv
    config = start_command("checkpoint")
    from tdmpc2_jax.environments import make_env
    from tdmpc2_jax.loading import load_for_task
    from tdmpc2_jax.run_record import eval_seed, resolve
    from tdmpc2_jax.speculative import fitting
    from tdmpc2_jax.speculative.calibration import read_calibration
    from tdmpc2_jax.speculative.controller import Speculator
    from tdmpc2_jax.speculative.correctors import Corrector, CorrectorSpec
    from tdmpc2_jax.speculative.modes import parse_variant, protocol_modes, settings_of
    from tdmpc2_jax.world_model import WorldModel

    try:
        run = resolve(config)
        if run.backend != "host":
            raise ValueError("this benchmark times host MuJoCo: pass --config=configs/dmc.py:TASK")
        new_env = lambda: make_env(run, eval_seed(FLAGS.seed))
        ks = sorted({int(k) for k in FLAGS.k})
        env = new_env()
        agent_cfg, params = load_for_task(FLAGS.checkpoint, run, env.obs_dim, env.action_dim)
        if FLAGS.correctors:
            correctors = {name: fitting.load(path, run.task, agent_cfg.latent_dim, max(ks))[:2]
                          for name, path in fitting.named_dirs(FLAGS.correctors)}
        else:
            correctors = {}
            for kind, history in (("mlp", 1), ("transformer", 4)):
                spec = CorrectorSpec(kind=kind, latent_dim=agent_cfg.latent_dim, action_dim=agent_cfg.action_dim,
                                     max_k=max(ks) - 1, history=history)
                correctors[kind] = (Corrector(spec), Corrector(spec).init(jax.random.key(0)))
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))
    taus = read_calibration(FLAGS.checkpoint, run.task, "host")
    modes = [m for m in protocol_modes(ks, list(correctors), ("latent", "policy"))
             if not m.fallback or (m.k, m.mismatch) in taus]
    try:
        modes += [m for m in map(lambda name: parse_variant(name, list(correctors)), FLAGS.variants)
                  if m.name not in {mode.name for mode in modes}]
    except ValueError as err:
        fail(str(err))
    unknown = sorted(set(FLAGS.modes) - {m.name for m in modes})
    if unknown:
        fail(f"unknown modes {unknown}; with these K, correctors and calibration the modes are "
             f"{[m.name for m in modes]}")
    modes = [m for m in modes if not FLAGS.modes or m.name in FLAGS.modes or m.name == "full"]
    model = WorldModel(agent_cfg)
    runs = {}
    for mode in modes:
        corrector, corrector_params = correctors[mode.corrector] if mode.corrector else (None, None)
        settings = settings_of(mode)
        tau = jnp.asarray(taus[mode.k, mode.mismatch]) if mode.fallback else None
        speculator = Speculator(model, settings, tau=tau, corrector=corrector)
        runs[mode.name] = (speculator, jax.jit(speculator.step), corrector_params)
    print(f"{run.task}: {len(modes)} modes, {FLAGS.rounds} rounds of {FLAGS.steps} steps each "
          f"({'trained' if FLAGS.correctors else 'untrained'} correctors), {jax.default_backend()}", flush=True)
    key = jax.random.key(FLAGS.seed)
    for mode_run in runs.values():  # compile every mode before timing any
        time_segment(new_env, *mode_run[:2], params, mode_run[2], key, 2)
    seconds = {name: [] for name in runs}
    calls = {}
    for r in range(FLAGS.rounds):
        for name, (speculator, step, corrector_params) in runs.items():
            mean, calls[name] = time_segment(new_env, speculator, step, params, corrector_params, key, FLAGS.steps)
            seconds[name].append(mean)
        print(f"round {r + 1}/{FLAGS.rounds}: full {1e3 * seconds['full'][-1]:.1f} ms/step", flush=True)
    full = statistics.median(seconds["full"])
    rows = []
    print(f"{'mode':<24} {'ms/step':>8} {'min':>7} {'max':>7} {'calls/step':>10} {'speedup':>8}")
    for name, values in seconds.items():
        median = statistics.median(values)
        rows.append(dict(mode=name, ms_per_step=1e3 * median, ms_min=1e3 * min(values), ms_max=1e3 * max(values),
                         calls_per_step=calls[name], speedup=full / median))
        print(f"{name:<24} {1e3 * median:8.2f} {1e3 * min(values):7.2f} {1e3 * max(values):7.2f} "
              f"{calls[name]:10.3f} {full / median:7.2f}x")
    if FLAGS.out:
        with open(FLAGS.out, "w") as f:
            json.dump(dict(task=run.task, checkpoint=FLAGS.checkpoint, steps=FLAGS.steps, rounds=FLAGS.rounds,
                           trained_correctors=bool(FLAGS.correctors), backend=jax.default_backend(),
                           machine=machine(), rows=rows),
                      f, indent=1)
        print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
