"""Meta-World tasks under the official TD-MPC2 protocol, on host MuJoCo.

Tasks `mw-<name>`, the 50 of MT50 (the official mt80 list), goal-observable: observations [39],
actions [4]. Each episode starts with one zero action after the reset (whose observation is the
first one), every agent step is two physics steps (rewards summed), episodes last 100 agent steps
and never terminate, and `success` is the task's success flag at the step. Videos come from
camera `corner2` moved to (0.75, 0.075, 0.7), as in the official code.

The official results used Meta-World's v2 tasks on mujoco-py; no release installs them beside
MuJoCo 3. This project runs the v3 tasks of metaworld 3.0.0 (the last release that does not pin
an older MuJoCo) on MuJoCo 3.17: the same tasks, observations, actions and v2 rewards, ported to
MuJoCo 3. MuJoCo 3.17 gives weld constraints 12 parameters where metaworld writes 11, so its
mocap-weld reset is replaced here by one that writes the 11 it means and leaves the 12th (the
torque scale, 1) alone. A task's goals come from its own seeded random state.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tdmpc2_jax.names import close_matches
from tdmpc2_jax.envs.base import StepResult

EPISODE_LENGTH = 100  # agent steps
ACTION_REPEAT = 2
CAMERA, CAMERA_POS = "corner2", (0.75, 0.075, 0.7)
_WELD = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0)  # anchor, relative pose, torque scale 5


def _environments() -> dict[str, Any]:
    """metaworld's goal-observable v3 constructors by task name, with the weld reset fixed."""
    try:
        import metaworld.sawyer_xyz_env as sawyer
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE
    except ImportError as err:
        raise ImportError("Meta-World tasks need the metaworld extra: pip install 'tdmpc2_jax[metaworld]'") from err
    import mujoco

    def reset_mocap_welds(self) -> None:
        for i in np.flatnonzero(self.model.eq_type == mujoco.mjtEq.mjEQ_WELD):
            self.model.eq_data[i, :len(_WELD)] = _WELD

    sawyer.SawyerMocapBase.reset_mocap_welds = reset_mocap_welds
    return ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE


def task_names() -> list[str]:
    return sorted("mw-" + name.removesuffix("-v3-goal-observable") for name in _environments())


class MetaWorldEnv:
    """One Meta-World task seeded by `seed`."""

    def __init__(self, task: str, seed: int, episode_length: int | None = None):
        environments = _environments()
        name = task.removeprefix("mw-") + "-v3-goal-observable"
        if not task.startswith("mw-") or name not in environments:
            raise ValueError(f"unknown Meta-World task {task!r}{close_matches(task, task_names())}")
        self._env = environments[name](seed=seed, render_mode="rgb_array")
        self._env._freeze_rand_vec = False  # a new goal every episode
        self._env.seeded_rand_vec = True  # drawn from the task's own random state
        self._env.model.cam_pos[self._env.model.camera(CAMERA).id] = CAMERA_POS
        self.task, self.episode_length, self.action_repeat = task, episode_length or EPISODE_LENGTH, ACTION_REPEAT
        self.obs_dim = int(self._env.observation_space.shape[0])
        self.obs_shape = (self.obs_dim,)
        self.action_dim = int(self._env.action_space.shape[0])
        self._renderer = None
        self._t = 0

    def reset(self) -> np.ndarray:
        obs, _ = self._env.reset()
        self._env.step(np.zeros(self.action_dim, np.float32))
        self._t = 0
        return np.asarray(obs, np.float32)

    def step(self, action: np.ndarray) -> StepResult:
        """One agent step: two physics steps of `action` in [-1, 1]."""
        action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        reward = 0.0
        for _ in range(self.action_repeat):
            obs, r, _, _, info = self._env.step(action.copy())
            reward += float(r)
        self._t += 1
        return StepResult(np.asarray(obs, np.float32), reward, self._t >= self.episode_length, False,
                          False, float(info["success"]))

    def random_action(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)

    def render(self, width: int = 384, height: int = 384) -> np.ndarray:
        """RGB frame [height, width, 3] uint8 from the official camera (upright)."""
        import mujoco

        if self._renderer is None or (self._renderer.height, self._renderer.width) != (height, width):
            self._renderer = mujoco.Renderer(self._env.model, height, width)
        self._renderer.update_scene(self._env.data, camera=CAMERA)
        return self._renderer.render()[::-1].copy()

    def get_rng_state(self) -> dict[str, Any]:
        return {"bit_generator": self._env.np_random.bit_generator.state}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        self._env.np_random.bit_generator.state = state["bit_generator"]
