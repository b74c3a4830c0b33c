"""Wall time of one jitted TD-MPC2 update for the model-size presets on the default device.

    python -m benchmarks.update_throughput [--sizes 1 5] [--batch-size 256] [--repeats 20]

Prints compile time (first call) and the median, 10th and 90th percentile of warm calls.
"""
from __future__ import annotations

import argparse

import jax

from benchmarks._timing import random_batch, report, time_calls
from tdmpc2_jax import xla
from tdmpc2_jax.agent import Agent
from tdmpc2_jax.config import make_config
from tdmpc2_jax.malloc import reuse_freed_memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--obs-dim", type=int, default=24)
    parser.add_argument("--action-dim", type=int, default=6)
    args = parser.parse_args()
    reuse_freed_memory()  # as the command lines do (malloc.py)
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), batch {args.batch_size}")
    for size in args.sizes:
        cfg = make_config(dict(model_size=size, obs_dim=args.obs_dim, action_dim=args.action_dim,
                               batch_size=args.batch_size))
        agent = Agent(cfg)
        update = xla.jit(agent.update, donate_argnums=0)
        h, b = cfg.horizon, args.batch_size
        batch = random_batch(cfg, b, jax.random.key(0))
        holder = {"state": agent.init(jax.random.key(3))}
        keys = iter(jax.random.split(jax.random.key(1), 10_000))

        def run():
            holder["state"], metrics = update(holder["state"], batch, next(keys))
            return metrics["total_loss"]

        print(report(f"update {size}M (B={b}, H={h})", time_calls(run, args.repeats)))


if __name__ == "__main__":
    main()
