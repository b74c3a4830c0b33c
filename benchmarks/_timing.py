"""Shared helpers for the benchmarks: a random update batch, compile time, then median and spread
of warm calls, and the results file."""
from __future__ import annotations

import json
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp

from tdmpc2_jax.config import Config
from tdmpc2_jax.types import Batch


def random_batch(cfg: Config, batch_size: int, key: jax.Array) -> Batch:
    """An update batch of random observations (uint8 images for pixels), actions in [-1, 1] and
    rewards in [0, 1]."""
    k = jax.random.split(key, 3)
    h = cfg.horizon
    if cfg.obs == "rgb":
        obs = jax.random.randint(k[0], (h + 1, batch_size, *cfg.image_shape), 0, 256).astype(jnp.uint8)
    else:
        obs = jax.random.normal(k[0], (h + 1, batch_size, cfg.obs_dim))
    return Batch(obs=obs,
                 action=jax.random.uniform(k[1], (h, batch_size, cfg.action_dim), minval=-1, maxval=1),
                 reward=jax.random.uniform(k[2], (h, batch_size)), terminated=jnp.zeros((h, batch_size)))


def first_call(fn: Callable[[], Any]) -> float:
    """Seconds of one call of fn (which must return jax arrays), until its results are ready."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def warm_times(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Seconds of each of `repeats` calls of fn."""
    return [first_call(fn) for _ in range(repeats)]


def spread(times: list[float]) -> dict[str, float]:
    """Median, 10th and 90th percentile of call times."""
    ordered = sorted(times)
    median = statistics.median(ordered)
    return dict(median_s=median, p10_s=ordered[len(ordered) // 10], p90_s=ordered[(9 * len(ordered)) // 10],
                calls_per_s=1.0 / median)


def time_calls(fn: Callable[[], Any], repeats: int) -> dict[str, float]:
    """First call (compile + run) and the spread of `repeats` warm calls of fn."""
    first = first_call(fn)
    return dict(first_call_s=first, **spread(warm_times(fn, repeats)))


def report(name: str, stats: dict[str, float]) -> str:
    return (f"{name:<28} first call {stats['first_call_s']:6.2f} s   median {stats['median_s'] * 1e3:8.1f} ms "
            f"(p10 {stats['p10_s'] * 1e3:.1f}, p90 {stats['p90_s'] * 1e3:.1f})   {stats['calls_per_s']:7.2f} calls/s")


def write_results(results: dict, path: str | None) -> None:
    """`results` as indented JSON at `path` (nothing when no path is given), and a line saying so."""
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=1)
        print(f"wrote {path}")
