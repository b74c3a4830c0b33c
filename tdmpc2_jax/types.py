"""The data every layer passes around: parameters, update batches and environment transitions."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax

Params = dict[str, Any]  # a Flax parameter pytree


class Batch(NamedTuple):
    """Sub-sequences of H+1 steps that never cross an episode boundary."""

    obs: jax.Array  # [H+1, B, obs_dim]
    action: jax.Array  # [H, B, A]   action[t] leads from obs[t] to obs[t+1]
    reward: jax.Array  # [H, B]
    terminated: jax.Array  # [H, B] (zeros for non-episodic tasks)
    task: jax.Array | None = None  # [B] int32 task index (multitask only)


class Transition(NamedTuple):
    """One agent step of N environments."""

    obs: jax.Array  # [N, obs_dim]
    action: jax.Array  # [N, A]
    reward: jax.Array  # [N]
    next_obs: jax.Array  # [N, obs_dim] (the last obs of the episode when it ends here)
    terminated: jax.Array  # [N]
    episode: jax.Array  # [N] int32 episode counter of each environment
    step: jax.Array  # [N] int32 step within the episode (0 for the first transition)
