import chex
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tdmpc2_jax.buffers.episodic import EpisodeBuffer


def fill(buffer, lengths, obs_dim=2, action_dim=1):
    """Episodes whose every value encodes (episode, step) so a window can be traced back."""
    for e, length in enumerate(lengths):
        steps = np.arange(length + 1, dtype=np.float32)
        obs = np.zeros((length + 1, obs_dim), np.float32)
        obs[:, 0], obs[:, 1] = e, steps
        action = np.full((length, action_dim), e, np.float32)
        reward = steps[1:] + 1000 * e
        buffer.add_episode(obs, action, reward)


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(8, 60), horizon=st.integers(1, 5), lengths=st.lists(st.integers(1, 20), min_size=1,
                                                                                    max_size=12))
def test_windows_never_cross_an_episode_boundary(capacity, horizon, lengths):
    lengths = [n for n in lengths if n + 1 <= capacity]
    buffer = EpisodeBuffer(capacity, 2, 1, horizon)
    fill(buffer, lengths)
    if buffer.num_windows == 0:
        with pytest.raises(ValueError, match="no complete window"):
            buffer.sample(np.random.default_rng(0), 4)
        return
    batch = buffer.sample(np.random.default_rng(0), 64)
    episode = batch.obs[..., 0]
    step = batch.obs[..., 1]
    assert np.all(episode == episode[0]), "a window mixes episodes"
    assert np.all(np.diff(step, axis=0) == 1), "a window skips or wraps steps"
    assert np.all(batch.action[..., 0] == episode[1:]) and np.all(batch.reward == step[1:] + 1000 * episode[1:])
    assert not np.isnan(batch.action).any() and not np.isnan(batch.reward).any()


def test_sampling_is_uniform_over_valid_starts():
    buffer = EpisodeBuffer(1000, 2, 1, horizon=3)
    fill(buffer, [10, 30])  # starts at steps 0..7 and 0..27
    assert buffer.num_windows == 36
    batch = buffer.sample(np.random.default_rng(1), 36_000)
    counts = np.unique(batch.obs[0, :, 0] * 100 + batch.obs[0, :, 1], return_counts=True)[1]
    assert len(counts) == 36 and counts.min() > 850 and counts.max() < 1150


def test_overwritten_episodes_stop_offering_windows():
    buffer = EpisodeBuffer(25, 2, 1, horizon=2)
    fill(buffer, [10, 10, 10])  # the third episode overwrites the start of the first
    episodes = set(buffer.sample(np.random.default_rng(2), 500).obs[0, :, 0].tolist())
    assert episodes == {1.0, 2.0}


def test_shapes_and_memory_report():
    buffer = EpisodeBuffer(100, 5, 2, horizon=3)
    fill(buffer, [20], obs_dim=5, action_dim=2)
    batch = buffer.sample(np.random.default_rng(3), 8)
    chex.assert_shape(batch.obs, (4, 8, 5))
    chex.assert_shape(batch.action, (3, 8, 2))
    chex.assert_shape([batch.reward, batch.terminated], (3, 8))
    assert batch.obs.dtype == np.float32 and buffer.nbytes >= 100 * (5 + 2 + 2) * 4


def test_state_dict_round_trip_continues_identically():
    a = EpisodeBuffer(40, 2, 1, horizon=2)
    fill(a, [7, 9, 12])
    b = EpisodeBuffer(40, 2, 1, horizon=2)
    b.load_state_dict({k: np.array(v) for k, v in a.state_dict().items()})
    fill(a, [15])
    fill(b, [15])
    chex.assert_trees_all_equal(a.sample(np.random.default_rng(4), 16), b.sample(np.random.default_rng(4), 16))


def test_bad_episodes_are_refused():
    buffer = EpisodeBuffer(10, 2, 1, horizon=2)
    with pytest.raises(ValueError, match="does not fit"):
        fill(buffer, [12])
    with pytest.raises(ValueError, match="obs \\[T\\+1\\]"):
        buffer.add_episode(np.zeros((3, 2)), np.zeros((3, 1)), np.zeros(3))
