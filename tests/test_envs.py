"""The host dm_control adapter: protocol, task names, custom variants, seeding; the random goals of
Meta-World and MyoSuite tasks."""
import numpy as np
import pytest

from tdmpc2_jax.envs import custom_tasks
from tdmpc2_jax.envs.dmc import DMCEnv, resolve, task_names
from tdmpc2_jax.envs.registry import make_host_env

OFFICIAL_TASKS = ["acrobot-swingup", "cartpole-balance", "cartpole-balance-sparse", "cartpole-swingup",
                  "cartpole-swingup-sparse", "cheetah-run", "cup-catch", "dog-run", "dog-stand", "dog-trot", "dog-walk",
                  "finger-spin", "finger-turn-easy", "finger-turn-hard", "fish-swim", "hopper-hop", "hopper-stand",
                  "humanoid-run", "humanoid-stand", "humanoid-walk", "pendulum-swingup", "quadruped-run",
                  "quadruped-walk", "reacher-easy", "reacher-hard", "walker-run", "walker-stand", "walker-walk",
                  "cheetah-run-backwards", "cheetah-run-front", "cheetah-run-back", "cheetah-jump",
                  "walker-walk-backwards", "walker-run-backwards", "hopper-hop-backwards", "pendulum-spin", "cup-spin",
                  "reacher-three-easy", "reacher-three-hard"]


def test_every_official_task_name_is_known():
    names = task_names()
    assert not [t for t in OFFICIAL_TASKS if t not in names]


@pytest.mark.parametrize("task", sorted(custom_tasks.TASKS))
def test_custom_variants_follow_the_protocol(task):
    env = DMCEnv(task, seed=0, episode_length=20)
    obs = env.reset()
    assert obs.dtype == np.float32 and obs.shape == (env.obs_dim,)
    rng = np.random.default_rng(0)
    steps = [env.step(env.random_action(rng)) for _ in range(20)]
    assert [s.done for s in steps] == [False] * 19 + [True]
    assert all(0.0 <= s.reward <= 2.0 for s in steps)  # two physics steps of rewards in [0, 1]


def test_seeding_and_rng_state_replay_episodes():
    a, b = DMCEnv("reacher-three-easy", seed=3), DMCEnv("reacher-three-easy", seed=3)
    np.testing.assert_array_equal(a.reset(), b.reset())
    state = a.get_rng_state()
    first = a.reset()
    a.set_rng_state(state)
    np.testing.assert_array_equal(a.reset(), first)


def test_actions_are_mapped_to_the_task_bounds():
    env = DMCEnv("cartpole-balance", seed=0)
    env.reset()
    sent = []
    inner_step = env._env.step
    env._env.step = lambda action: (sent.append(action), inner_step(action))[1]
    env.step(np.array([2.0], np.float32))  # clipped to 1, then mapped to the bounds
    assert np.allclose(sent, [[1.0], [1.0]])  # two repeated physics steps


def test_unknown_task_lists_close_matches():
    with pytest.raises(ValueError, match="did you mean 'reacher-three-easy'"):
        resolve("reacher-tree-easy")


@pytest.mark.parametrize("task", ["mw-push", "myo-reach-hard"])
def test_random_goals_come_from_the_tasks_own_random_state(task):
    """Each reset draws a new goal from the task's own random state, and an env given another env's
    saved state draws that env's next goal."""
    a, b = make_host_env(task, seed=3), make_host_env(task, seed=3)
    first = a.reset()
    np.testing.assert_array_equal(first, b.reset())
    state = a.get_rng_state()
    second = a.reset()
    assert not np.allclose(first, second)
    c = make_host_env(task, seed=7)
    c.set_rng_state(state)
    np.testing.assert_array_equal(c.reset(), second)
