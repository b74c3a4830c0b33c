"""Throughput of the on-device MJX loop against the host loop on the same task.

    python -m benchmarks.mjx_throughput [--task=cheetah-run] [--model_size=5] [--num_envs=1,16,64,256]
                                        [--steps=20] [--updates=20] [--repeats=5] [--host_steps=20]

For each N: transitions/s of acting (batched MPPI + MJX step + buffer insert, one compiled chunk of
--steps batched steps, no updates), and updates/s (a scan of --updates core updates on windows
from the device buffer). Then the host loop on the same task: one dm_control step plus one jitted
plan per transition. One transition is `action repeat` (2) physics steps. Medians of --repeats
warm calls; the first call includes compilation.
"""
from __future__ import annotations

import time

import jax
import numpy as np
from absl import app, flags

from benchmarks._flags import define_int_list
from benchmarks._timing import report, time_calls
from tdmpc2_jax import xla
from tdmpc2_jax.agent import Agent
from tdmpc2_jax.cli import parse_flags, setup_process
from tdmpc2_jax.config import make_config
from tdmpc2_jax.envs.mjx import MJXEnv
from tdmpc2_jax.loops.device import DeviceLoop


def device_figures(task: str, model_size: int | dict, num_envs: int, steps: int, updates: int, repeats: int,
                   impl: str = "jax", whole_loop: bool = False) -> dict:
    """Acting and update figures of the on-device loop at `num_envs` environments.

    `model_size` is a preset or a dict of Config overrides. Returns the timing statistics of both
    programs (`acting`, `updates`), transitions/s, updates/s and the device's memory in bytes
    (`None` where the backend does not report it). With `whole_loop`, also the loop as it trains at
    the official ratio (`loop`: a chunk of `steps` batched steps, each followed by `num_envs`
    updates, one per transition) and its transitions/s (`loop_transitions_per_s`).
    """
    env = MJXEnv(task, impl=impl)
    sizes = model_size if isinstance(model_size, dict) else dict(model_size=model_size)
    cfg = make_config(dict(sizes, obs_dim=env.obs_dim, action_dim=env.action_dim))
    loop = DeviceLoop(Agent(cfg), env, num_envs, seed_steps=0, updates_per_step=0)
    carry = xla.jit(loop.init)(jax.random.key(0))
    carry, _ = xla.jit(loop.chunk, static_argnums=(1, 2))(carry, cfg.horizon + 2, True)  # windows to sample
    act = xla.jit(loop.chunk, static_argnums=1)
    acting = time_calls(lambda: act(carry, steps)[0].obs, repeats)
    update = xla.jit(loop.updates, static_argnums=3)
    learning = time_calls(lambda: update(carry.train_state, carry.buffer, jax.random.key(1), updates)[0].step,
                          repeats)
    memory = jax.devices()[0].memory_stats() or {}
    figures = dict(num_envs=num_envs, acting=acting, transitions_per_s=num_envs * steps / acting["median_s"],
                   updates=learning, updates_per_s=updates / learning["median_s"], batch_size=cfg.batch_size,
                   bytes_in_use=memory.get("bytes_in_use"), peak_bytes_in_use=memory.get("peak_bytes_in_use"))
    if whole_loop:
        training = DeviceLoop(Agent(cfg), env, num_envs, seed_steps=0, updates_per_step=num_envs)
        train_chunk = xla.jit(training.chunk, static_argnums=1)
        figures["loop"] = time_calls(lambda: train_chunk(carry, steps)[0].obs, repeats)
        figures["loop_transitions_per_s"] = num_envs * steps / figures["loop"]["median_s"]
    return figures


def host_figures(task: str, model_size: int, steps: int) -> None:
    from tdmpc2_jax.envs.dmc import DMCEnv
    from tdmpc2_jax.loops.host import Planners

    env = DMCEnv(task, seed=0)
    cfg = make_config(dict(model_size=model_size, obs_dim=env.obs_dim, action_dim=env.action_dim))
    agent = Agent(cfg)
    planners, params = Planners(agent), agent.init(jax.random.key(0)).params
    obs, plan_state = env.reset(), planners.initial_state()
    keys = iter(jax.random.split(jax.random.key(1), steps + 1))
    start = time.perf_counter()
    planners.act(params, obs, plan_state, next(keys), True, eval_mode=False)
    first = time.perf_counter() - start
    times = []
    for t in range(steps):
        start = time.perf_counter()
        action, plan_state = planners.act(params, obs, plan_state, next(keys), t == 0, eval_mode=False)
        result = env.step(action)
        obs = env.reset() if result.done else result.obs
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    print(f"{'host loop (dm_control)':<28} first call {first:6.2f} s   median {median * 1e3:8.1f} ms per transition"
          f"   {1 / median:10.1f} transitions/s")


FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    flags.DEFINE_string("task", "cheetah-run", "an MJX task")
    flags.DEFINE_integer("model_size", 5, "model-size preset")
    define_int_list("num_envs", [1, 16, 64, 256], "environment counts to time")
    flags.DEFINE_integer("steps", 20, "batched steps per timed chunk")
    flags.DEFINE_integer("updates", 20, "updates per timed call")
    flags.DEFINE_integer("repeats", 5, "warm calls per figure")
    flags.DEFINE_integer("host_steps", 20, "host-loop transitions to time (0: skip)")
    flags.DEFINE_string("impl", "jax", "MJX implementation (jax or warp)")


def main(argv: list[str]) -> None:
    del argv
    setup_process()  # as the command lines do: freed memory kept (malloc.py), logging at WARNING
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), {FLAGS.task}, {FLAGS.model_size}M model")
    for n in FLAGS.num_envs:
        figures = device_figures(FLAGS.task, FLAGS.model_size, n, FLAGS.steps, FLAGS.updates, FLAGS.repeats, FLAGS.impl)
        print(report(f"acting N={n}", figures["acting"]) + f"   {figures['transitions_per_s']:10.0f} transitions/s")
        print(report(f"updates x{FLAGS.updates} (B={figures['batch_size']})", figures["updates"]) +
              f"   {figures['updates_per_s']:10.1f} updates/s")
    if FLAGS.host_steps:
        host_figures(FLAGS.task, FLAGS.model_size, FLAGS.host_steps)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
