"""Wall time of one MPPI plan (encoder included) for the model-size presets on the default device.

    python -m benchmarks.plan_latency [--sizes 1 5] [--repeats 20] [--batch 1]

Prints compile time (first call) and the median, 10th and 90th percentile of warm calls.
"""
from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from benchmarks._timing import report, time_calls
from tdmpc2_jax.config import make_config
from tdmpc2_jax.malloc import reuse_freed_memory
from tdmpc2_jax.planner import init_plan_state, make_planner
from tdmpc2_jax.world_model import WorldModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=1, help="observations planned at once (vmapped)")
    parser.add_argument("--obs-dim", type=int, default=24)
    parser.add_argument("--action-dim", type=int, default=6)
    args = parser.parse_args()
    reuse_freed_memory()  # as the command lines do (malloc.py)
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), batch {args.batch}")
    for size in args.sizes:
        cfg = make_config(dict(model_size=size, obs_dim=args.obs_dim, action_dim=args.action_dim))
        model = WorldModel(cfg)
        params = jax.jit(model.init)(jax.random.key(0))
        state = init_plan_state(cfg.horizon, cfg.action_dim)
        keys = iter(jax.random.split(jax.random.key(1), 10_000))
        if args.batch == 1:
            planner = make_planner(model, eval_mode=False)
            obs = jnp.ones((cfg.obs_dim,))
            t0 = jnp.array(False)
            run = lambda: planner(params, obs, state, next(keys), t0)[0].action
        else:
            planner = make_planner(model, eval_mode=False, batched=True)
            obs = jnp.ones((args.batch, cfg.obs_dim))
            states = jax.tree.map(lambda x: jnp.broadcast_to(x, (args.batch,) + x.shape), state)
            t0 = jnp.zeros((args.batch,), bool)
            run = lambda: planner(params, obs, states, jax.random.split(next(keys), args.batch), t0)[0].action
        print(report(f"plan {size}M (H={cfg.horizon}, {cfg.plan_iterations}x{cfg.num_samples})",
                     time_calls(run, args.repeats)))


if __name__ == "__main__":
    main()
