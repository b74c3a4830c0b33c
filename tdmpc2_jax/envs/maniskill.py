"""ManiSkill tasks under the official TD-MPC2 protocol, on ManiSkill3's CPU simulation.

The official five ran on ManiSkill2, which is retired; each maps to its ManiSkill3 version with the
official control mode: `pick-cube` (PickCube-v1), `stack-cube` (StackCube-v1), `pick-ycb`
(PickSingleYCB-v1, YCB assets downloaded on first use), `turn-faucet` (TurnFaucet-v1, whose reward
is sparse in ManiSkill3), and `lift-cube`, which ManiSkill3 no longer has, as PickCube-v1 (lift the
cube to a goal). Protocol: state observations, two ManiSkill steps per agent step (rewards summed),
episodes of 100 agent steps that end early when ManiSkill ends them (success), `success` from its
success flag, actions in [-1, 1] mapped to the controller's bounds. ManiSkill3's own time limits
(50 steps for most of these tasks) are ignored: the official 100 agent steps apply. Assets a task
needs (YCB objects, faucets) are downloaded on first use without ManiSkill's interactive prompt.

mani_skill 3.0.1 cannot be installed by pip's resolver beside this project: it imports
pytorch_kinematics_ms, which asks for numpy<2 (JAX needs numpy 2), although it runs on numpy 2;
docs/install.md gives the `--no-deps` command (INSTALL). SAPIEN, ManiSkill3's simulator, needs a Vulkan device even
for state observations (it builds render materials while loading robots): an NVIDIA driver, or on a
CPU-only machine Mesa's lavapipe 24.3 or newer (Debian 12: mesa-vulkan-drivers from
bookworm-backports). Without the package or the device, making a task is one error that says what
is missing.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tdmpc2_jax.names import close_matches
from tdmpc2_jax.envs.base import StepResult

MANISKILL_TASKS = {
    "lift-cube": ("PickCube-v1", "pd_ee_delta_pos"),
    "pick-cube": ("PickCube-v1", "pd_ee_delta_pos"),
    "stack-cube": ("StackCube-v1", "pd_ee_delta_pos"),
    "pick-ycb": ("PickSingleYCB-v1", "pd_ee_delta_pose"),
    "turn-faucet": ("TurnFaucet-v1", "pd_ee_delta_pose"),
}
EPISODE_LENGTH = 100  # agent steps
ACTION_REPEAT = 2
INSTALL = ("pip install 'tdmpc2_jax[gym,torch]' && pip install --no-deps mani_skill==3.0.1 sapien==3.0.3 mplib==0.1.1 "
           "pytorch_kinematics==0.7.6 pytorch_kinematics_ms==0.7.3 arm_pytorch_utilities pytorch_seed dacite "
           "transforms3d trimesh tyro GitPython tabulate defusedxml nvidia-ml-py opencv-python-headless")
NO_DEVICE = ("ManiSkill tasks need a Vulkan device, also for state observations (SAPIEN loads robots with "
             "render materials) and SAPIEN found none: install an NVIDIA driver, or on a CPU-only machine "
             "Mesa's lavapipe 24.3 or newer (Debian 12: apt-get install -t bookworm-backports mesa-vulkan-drivers)")


class ManiSkillUnavailable(RuntimeError):
    """ManiSkill3 is installed but cannot simulate here (no Vulkan device)."""


def check_task(task: str) -> None:
    if task not in MANISKILL_TASKS:
        raise ValueError(f"unknown ManiSkill task {task!r}{close_matches(task, list(MANISKILL_TASKS))}")


def _make(env_id: str, control_mode: str):
    import importlib
    import os

    os.environ.setdefault("MS_SKIP_ASSET_DOWNLOAD_PROMPT", "1")  # a training run cannot answer a prompt
    try:
        import gymnasium

        importlib.import_module("mani_skill.envs")  # registers the tasks with gymnasium
    except ImportError as err:
        raise ImportError("ManiSkill tasks need mani_skill 3.0.1 and SAPIEN 3, which pip's resolver cannot install "
                          f"beside JAX (a dependency asks for numpy<2): {INSTALL}") from err
    try:
        return gymnasium.make(env_id, obs_mode="state", control_mode=control_mode, render_mode="rgb_array",
                              sim_backend="physx_cpu", num_envs=1)
    except RuntimeError as err:
        if "rendering device" in str(err) or "vk::" in str(err):
            raise ManiSkillUnavailable(NO_DEVICE) from err
        raise


def _numpy(x) -> np.ndarray:
    """One environment's value out of ManiSkill's batched torch tensors."""
    x = x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)
    return x.reshape(x.shape[1:]) if x.ndim and x.shape[0] == 1 else x


class ManiSkillEnv:
    """One ManiSkill task seeded by `seed` (its first reset; later resets continue its random state)."""

    def __init__(self, task: str, seed: int, episode_length: int | None = None):
        check_task(task)
        env_id, control_mode = MANISKILL_TASKS[task]
        self._env = _make(env_id, control_mode)
        space = self._env.action_space
        self._low, self._high = np.asarray(space.low, np.float64).ravel(), np.asarray(space.high, np.float64).ravel()
        self.task, self.episode_length, self.action_repeat = task, episode_length or EPISODE_LENGTH, ACTION_REPEAT
        self.obs_dim = int(np.prod(self._env.observation_space.shape[1:] or self._env.observation_space.shape))
        self.obs_shape = (self.obs_dim,)
        self.action_dim = int(self._low.shape[0])
        self._seed, self._t = seed, 0

    def reset(self) -> np.ndarray:
        seed, self._seed = self._seed, None  # seeded once: later episodes continue the task's random state
        obs, _ = self._env.reset(seed=seed)
        self._t = 0
        return _numpy(obs).astype(np.float32).ravel()

    def step(self, action: np.ndarray) -> StepResult:
        """One agent step: two ManiSkill steps of `action` in [-1, 1]."""
        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        scaled = (self._low + (action + 1.0) * 0.5 * (self._high - self._low)).astype(np.float32)
        reward, ended = 0.0, False
        for _ in range(self.action_repeat):
            obs, r, terminated, _, info = self._env.step(scaled[None])  # its own time limit is not ours
            reward += float(_numpy(r))
            ended = bool(_numpy(terminated))
            if ended:
                break
        self._t += 1
        success = float(bool(_numpy(info["success"]))) if "success" in info else float("nan")
        return StepResult(_numpy(obs).astype(np.float32).ravel(), reward, ended or self._t >= self.episode_length,
                          False, False, success)

    def random_action(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)

    def render(self, width: int = 384, height: int = 384) -> np.ndarray:
        """RGB frame [H, W, 3] uint8 from ManiSkill's render camera (its own size)."""
        return _numpy(self._env.render()).astype(np.uint8)

    def get_rng_state(self) -> dict[str, Any]:
        """The task's seed before its first reset; ManiSkill keeps its episode randomness in its own
        generators after that, which a run checkpoint cannot save (a resumed run reseeds)."""
        return {"seed": self._seed}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        self._seed = state["seed"]
