"""Playground MJX adapter: protocol, automatic reset, time-limit truncation, episode statistics."""
import jax
import numpy as np
import pytest

from tdmpc2_jax import xla
from tdmpc2_jax.envs.mjx import MJXEnv, playground_name


def test_names_map_to_playground_and_host_only_tasks_point_to_dmc():
    assert playground_name("cheetah-run") == "CheetahRun"
    assert playground_name("cup-catch") == "BallInCup"
    assert playground_name("cartpole-swingup-sparse") == "CartpoleSwingupSparse"
    with pytest.raises(ValueError, match="configs/dmc.py:dog-run"):
        playground_name("dog-run")
    with pytest.raises(ValueError, match="did you mean 'walker-walk'"):
        playground_name("walker-wakl")


def test_batched_steps_reset_each_env_at_the_time_limit_and_report_episodes():
    env = MJXEnv("cartpole-balance", episode_length=5)
    assert (env.obs_dim, env.action_dim) == (5, 1)
    states = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 2))

    def body(states, action):
        states, out = jax.vmap(env.step)(states, action)
        return states, out

    actions = jax.random.uniform(jax.random.key(1), (12, 2, 1), minval=-1, maxval=1)
    states, outs = xla.jit(lambda s, a: jax.lax.scan(body, s, a))(states, actions)
    ended = np.asarray(outs.ended)
    np.testing.assert_array_equal(ended[:, 0], [0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(np.asarray(states.episode), [2, 2])
    np.testing.assert_array_equal(np.asarray(states.t), [2, 2])
    assert not np.asarray(outs.terminated).any(), "a time limit is a truncation, not a terminal"
    rewards = np.asarray(outs.reward)
    np.testing.assert_allclose(np.asarray(outs.episode_return)[4], rewards[:5].sum(0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(outs.episode_return)[9], rewards[5:10].sum(0), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(outs.episode_length)[[4, 9]], 5)
    # After a reset the next observation is a fresh start, not the episode's last observation.
    assert not np.allclose(outs.obs[4], outs.final_obs[4])
    np.testing.assert_allclose(outs.obs[3], outs.final_obs[3])
    assert np.all(rewards >= 0) and np.all(rewards <= 2.0)  # two physics steps of reward in [0, 1]


def test_batched_step_equals_vmapped_step_across_resets():
    """step_batch computes resets only when some episode ended, with the same results as vmap(step)."""
    env = MJXEnv("cartpole-balance", episode_length=3)
    states = jax.vmap(env.reset)(jax.random.split(jax.random.key(2), 3))
    actions = jax.random.uniform(jax.random.key(3), (7, 3, 1), minval=-1, maxval=1)

    def rollout(step):
        return xla.jit(lambda s, a: jax.lax.scan(lambda s, a: step(s, a), s, a))(states, actions)

    batched = rollout(env.step_batch)
    vmapped = rollout(jax.vmap(env.step))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 jax.tree.map(lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
                              else x, batched),
                 jax.tree.map(lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
                              else x, vmapped))
    assert np.asarray(batched[1].ended).sum() == 6  # two resets per env in 7 steps
