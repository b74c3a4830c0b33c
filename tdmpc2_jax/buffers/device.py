"""On-device replay buffer for batched environments: a pytree of jax arrays, pure functions only.

Every agent step of N environments inserts one transition row per environment (obs, action,
reward, next_obs, terminated) at the ring position `cursor` (time-major: [capacity, N, ...]).
Each row also records its episode (a per-environment counter) and its step within the episode,
so a window of H rows is valid exactly when its rows are H consecutive steps of one episode; an
overwritten row carries a newer episode or step and breaks every window through it. Sampling
draws (time, env) uniformly over valid windows: obs [H+1, B] (H rows' obs plus the last row's
next_obs), action [H, B], reward [H, B] - the same contract as the host EpisodeBuffer.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from tdmpc2_jax.types import Batch, Transition


class DeviceBuffer(NamedTuple):
    obs: jax.Array  # [C, N, obs_dim]
    action: jax.Array  # [C, N, A]
    reward: jax.Array  # [C, N]
    next_obs: jax.Array  # [C, N, obs_dim]
    terminated: jax.Array  # [C, N]
    episode: jax.Array  # [C, N] int32, -1 where empty
    step: jax.Array  # [C, N] int32 step of the row within its episode
    cursor: jax.Array  # [] int32 next row to write
    size: jax.Array  # [] int32 rows written so far (saturates at C)
    task: jax.Array | None = None  # [N] int32 task of each environment (multitask only)



def rows_per_env(transitions: int, num_envs: int, episode_length: int, horizon: int) -> int:
    """Rows per environment that keep `transitions` transitions over `num_envs` environments, and
    at least one whole episode plus a window."""
    return max(transitions // num_envs, episode_length + horizon + 1)


def bytes_needed(capacity: int, num_envs: int, obs_dim: int, action_dim: int) -> int:
    """Memory of a DeviceBuffer, to refuse one that would not fit before allocating it."""
    per_row = 4 * (2 * obs_dim + action_dim + 2) + 2 * 4
    return capacity * num_envs * per_row


def init(capacity: int, num_envs: int, obs_dim: int, action_dim: int, task: jax.Array | None = None) -> DeviceBuffer:
    """An empty buffer of `capacity` rows per environment (`task` [N]: each one's task, multitask only)."""
    c, n = capacity, num_envs
    return DeviceBuffer(
        obs=jnp.zeros((c, n, obs_dim), jnp.float32), action=jnp.zeros((c, n, action_dim), jnp.float32),
        reward=jnp.zeros((c, n), jnp.float32), next_obs=jnp.zeros((c, n, obs_dim), jnp.float32),
        terminated=jnp.zeros((c, n), jnp.float32), episode=jnp.full((c, n), -1, jnp.int32),
        step=jnp.zeros((c, n), jnp.int32), cursor=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32), task=task)


def insert(buffer: DeviceBuffer, t: Transition) -> DeviceBuffer:
    """Writes one row per environment at `cursor` (dynamic_update_slice, no host round trip)."""
    row = lambda array, value: jax.lax.dynamic_update_index_in_dim(array, value.astype(array.dtype),
                                                                   buffer.cursor, axis=0)
    capacity = buffer.obs.shape[0]
    return DeviceBuffer(
        obs=row(buffer.obs, t.obs), action=row(buffer.action, t.action), reward=row(buffer.reward, t.reward),
        next_obs=row(buffer.next_obs, t.next_obs), terminated=row(buffer.terminated, t.terminated),
        episode=row(buffer.episode, t.episode), step=row(buffer.step, t.step),
        cursor=(buffer.cursor + 1) % capacity, size=jnp.minimum(buffer.size + 1, capacity), task=buffer.task)


def valid_starts(buffer: DeviceBuffer, horizon: int) -> jax.Array:
    """[C, N] bool: rows t..t+H-1 (mod C) are H consecutive steps of one episode."""
    last = jnp.roll(buffer.episode, -(horizon - 1), axis=0), jnp.roll(buffer.step, -(horizon - 1), axis=0)
    same_episode = (buffer.episode >= 0) & (last[0] == buffer.episode)
    return same_episode & (last[1] - buffer.step == horizon - 1)


def sample(buffer: DeviceBuffer, key: jax.Array, batch_size: int, horizon: int) -> Batch:
    """B windows drawn uniformly over valid (time, env) starts: obs [H+1, B], action [H, B], reward [H, B]
    (and task [B], the environments' tasks, in a multitask buffer).

    The caller makes sure a valid window exists (e.g. after the first H steps); otherwise the
    windows are arbitrary rows.
    """
    capacity, num_envs = buffer.episode.shape
    valid = valid_starts(buffer, horizon).reshape(-1)
    flat = jax.random.choice(key, capacity * num_envs, (batch_size,), p=valid / jnp.maximum(valid.sum(), 1))
    start, env = flat // num_envs, flat % num_envs
    rows = (start[None, :] + jnp.arange(horizon)[:, None]) % capacity  # [H, B]
    take = lambda array: array[rows, env[None, :]]
    obs = jnp.concatenate([take(buffer.obs), take(buffer.next_obs)[-1:]], axis=0)
    return Batch(obs=obs, action=take(buffer.action), reward=take(buffer.reward),
                 terminated=take(buffer.terminated), task=None if buffer.task is None else buffer.task[env])
