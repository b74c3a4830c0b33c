"""Acting in batched MJX environments: one rollout for every policy (the planner in eval mode, a
speculative controller), and episode totals that stop counting where an episode ends.

A policy is `policy(state, obs [N, obs_dim], keys [N], t0 [N]) -> (action [N, A], state, info)`;
`info` is any pytree the caller wants per step (stacked to leaves [T, N, ...]).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from tdmpc2_jax.envs.mjx import MJXEnv

Policy = Callable[[Any, jax.Array, jax.Array, jax.Array], tuple[jax.Array, Any, Any]]


class Rollout(NamedTuple):
    returns: jax.Array  # [N] return of each environment's first episode
    lengths: jax.Array  # [N] int32 its length (the rollout's steps where it did not end)
    reward: jax.Array  # [T, N] every step's reward, episodes after an automatic reset included
    ended: jax.Array  # [T, N] bool
    info: Any  # the policy's info, leaves [T, N, ...]


def first_episode_totals(reward: jax.Array, ended: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(returns [N], lengths [N]) of the first episode in per-step rewards and ends [T, N]: a step
    counts while no earlier step of its environment ended (the ending step itself counts)."""
    ended = ended.astype(jnp.int32)
    alive = (jnp.cumsum(ended, axis=0) - ended) == 0
    return jnp.sum(jnp.where(alive, reward, 0.0), axis=0), jnp.sum(alive, axis=0, dtype=jnp.int32)


def rollout(env: MJXEnv, policy: Policy, policy_state: Any, key: jax.Array, num_envs: int, steps: int) -> Rollout:
    """`steps` steps of `num_envs` environments from a reset, as one `lax.scan` (automatic resets
    after an episode ends; its totals count the first episode only)."""
    k_reset, k_steps = jax.random.split(key)
    env_state = jax.vmap(env.reset)(jax.random.split(k_reset, num_envs))

    def step(carry, k):
        env_state, state = carry
        action, state, info = policy(state, env_state.inner.obs, jax.random.split(k, num_envs), env_state.t == 0)
        env_state, out = env.step_batch(env_state, action)
        return (env_state, state), (out.reward, out.ended, info)

    _, (reward, ended, info) = jax.lax.scan(step, (env_state, policy_state), jax.random.split(k_steps, steps))
    returns, lengths = first_episode_totals(reward, ended)
    return Rollout(returns, lengths, reward, ended, info)
