"""The plan buffer: what one MPPI solve predicts for the next K steps of one environment.

After a replan at step t the buffer holds, for k = 0..K-1, the action to execute at step t+k and
the latent the world model predicts for the observation at t+k when exactly those actions are
executed: latents[0] is the encoded observation the plan was made for, latents[k] =
next(latents[k-1], actions[k-1]). actions[0] is the plan's executed action; actions[1..H-1] come
from the MPPI mean or from the sampled elite sequence (`source`); beyond the planning horizon H the
buffer is extended with the policy prior's mean action at the predicted latent. k is the index
of the next step to execute (1 right after the replan, which executed actions[0]).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from tdmpc2_jax.planner import Plan
from tdmpc2_jax.types import Params

SOURCES = ("mean", "elite")


class PlanBuffer(NamedTuple):
    actions: jax.Array  # [K, A]
    latents: jax.Array  # [K, L] predicted latent at each step (latents[0]: the planned-for observation)
    std: jax.Array  # [K, A] final MPPI std per step (the last step's std beyond the horizon)
    k: jax.Array  # [] int32 next step to execute


def empty(horizon_k: int, latent_dim: int, action_dim: int) -> PlanBuffer:
    """A buffer that forces a replan (k = K)."""
    return PlanBuffer(jnp.zeros((horizon_k, action_dim)), jnp.zeros((horizon_k, latent_dim)),
                      jnp.zeros((horizon_k, action_dim)), jnp.asarray(horizon_k, jnp.int32))


def build(model, params: Params, plan: Plan, horizon_k: int, source: str = "mean", task=None) -> PlanBuffer:
    """The buffer of one plan for execution horizon K (any K >= 1, also beyond the plan's horizon)."""
    if source not in SOURCES:
        raise ValueError(f"plan buffer source must be one of {SOURCES}, got {source!r}")
    planned = plan.mean if source == "mean" else plan.sequence  # [H, A]
    horizon = planned.shape[0]

    def body(z, k):
        from_plan = planned[jnp.minimum(k, horizon - 1)]
        prior_mean = model.pi(params, z, jnp.zeros_like(from_plan), task).action
        action = jnp.where(k == 0, plan.action, jnp.where(k < horizon, from_plan, prior_mean))
        return model.next(params, z, action, task), (action, z)

    _, (actions, latents) = jax.lax.scan(body, plan.z, jnp.arange(horizon_k))
    std = plan.std[jnp.minimum(jnp.arange(horizon_k), horizon - 1)]
    return PlanBuffer(actions, latents, std, jnp.ones((), jnp.int32))


def shift_mean(mean: jax.Array, steps: jax.Array) -> jax.Array:
    """mean [H, A] moved `steps` steps earlier, zeros shifted in (the warm start after reusing a plan)."""
    padded = jnp.concatenate([mean, jnp.zeros_like(mean)], axis=0)
    return jax.lax.dynamic_slice_in_dim(padded, jnp.minimum(steps, mean.shape[0]), mean.shape[0], axis=0)
