"""MyoSuite tasks on MuJoCo 3.17: the official ten reset and step with their shapes, episodes last
100 agent steps without terminating and report `solved`, and a missing package is one clear error
(tests/test_success_logging.py trains on a MyoSuite task; tests/test_envs.py checks that random goals
resume from the saved random state)."""
import sys

import chex
import numpy as np
import pytest

from tdmpc2_jax.envs.registry import action_repeat_of, check_task, make_host_env

OBS_DIMS = {"reach": 115, "pose": 108, "obj-hold": 91, "key-turn": 93, "pen-twirl": 83}


@pytest.mark.slow
def test_every_official_task_resets_and_steps_with_its_shapes():
    from tdmpc2_jax.envs.myosuite import MYOSUITE_TASKS

    assert sorted(MYOSUITE_TASKS) == sorted(f"myo-{name}{hard}" for name in OBS_DIMS for hard in ("", "-hard"))
    rng = np.random.default_rng(0)
    for task in MYOSUITE_TASKS:
        env = make_host_env(task, seed=0)
        obs_dim = OBS_DIMS[task.removeprefix("myo-").removesuffix("-hard")]
        assert (env.obs_dim, env.action_dim, env.episode_length, env.action_repeat) == (obs_dim, 39, 100, 1), task
        obs = env.reset()
        chex.assert_shape(obs, (obs_dim,))
        chex.assert_type(obs, np.float32)
        step = env.step(env.random_action(rng) * 3)  # clipped to [-1, 1]
        chex.assert_shape(step.obs, (obs_dim,))
        assert np.isfinite(step.reward) and step.success in (0.0, 1.0) and not step.terminated, task
    assert action_repeat_of("myo-pose") == 1


def test_an_episode_lasts_100_steps_without_terminating_and_renders():
    env = make_host_env("myo-key-turn", seed=1)
    env.reset()
    for t in range(100):
        step = env.step(np.zeros(39, np.float32))
        assert step.done == (t == 99) and not step.terminated and not step.physics_error
    frame = env.render(64, 64)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0


def test_unknown_tasks_and_a_missing_package_are_one_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="unknown MyoSuite task 'myo-rech'.*myo-reach"):
        check_task("myo-rech")
    for name in [m for m in sys.modules if m == "myosuite" or m.startswith("myosuite.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "myosuite", None)
    with pytest.raises(ImportError, match=r"the myosuite extra: pip install 'tdmpc2_jax\[myosuite\]'"):
        make_host_env("myo-pose", seed=0)
