import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tdmpc2_jax.buffers import device
from tdmpc2_jax.types import Transition


def run_envs(capacity, num_envs, horizon, lengths, steps, seed=0):
    """Inserts `steps` agent steps of envs whose episodes have the given lengths (cycled per env).

    obs encodes (env, episode, step) so every sampled window can be checked.
    """
    buffer = device.init(capacity, num_envs, 3, 1)
    insert = jax.jit(device.insert)
    episode = np.zeros(num_envs, np.int32)
    step = np.zeros(num_envs, np.int32)
    for _ in range(steps):
        obs = np.stack([np.arange(num_envs), episode, step], axis=1).astype(np.float32)
        next_obs = obs + np.array([0, 0, 1], np.float32)
        buffer = insert(buffer, Transition(
            obs=jnp.asarray(obs), action=jnp.asarray(obs[:, 2:3]), reward=jnp.asarray(obs[:, 1] * 1000 + obs[:, 2]),
            next_obs=jnp.asarray(next_obs), terminated=jnp.zeros(num_envs), episode=jnp.asarray(episode),
            step=jnp.asarray(step)))
        step += 1
        ended = step >= np.array([lengths[(e + i) % len(lengths)] for i, e in enumerate(episode)])
        episode = np.where(ended, episode + 1, episode)
        step = np.where(ended, 0, step)
    return buffer


@settings(max_examples=25, deadline=None)
@given(num_envs=st.integers(1, 4), horizon=st.integers(1, 4), lengths=st.lists(st.integers(1, 12), min_size=1,
                                                                                 max_size=4),
       steps=st.integers(5, 70))
@pytest.mark.slow
def test_windows_are_consecutive_steps_of_one_episode(num_envs, horizon, lengths, steps):
    capacity = max(lengths) + horizon + 3
    buffer = run_envs(capacity, num_envs, horizon, lengths, steps)
    if not bool(device.valid_starts(buffer, horizon).any()):
        return
    batch = jax.jit(device.sample, static_argnums=(2, 3))(buffer, jax.random.key(steps), 64, horizon)
    obs = np.asarray(batch.obs)
    assert np.all(obs[..., 0] == obs[:1, :, 0]) and np.all(obs[..., 1] == obs[:1, :, 1]), "mixed env/episode"
    assert np.all(np.diff(obs[..., 2], axis=0) == 1), "steps not consecutive"
    np.testing.assert_array_equal(np.asarray(batch.action)[..., 0], obs[:-1, :, 2])
    np.testing.assert_array_equal(np.asarray(batch.reward), obs[:-1, :, 1] * 1000 + obs[:-1, :, 2])


@pytest.mark.slow
def test_shapes_capacity_and_uniform_sampling():
    buffer = run_envs(capacity=40, num_envs=2, horizon=3, lengths=[10], steps=30)
    chex.assert_shape(buffer.obs, (40, 2, 3))
    assert int(buffer.size) == 30 and int(buffer.cursor) == 30
    assert int(device.valid_starts(buffer, 3).sum()) == 2 * 3 * 8  # 3 episodes of 10 steps, 8 windows each
    batch = device.sample(buffer, jax.random.key(1), 48_000, 3)
    chex.assert_shape(batch.obs, (4, 48_000, 3))
    chex.assert_shape([batch.reward, batch.terminated], (3, 48_000))
    starts = np.asarray(batch.obs[0])
    _, counts = np.unique(starts, axis=0, return_counts=True)
    assert len(counts) == 48 and counts.min() > 850 and counts.max() < 1150


@pytest.mark.slow
def test_overwritten_rows_break_their_windows():
    buffer = run_envs(capacity=12, num_envs=1, horizon=2, lengths=[5], steps=15)  # 3 rows of episode 0 overwritten
    batch = device.sample(buffer, jax.random.key(2), 2000, 2)
    starts = np.asarray(batch.obs[0])
    assert not np.any((starts[:, 1] == 0) & (starts[:, 2] < 3)), "a window reads overwritten rows"
    assert set(starts[:, 1].tolist()) <= {0.0, 1.0, 2.0}


@pytest.mark.slow
def test_insert_and_sample_trace_once_and_update_the_buffer_in_place():
    buffer = device.init(16, 2, 3, 1)
    insert = jax.jit(chex.assert_max_traces(device.insert, n=1))
    sample = jax.jit(chex.assert_max_traces(device.sample, n=1), static_argnums=(2, 3))
    for i in range(6):  # new values of the same shapes: no retrace (assert_max_traces raises on a second)
        step = jnp.full(2, i, jnp.int32)
        buffer = insert(buffer, Transition(jnp.full((2, 3), float(i)), jnp.zeros((2, 1)), jnp.ones(2),
                                           jnp.full((2, 3), i + 1.0), jnp.zeros(2), jnp.zeros(2, jnp.int32), step))
        if i >= 2:
            chex.assert_shape(sample(buffer, jax.random.key(i), 4, 2).obs, (3, 4, 3))
    lowered = jax.jit(device.insert).lower(buffer, Transition(
        jnp.zeros((2, 3)), jnp.zeros((2, 1)), jnp.zeros(2), jnp.zeros((2, 3)), jnp.zeros(2),
        jnp.zeros(2, jnp.int32), jnp.zeros(2, jnp.int32)))
    assert "dynamic-update-slice" in lowered.compile().as_text() or "dynamic_update_slice" in lowered.as_text()
    assert device.bytes_needed(1_000_000, 1, 24, 6) == 1_000_000 * (4 * (48 + 6 + 2) + 8)
