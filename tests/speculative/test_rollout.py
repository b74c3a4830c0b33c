"""Speculative rollouts on MJX: the scan equals a Python loop, the batch equals each env, and
returns on a terminating task stop at each episode end."""
import chex
import jax
import numpy as np
import pytest

from tdmpc2_jax import xla
from tdmpc2_jax.envs.mjx import MJXEnv
from tdmpc2_jax.speculative.controller import SpecSettings, Speculator
from tdmpc2_jax.speculative.rollout import episode, episodes_batch

from toy_env import PointMass


@pytest.mark.slow
def test_the_scan_rollout_equals_a_python_loop_and_the_batch_equals_each_env(model, params):
    env = MJXEnv("toy", episode_length=5, playground_env=PointMass())
    speculator = Speculator(model, SpecSettings(horizon_k=2))
    trace = xla.jit(lambda k: episode(env, speculator, params, None, k, 8))(jax.random.key(4))

    k_reset, k_steps = jax.random.split(jax.random.key(4))
    env_state, state, step = env.reset(k_reset), speculator.init_state(), xla.jit(speculator.step)
    rewards, replanned = [], []
    for k in jax.random.split(k_steps, 8):
        action, state, info = step(params, None, state, env_state.inner.obs, k, env_state.t == 0)
        env_state, out = env.step(env_state, action)
        rewards.append(out.reward)
        replanned.append(info.replanned)
    np.testing.assert_allclose(np.asarray(trace.reward), np.asarray(rewards), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(trace.info.replanned), np.asarray(replanned))
    np.testing.assert_array_equal(np.asarray(trace.info.replanned), [1, 0, 1, 0, 1, 1, 0, 1])  # reset after 5

    batch = xla.jit(lambda k: episodes_batch(env, speculator, params, None, k, 3, 8))(jax.random.key(5))
    chex.assert_shape(batch.reward, (8, 3))
    assert int(batch.info.replanned.sum()) == 3 * 5


@pytest.mark.slow
def test_speculative_returns_on_a_terminating_task_stop_at_each_episode_end(model, params):
    from tdmpc2_jax.speculative.modes import run_mjx

    # starts are uniform in [-1, 1]: most episodes end at once, the rest within a few steps or never
    env = MJXEnv("toy", episode_length=8, playground_env=PointMass(terminates=True, limit=0.5))
    speculator = Speculator(model, SpecSettings(horizon_k=2))
    key = jax.random.key(9)
    result = run_mjx(env, speculator, params, None, key, episodes=6)
    rollout = xla.jit(lambda k: episodes_batch(env, speculator, params, None, k, 6, 8))(key)
    reward, ended = np.asarray(rollout.reward), np.asarray(rollout.ended)
    first_end = np.where(ended.any(0), ended.argmax(0), 7)
    expected = np.asarray([reward[: first_end[n] + 1, n].sum() for n in range(6)])
    np.testing.assert_allclose(result["returns"], expected, rtol=1e-6)
    assert (first_end < 7).sum() >= 3  # several episodes ended early; their later rewards are not counted
    assert np.all(reward.sum(0)[first_end < 7] > expected[first_end < 7])
