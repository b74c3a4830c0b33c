"""Gymnasium tasks under the official TD-MPC2 protocol, on host MuJoCo and Box2D.

Tasks: `mujoco-walker` (Walker2d-v4), `mujoco-halfcheetah` (HalfCheetah-v4), `mujoco-hopper`,
`mujoco-ant`, `mujoco-humanoid` (v4 like the official two), `bipedal-walker` (BipedalWalker-v3) and
`lunarlander-continuous` (LunarLander-v3 with continuous actions; gymnasium 1.x no longer has the
official v2). One physics step per agent step (no action repeat); episodes of 1000 agent steps,
500 for lunarlander-continuous and 1600 for bipedal-walker. An episode ends at a terminal state
(`terminated`: the walker fell, the lander crashed or landed) or at the time limit (a truncation,
not a terminal state). lunarlander-continuous succeeds when the episode's return exceeds 200.
Actions in [-1, 1] are mapped linearly to the task's bounds (the identity for the official four).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from tdmpc2_jax.envs.base import StepResult

GYM_TASKS = {
    "mujoco-walker": "Walker2d-v4", "mujoco-halfcheetah": "HalfCheetah-v4", "mujoco-hopper": "Hopper-v4",
    "mujoco-ant": "Ant-v4", "mujoco-humanoid": "Humanoid-v4", "bipedal-walker": "BipedalWalker-v3",
    "lunarlander-continuous": "LunarLander-v3",
}
EPISODE_LENGTHS = {"lunarlander-continuous": 500, "bipedal-walker": 1600}  # agent steps; 1000 otherwise
NEVER_TERMINATE = ("mujoco-halfcheetah",)
LANDING_SUCCESS_RETURN = 200.0


def episode_length_of(task: str) -> int:
    return EPISODE_LENGTHS.get(task, 1000)


def _gymnasium():
    try:
        import gymnasium
    except ImportError as err:
        raise ImportError("Gymnasium tasks need the gym extra: pip install 'tdmpc2_jax[gym]'") from err
    return gymnasium


class SeededOnce:
    """The random state of an adapter over a Gymnasium-style environment `self._env` that is seeded at
    its first reset (`self._seed`, None after it) and continues its own generator after that."""

    _env: Any
    _seed: int | None

    def get_rng_state(self) -> dict[str, Any]:
        """The task's random state (it decides every reset), saved with run checkpoints."""
        if self._seed is not None:
            return {"seed": self._seed}
        return {"bit_generator": self._env.unwrapped.np_random.bit_generator.state}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        if "seed" in state:
            self._seed = state["seed"]
            return
        if self._seed is not None:  # make the random state exist before setting it
            self._env.reset(seed=self._seed)
            self._seed = None
        self._env.unwrapped.np_random.bit_generator.state = state["bit_generator"]


class GymEnv(SeededOnce):
    """One Gymnasium task seeded by `seed` (its first reset; later resets continue its random state)."""

    def __init__(self, task: str, seed: int, episode_length: int | None = None):
        if task not in GYM_TASKS:
            raise ValueError(f"unknown Gymnasium task {task!r}")
        gymnasium = _gymnasium()
        kwargs = {"continuous": True} if task == "lunarlander-continuous" else {}
        self.episode_length = episode_length or episode_length_of(task)
        try:
            with warnings.catch_warnings():  # the official tasks are the v4 MuJoCo ones, which gymnasium calls old
                warnings.simplefilter("ignore", DeprecationWarning)
                self._env = gymnasium.make(GYM_TASKS[task], render_mode="rgb_array",
                                           max_episode_steps=self.episode_length, **kwargs)
        except gymnasium.error.DependencyNotInstalled as err:
            raise ImportError(f"{task} needs Box2D and pygame, in the gym extra: pip install 'tdmpc2_jax[gym]'") from err
        self.task, self._seed, self._return, self.action_repeat = task, seed, 0.0, 1
        space = self._env.action_space
        self._low, self._high = space.low.astype(np.float64), space.high.astype(np.float64)
        self.action_dim = int(space.shape[0])
        self.obs_dim = int(np.prod(self._env.observation_space.shape))
        self.obs_shape = (self.obs_dim,)

    def reset(self) -> np.ndarray:
        seed, self._seed = self._seed, None  # seeded once: later episodes continue the task's random state
        obs, _ = self._env.reset(seed=seed)
        self._return = 0.0
        return np.asarray(obs, np.float32).ravel()

    def step(self, action: np.ndarray) -> StepResult:
        """One agent step of `action` in [-1, 1]."""
        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        scaled = (self._low + (action + 1.0) * 0.5 * (self._high - self._low)).astype(np.float32)
        obs, reward, terminated, truncated, _ = self._env.step(scaled)
        self._return += float(reward)
        success = (float(self._return > LANDING_SUCCESS_RETURN) if self.task == "lunarlander-continuous"
                   else float("nan"))
        return StepResult(np.asarray(obs, np.float32).ravel(), float(reward), bool(terminated or truncated), False,
                          bool(terminated), success)

    def random_action(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)

    def render(self, width: int = 384, height: int = 384) -> np.ndarray:
        """RGB frame [H, W, 3] uint8 (the task's own size)."""
        return np.asarray(self._env.render())
