"""Shared timing helpers for the benchmarks: compile time, then median and spread of warm calls."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import jax


def time_calls(fn: Callable[[], Any], repeats: int) -> dict[str, float]:
    """First call (compile + run) and `repeats` warm calls of fn (which must return jax arrays)."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    times.sort()
    median = statistics.median(times)
    return dict(first_call_s=first, median_s=median, p10_s=times[len(times) // 10],
                p90_s=times[(9 * len(times)) // 10], calls_per_s=1.0 / median)


def report(name: str, stats: dict[str, float]) -> str:
    return (f"{name:<28} first call {stats['first_call_s']:6.2f} s   median {stats['median_s'] * 1e3:8.1f} ms "
            f"(p10 {stats['p10_s'] * 1e3:.1f}, p90 {stats['p90_s'] * 1e3:.1f})   {stats['calls_per_s']:7.2f} calls/s")
