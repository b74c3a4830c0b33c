"""ManiSkill tasks: the official five by name with their ManiSkill3 versions and control modes, the
protocol of the adapter (two ManiSkill steps per agent step, early ends, success, action bounds)
on a stand-in for ManiSkill's batched CPU environment, and one clear error for a missing package or
a missing Vulkan device."""
import sys
import types

import chex
import gymnasium
import numpy as np
import pytest

from tdmpc2_jax.envs import maniskill
from tdmpc2_jax.envs.registry import action_repeat_of, domain_of, make_host_env, task_defaults


class BatchedStandIn:
    """ManiSkill's CPU environment as the adapter sees it: one environment with a leading batch axis of 1."""

    def __init__(self, success_at: int):
        self.action_space = gymnasium.spaces.Box(-0.1, 0.1, (1, 4), np.float32)
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (1, 7), np.float32)
        self.actions, self.seeds, self._success_at = [], [], success_at

    def reset(self, seed=None):
        self.seeds.append(seed)
        return np.zeros((1, 7), np.float32), {}

    def step(self, action):
        self.actions.append(np.asarray(action))
        done = len(self.actions) >= self._success_at
        truncated = len(self.actions) >= 3  # ManiSkill's own time limit, shorter than the protocol's
        obs = np.full((1, 7), len(self.actions), np.float32)
        return obs, np.asarray([0.5]), np.asarray([done]), np.asarray([truncated]), {"success": np.asarray([done])}


def test_the_official_five_are_maniskill_tasks_with_the_official_protocol():
    assert sorted(maniskill.MANISKILL_TASKS) == ["lift-cube", "pick-cube", "pick-ycb", "stack-cube", "turn-faucet"]
    assert maniskill.MANISKILL_TASKS["pick-ycb"] == ("PickSingleYCB-v1", "pd_ee_delta_pose")
    for task in maniskill.MANISKILL_TASKS:
        assert domain_of(task) == "maniskill" and action_repeat_of(task) == 2
        assert task_defaults(task) == {"episode_length": 100}


def test_an_agent_step_is_two_maniskill_steps_and_ends_with_success(monkeypatch):
    stand_in = BatchedStandIn(success_at=5)
    monkeypatch.setattr(maniskill, "_make", lambda env_id, control_mode: stand_in)
    env = make_host_env("stack-cube", seed=4)
    assert (env.obs_dim, env.action_dim, env.episode_length, env.action_repeat) == (7, 4, 100, 2)
    obs = env.reset()
    chex.assert_shape(obs, (7,))
    chex.assert_type(obs, np.float32)
    step = env.step(np.asarray([1.0, -1.0, 0.0, 3.0]))  # [-1, 1] to the controller's bounds, clipped
    np.testing.assert_allclose(stand_in.actions[0], [[0.1, -0.1, 0.0, 0.1]], atol=1e-7)
    assert len(stand_in.actions) == 2 and step.reward == 1.0 and not step.done and step.success == 0.0
    assert not env.step(np.zeros(4)).done  # ManiSkill's own time limit (3 steps here) is not the protocol's
    step = env.step(np.zeros(4))  # ManiSkill ends the episode at its 5th step: in the 3rd agent step
    assert len(stand_in.actions) == 5 and step.reward == 0.5 and step.done and step.success == 1.0
    assert not step.terminated  # an end at success is not a terminal state for learning (episodic=False)
    chex.assert_shape(step.obs, (7,))
    env.reset()
    assert stand_in.seeds == [4, None]  # seeded once; later episodes continue the task's random state


def test_episodes_end_at_100_agent_steps(monkeypatch):
    monkeypatch.setattr(maniskill, "_make", lambda env_id, control_mode: BatchedStandIn(success_at=10_000))
    env = make_host_env("pick-cube", seed=0)
    env.reset()
    ends = [env.step(np.zeros(4)).done for _ in range(100)]
    assert ends == [False] * 99 + [True]


def test_a_missing_package_and_a_missing_vulkan_device_are_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mani_skill", None)
    with pytest.raises(ImportError, match="mani_skill 3.0.1 and SAPIEN 3.*pip install --no-deps mani_skill==3.0.1"):
        make_host_env("lift-cube", seed=0)

    package = types.ModuleType("mani_skill")
    package.envs = types.ModuleType("mani_skill.envs")
    monkeypatch.setitem(sys.modules, "mani_skill", package)
    monkeypatch.setitem(sys.modules, "mani_skill.envs", package.envs)

    def no_device(*args, **kwargs):
        raise RuntimeError("failed to find a rendering device")

    monkeypatch.setattr(gymnasium, "make", no_device)
    with pytest.raises(maniskill.ManiSkillUnavailable, match="need a Vulkan device.*lavapipe"):
        make_host_env("turn-faucet", seed=0)
