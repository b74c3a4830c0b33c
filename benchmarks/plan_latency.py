"""Wall time of one MPPI plan (encoder included) for the model-size presets on the default device.

    python -m benchmarks.plan_latency [--sizes=1,5] [--repeats=20] [--batch=1]

Prints compile time (first call) and the median, 10th and 90th percentile of warm calls.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from absl import app, flags

from benchmarks._flags import define_model_flags
from benchmarks._timing import report, time_calls
from tdmpc2_jax.cli import parse_flags, setup_process
from tdmpc2_jax.config import make_config
from tdmpc2_jax.planner import init_plan_state, make_planner
from tdmpc2_jax.world_model import WorldModel


FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    define_model_flags()
    flags.DEFINE_integer("batch", 1, "observations planned at once (vmapped)")


def main(argv: list[str]) -> None:
    del argv
    setup_process()  # as the command lines do: freed memory kept (malloc.py), logging at WARNING
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), batch {FLAGS.batch}")
    for size in FLAGS.sizes:
        cfg = make_config(dict(model_size=size, obs_dim=FLAGS.obs_dim, action_dim=FLAGS.action_dim))
        model = WorldModel(cfg)
        params = jax.jit(model.init)(jax.random.key(0))
        state = init_plan_state(cfg.horizon, cfg.action_dim)
        keys = iter(jax.random.split(jax.random.key(1), 10_000))
        if FLAGS.batch == 1:
            planner = make_planner(model, eval_mode=False)
            obs = jnp.ones((cfg.obs_dim,))
            t0 = jnp.array(False)
            run = lambda: planner(params, obs, state, next(keys), t0)[0].action
        else:
            planner = make_planner(model, eval_mode=False, batched=True)
            obs = jnp.ones((FLAGS.batch, cfg.obs_dim))
            states = jax.tree.map(lambda x: jnp.broadcast_to(x, (FLAGS.batch,) + x.shape), state)
            t0 = jnp.zeros((FLAGS.batch,), bool)
            run = lambda: planner(params, obs, states, jax.random.split(next(keys), FLAGS.batch), t0)[0].action
        print(report(f"plan {size}M (H={cfg.horizon}, {cfg.plan_iterations}x{cfg.num_samples})",
                     time_calls(run, FLAGS.repeats)))


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
