"""MyoSuite tasks under the official TD-MPC2 protocol, on host MuJoCo.

Tasks `myo-<name>`: the official ten, musculoskeletal hand tasks with a fixed goal and their `-hard`
variants with random goals; actions [39] (muscle excitations in [-1, 1]). One MyoSuite step per
agent step (the task's own frame skip inside), episodes of 100 agent steps that never terminate
(the official code ignores MyoSuite's own ends), and `success` is the task's `solved` flag at the
step. Videos come from camera `hand_side_inter`, as in the official code. The tasks are those of
myosuite 3.0.0 on MuJoCo 3.17.
"""
from __future__ import annotations

import numpy as np

from tdmpc2_jax.names import close_matches
from tdmpc2_jax.envs.base import StepResult
from tdmpc2_jax.envs.gym import SeededOnce

MYOSUITE_TASKS = {
    "myo-reach": "myoHandReachFixed-v0",
    "myo-reach-hard": "myoHandReachRandom-v0",
    "myo-pose": "myoHandPoseFixed-v0",
    "myo-pose-hard": "myoHandPoseRandom-v0",
    "myo-obj-hold": "myoHandObjHoldFixed-v0",
    "myo-obj-hold-hard": "myoHandObjHoldRandom-v0",
    "myo-key-turn": "myoHandKeyTurnFixed-v0",
    "myo-key-turn-hard": "myoHandKeyTurnRandom-v0",
    "myo-pen-twirl": "myoHandPenTwirlFixed-v0",
    "myo-pen-twirl-hard": "myoHandPenTwirlRandom-v0",
}
EPISODE_LENGTH = 100  # agent steps
CAMERA = "hand_side_inter"


def check_task(task: str) -> None:
    if task not in MYOSUITE_TASKS:
        raise ValueError(f"unknown MyoSuite task {task!r}{close_matches(task, list(MYOSUITE_TASKS))}")


def _make(env_id: str):
    try:
        import warnings

        with warnings.catch_warnings():  # model building warns about spec prefixes on every task
            warnings.simplefilter("ignore", UserWarning)
            from myosuite.utils import gym as myosuite_gym

            return myosuite_gym.make(env_id)
    except ImportError as err:
        raise ImportError("MyoSuite tasks need the myosuite extra: pip install 'tdmpc2_jax[myosuite]'") from err


class MyoSuiteEnv(SeededOnce):
    """One MyoSuite task seeded by `seed` (its first reset; later resets continue its random state)."""

    def __init__(self, task: str, seed: int, episode_length: int | None = None):
        check_task(task)
        self._env = _make(MYOSUITE_TASKS[task])
        self._model, self._data = self._env.unwrapped.mj_model, self._env.unwrapped.mj_data
        self.task, self.episode_length, self.action_repeat = task, episode_length or EPISODE_LENGTH, 1
        self.obs_dim = int(self._env.observation_space.shape[0])
        self.obs_shape = (self.obs_dim,)
        self.action_dim = int(self._env.action_space.shape[0])
        self._seed, self._renderer, self._t = seed, None, 0

    def reset(self) -> np.ndarray:
        seed, self._seed = self._seed, None  # seeded once: later episodes continue the task's random state
        obs, _ = self._env.reset(seed=seed)
        self._t = 0
        return np.asarray(obs, np.float32)

    def step(self, action: np.ndarray) -> StepResult:
        action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        obs, reward, _, _, info = self._env.step(action.copy())
        self._t += 1
        return StepResult(np.asarray(obs, np.float32), float(reward), self._t >= self.episode_length, False,
                          False, float(info["solved"]))

    def random_action(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)

    def render(self, width: int = 384, height: int = 384) -> np.ndarray:
        """RGB frame [height, width, 3] uint8 from the official camera."""
        import mujoco

        if self._renderer is None or (self._renderer.height, self._renderer.width) != (height, width):
            self._renderer = mujoco.Renderer(self._model, height, width)
        self._renderer.update_scene(self._data, camera=CAMERA)
        return self._renderer.render().copy()
