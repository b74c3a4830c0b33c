"""Wall time of one jitted TD-MPC2 update for the model-size presets on the default device.

    python -m benchmarks.update_throughput [--sizes=1,5] [--batch_size=256] [--repeats=20]

Prints compile time (first call) and the median, 10th and 90th percentile of warm calls.
"""
from __future__ import annotations

import jax
from absl import app, flags

from benchmarks._flags import define_model_flags
from benchmarks._timing import random_batch, report, time_calls
from tdmpc2_jax import xla
from tdmpc2_jax.agent import Agent
from tdmpc2_jax.cli import parse_flags, setup_process
from tdmpc2_jax.config import make_config


FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    define_model_flags()
    flags.DEFINE_integer("batch_size", 256, "update batch size")


def main(argv: list[str]) -> None:
    del argv
    setup_process()  # as the command lines do: freed memory kept (malloc.py), logging at WARNING
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), batch {FLAGS.batch_size}")
    for size in FLAGS.sizes:
        cfg = make_config(dict(model_size=size, obs_dim=FLAGS.obs_dim, action_dim=FLAGS.action_dim,
                               batch_size=FLAGS.batch_size))
        agent = Agent(cfg)
        update = xla.jit(agent.update, donate_argnums=0)
        h, b = cfg.horizon, FLAGS.batch_size
        batch = random_batch(cfg, b, jax.random.key(0))
        holder = {"state": agent.init(jax.random.key(3))}
        keys = iter(jax.random.split(jax.random.key(1), 10_000))

        def run():
            holder["state"], metrics = update(holder["state"], batch, next(keys))
            return metrics["total_loss"]

        print(report(f"update {size}M (B={b}, H={h})", time_calls(run, FLAGS.repeats)))


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
