"""Speed of dm_control's own models on MJX (`-exact` tasks, envs/mjx_dmc.py) against MuJoCo
Playground's ports of the same tasks, on batched environments.

    python -m benchmarks.mjx_exact_speed [--tasks=walker-walk,cheetah-run,cartpole-swingup]
        [--num_envs=16,64] [--steps=5] [--repeats=3] [--x64] [--out=PATH.json]

Per task, variant and N: one jitted program of --steps batched agent steps (`MJXEnv.step_batch`,
uniform random actions) on N environments; the median of --repeats warm calls (the first call,
which compiles, apart). The results file is written after each row. Env steps are agent steps x
the action repeat (2), as everywhere in this project; physics steps per agent step are each
variant's own.
"""
from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
from absl import app, flags

from benchmarks._flags import define_int_list
from benchmarks._timing import report, time_calls, write_results
from tdmpc2_jax.cli import parse_flags, setup_process
from tdmpc2_jax.envs.mjx import MJXEnv
from tdmpc2_jax.envs.mjx_dmc import EXACT_SUFFIX

FLAGS = flags.FLAGS
VARIANTS = {"playground": "", "exact": EXACT_SUFFIX}  # variant -> task name suffix


def figures(task: str, num_envs: int, steps: int, repeats: int) -> dict:
    """Timing statistics, agent and env steps/s of `steps` batched steps of N=`num_envs` environments."""
    env = MJXEnv(task)
    states = jax.jit(env.reset_batch)(jax.random.split(jax.random.key(0), num_envs))
    actions = jax.random.uniform(jax.random.key(1), (steps, num_envs, env.action_dim), minval=-1.0, maxval=1.0)
    run = jax.jit(lambda s, a: jax.lax.scan(lambda s, x: (env.step_batch(s, x)[0], None), s, a)[0])
    stats = time_calls(lambda: run(states, actions).t, repeats)
    agent_steps = num_envs * steps / stats["median_s"]
    pg = env.playground_env
    return dict(task=task, num_envs=num_envs, steps=steps, **stats, agent_steps_per_s=agent_steps,
                env_steps_per_s=agent_steps * env.action_repeat,
                physics_steps_per_agent_step=env.action_repeat * pg.n_substeps,
                solver_iterations=int(pg.mj_model.opt.iterations), dtype=str(states.inner.data.qpos.dtype))


def machine() -> str:
    """The CPU model and core count: the figures are this CPU's."""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "CPU")
    except OSError:
        model = "CPU"
    return f"{model}, {os.cpu_count()} cores"


def main(argv: list[str]) -> None:
    del argv
    setup_process()
    if FLAGS.x64:
        jax.config.update("jax_enable_x64", True)
    rows = []
    for task in FLAGS.tasks:
        for variant, suffix in VARIANTS.items():
            for n in FLAGS.num_envs:
                row = dict(variant=variant, **figures(task + suffix, n, FLAGS.steps, FLAGS.repeats))
                rows.append(row)
                print(report(f"{task} {variant} N={n}", row) + f"   {row['env_steps_per_s']:9.1f} env steps/s",
                      flush=True)
                write_results(dict(command="python -m benchmarks.mjx_exact_speed " + " ".join(sys.argv[1:]),
                                   machine=machine(), backend=jax.default_backend(), devices=str(jax.devices()),
                                   x64=FLAGS.x64, jax=jax.__version__, rows=rows), FLAGS.out)


if __name__ == "__main__":
    flags.DEFINE_list("tasks", ["walker-walk", "cheetah-run", "cartpole-swingup"],
                      "dash task names with an exact model")
    define_int_list("num_envs", [16, 64], "batch sizes")
    flags.DEFINE_integer("steps", 5, "batched agent steps per timed call")
    flags.DEFINE_integer("repeats", 3, "warm calls timed")
    flags.DEFINE_bool("x64", False, "MJX in float64 (jax_enable_x64)")
    flags.DEFINE_string("out", None, "JSON results file")
    app.run(main, flags_parser=parse_flags)
