"""The modes of the speculative-execution protocol and one run of a mode: episodes, returns,
planner calls per step, wall-clock per step and the distribution of e_k."""
from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import numpy as np

from tdmpc2_jax import acting, xla


class Mode(NamedTuple):
    name: str
    k: int
    fallback: bool = False
    corrector: str | None = None


def protocol_modes(ks: list[int], corrector_names: list[str]) -> list[Mode]:
    modes = [Mode("full", 1)]
    for k in ks:
        modes += [Mode(f"naive-{k}", k), Mode(f"fallback-{k}", k, fallback=True)]
        for name in corrector_names:
            modes += [Mode(f"{name}-{k}", k, corrector=name), Mode(f"{name}-{k}+fallback", k, True, name)]
    return modes


def run_mjx(env, speculator, params, corrector_params, key: jax.Array, episodes: int) -> dict[str, Any]:
    """One episode per environment, all at once; the wall-clock of the compiled program's run."""
    from tdmpc2_jax.speculative.rollout import episodes_batch

    rollout = xla.jit(lambda p, c, k: episodes_batch(env, speculator, p, c, k, episodes, env.episode_length))
    rollout = rollout.lower(params, corrector_params, key).compile()
    start = time.perf_counter()
    result = jax.block_until_ready(rollout(params, corrector_params, key))
    seconds = time.perf_counter() - start
    return summarize(np.asarray(result.returns), result.info, seconds / env.episode_length,
                     speculator.settings.horizon_k)


def host_episodes(env, speculator, params, corrector_params, key: jax.Array, episodes: int):
    """Episodes one after another on host MuJoCo: (returns [E], StepInfo [steps], seconds per step
    of the jitted speculative step, encoder included, without the first (compiling) call)."""
    step = xla.jit(speculator.step)
    policy = lambda state, obs, k, t0: step(params, corrector_params, state, obs, k, t0)
    result = acting.host_episodes(env, policy, speculator.init_state, key, episodes)
    return result.returns, result.info, result.seconds[1:]  # the first call compiles


def run_host(env, speculator, params, corrector_params, key: jax.Array, episodes: int) -> dict[str, Any]:
    """Per step: the mean over steps, replans and reuses together (a median would be a reuse's time)."""
    returns, info, times = host_episodes(env, speculator, params, corrector_params, key, episodes)
    return summarize(returns, info, float(np.mean(times)), speculator.settings.horizon_k)


def summarize(returns: np.ndarray, info, seconds_per_step: float, horizon_k: int) -> dict[str, Any]:
    k, mismatch = np.asarray(info.k), np.asarray(info.mismatch)
    checked = mismatch[(k >= 1) & (k < horizon_k)]
    return dict(returns=returns, return_mean=float(returns.mean()), return_std=float(returns.std()),
                return_p5=float(np.percentile(returns, 5)), calls_per_step=float(np.asarray(info.replanned).mean()),
                fallback_rate=float(np.asarray(info.fallback).mean()), ms_per_step=1e3 * seconds_per_step,
                e_p50=float(np.median(checked)) if checked.size else float("nan"),
                e_p95=float(np.percentile(checked, 95)) if checked.size else float("nan"))
