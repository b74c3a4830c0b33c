"""The shared rollout: episode totals stop at each environment's first end, on a terminating task."""
import chex
import jax
import jax.numpy as jnp
import numpy as np

from tdmpc2_jax import acting, xla
from tdmpc2_jax.envs.mjx import MJXEnv

from toy_env import PointMass


def test_first_episode_totals_count_up_to_and_including_the_first_end():
    reward = jnp.ones((6, 3))
    ended = jnp.zeros((6, 3), bool).at[1, 0].set(True).at[4, 0].set(True).at[5, 2].set(True)
    returns, lengths = acting.first_episode_totals(reward, ended)
    np.testing.assert_array_equal(returns, [2.0, 6.0, 6.0])
    np.testing.assert_array_equal(lengths, [2, 6, 6])


def test_a_rollout_on_a_terminating_task_counts_only_the_first_episode():
    env = MJXEnv("toy", episode_length=40, playground_env=PointMass(terminates=True))
    push = lambda state, obs, keys, t0: (jnp.where(jnp.arange(obs.shape[0])[:, None] == 0, 1.0, -1.0)
                                         * jnp.ones((obs.shape[0], 1)), state, t0)
    result = xla.jit(lambda k: acting.rollout(env, push, (), k, 2, 40))(jax.random.key(0))
    chex.assert_shape((result.reward, result.ended, result.info), (40, 2))
    reward, ended = np.asarray(result.reward), np.asarray(result.ended)
    for n in range(2):
        end = int(np.flatnonzero(ended[:, n])[0])  # full force runs the mass off the line well before 40 steps
        assert end < 39
        np.testing.assert_allclose(result.returns[n], reward[: end + 1, n].sum(), rtol=1e-6)
        assert int(result.lengths[n]) == end + 1
        assert reward[end + 1:, n].sum() > 0  # the next episode's rewards are there, and not counted
        assert bool(result.info[0, n]) and bool(result.info[end + 1, n])  # t0 again after the automatic reset


def test_a_rollout_reports_its_progress_every_tenth_without_changing_its_results():
    env = MJXEnv("toy", episode_length=40, playground_env=PointMass())
    push = lambda state, obs, keys, t0: (jnp.ones((obs.shape[0], 1)) * 0.3, state, t0)
    reported = []
    run = lambda on_progress: xla.jit(lambda k: acting.rollout(env, push, (), k, 2, 25, on_progress=on_progress))(
        jax.random.key(1))
    quiet, loud = run(None), run(lambda done: reported.append(int(done)))
    jax.effects_barrier()
    assert reported == [3, 5, 8, 10, 13, 15, 18, 20, 23, 25]
    chex.assert_trees_all_equal(quiet, loud)
