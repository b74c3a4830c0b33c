"""Speculative episodes on MJX environments as one `lax.scan` (one env, or a batch of N)."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from tdmpc2_jax import acting
from tdmpc2_jax.envs.mjx import MJXEnv
from tdmpc2_jax.speculative.controller import Checks, Speculator, StepInfo


class Trace(NamedTuple):
    reward: jax.Array  # [T] (or [T, N])
    ended: jax.Array  # [T] bool
    info: StepInfo  # leaves [T] (or [T, N])


def episode(env: MJXEnv, speculator: Speculator, params, corrector_params, key: jax.Array, steps: int) -> Trace:
    """`steps` agent steps of one environment from a reset (automatic resets after that)."""
    k_reset, k_steps = jax.random.split(key)
    env_state = env.reset(k_reset)

    def body(carry, k):
        env_state, state = carry
        action, state, info = speculator.step(params, corrector_params, state, env_state.inner.obs, k,
                                              env_state.t == 0)
        env_state, out = env.step(env_state, action)
        return (env_state, state), Trace(out.reward, out.ended, info)

    _, trace = jax.lax.scan(body, (env_state, speculator.init_state()), jax.random.split(k_steps, steps))
    return trace


def episodes_batch(env: MJXEnv, speculator: Speculator, params, corrector_params, key: jax.Array, num_envs: int,
                   steps: int, on_progress=None) -> acting.Rollout:
    """`steps` agent steps of N environments; the planner runs for the batch only when some env replans.
    The totals count each environment's first episode; `info` is the controller's StepInfo [T, N]
    (`on_progress`: as in `acting.rollout`)."""
    state = jax.tree.map(lambda x: jnp.broadcast_to(x, (num_envs,) + x.shape), speculator.init_state())
    policy = lambda state, obs, keys, t0: speculator.step_batch(params, corrector_params, state, obs, keys, t0)
    return acting.rollout(env, policy, state, key, num_envs, steps, on_progress=on_progress)


def calibration_batch(env: MJXEnv, speculator: Speculator, params, key: jax.Array, num_envs: int, steps: int,
                      on_progress=None) -> Checks:
    """Full replanning on N environments for `steps` steps: the mismatch checks [T, N, K-1] of
    `Speculator.calibration_step` (for calibration; `on_progress`: as in `acting.rollout`)."""
    state = jax.tree.map(lambda x: jnp.broadcast_to(x, (num_envs,) + x.shape), speculator.init_calibration_state())
    watch = jax.vmap(speculator.calibration_step, in_axes=(None, 0, 0, 0, 0))
    policy = lambda state, obs, keys, t0: watch(params, state, obs, keys, t0)
    return acting.rollout(env, policy, state, key, num_envs, steps, on_progress=on_progress).info
