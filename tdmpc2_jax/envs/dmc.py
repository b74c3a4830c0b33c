"""dm_control tasks under the TD-MPC2 protocol, on host MuJoCo.

Protocol: action repeat 2 (rewards summed), 500 agent steps per episode, actions in [-1, 1] mapped
linearly to the task's bounds, observations flattened to float32 in the spec's key order.
Tasks use dash names: `cheetah-run`, `cup-catch` (ball_in_cup), `finger-turn-hard`, ...
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tdmpc2_jax.envs.base import StepResult
from tdmpc2_jax.names import close_matches

ACTION_REPEAT = 2
EPISODE_LENGTH = 500  # agent steps
DOMAIN_ALIASES = {"ball_in_cup": "cup", "point_mass": "pointmass"}


def _suite():
    from dm_control import suite

    from tdmpc2_jax.envs import custom_tasks

    return suite, custom_tasks


def task_names() -> dict[str, tuple[str, str]]:
    """Dash name -> (dm_control domain, task) for every suite task and this project's custom ones."""
    suite, custom_tasks = _suite()
    names = {f"{DOMAIN_ALIASES.get(d, d)}-{t.replace('_', '-')}": (d, t) for d, t in suite.ALL_TASKS}
    names.update({name: (name, "") for name in custom_tasks.TASKS})
    return names


def resolve(task: str) -> tuple[str, str]:
    """(domain, task) of a dash name; a clear error with close matches for an unknown one."""
    names = task_names()
    if task not in names:
        raise ValueError(f"unknown DMC task {task!r}{close_matches(task, names)}")
    return names[task]


class DMCEnv:
    """One dm_control task seeded by `seed`, stepped with the TD-MPC2 protocol."""

    def __init__(self, task: str, seed: int, episode_length: int = EPISODE_LENGTH,
                 action_repeat: int = ACTION_REPEAT):
        suite, custom_tasks = _suite()
        domain, name = resolve(task)
        if domain in custom_tasks.TASKS:
            self._env = custom_tasks.load(domain, seed)
        else:
            self._env = suite.load(domain, name, task_kwargs={"random": seed}, visualize_reward=False)
        self.task = task
        self.episode_length = episode_length
        self.action_repeat = action_repeat
        spec = self._env.action_spec()
        self._low, self._high = spec.minimum.astype(np.float64), spec.maximum.astype(np.float64)
        self.action_dim = int(spec.shape[0])
        self.obs_dim = int(sum(np.prod(v.shape, dtype=int) for v in self._env.observation_spec().values()))
        self.obs_shape = (self.obs_dim,)
        self.camera_id = 2 if domain == "quadruped" else 0
        self._t = 0

    @staticmethod
    def _flatten(observation) -> np.ndarray:
        return np.concatenate([np.asarray(v, np.float32).ravel() for v in observation.values()])

    def reset(self) -> np.ndarray:
        self._t = 0
        return self._flatten(self._env.reset().observation)

    def step(self, action: np.ndarray) -> StepResult:
        """One agent step: `action_repeat` physics steps of `action` in [-1, 1]."""
        from dm_control.rl.control import PhysicsError

        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        scaled = self._low + (action + 1.0) * 0.5 * (self._high - self._low)
        reward, obs = 0.0, None
        try:
            for _ in range(self.action_repeat):
                step = self._env.step(scaled)
                reward += step.reward or 0.0
                obs = step.observation
        except PhysicsError:
            self._t += 1
            return StepResult(np.zeros(self.obs_dim, np.float32), reward, True, True)
        self._t += 1
        return StepResult(self._flatten(obs), reward, self._t >= self.episode_length, False)

    def random_action(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)

    def render(self, width: int = 384, height: int = 384) -> np.ndarray:
        """RGB frame [height, width, 3] uint8."""
        return self._env.physics.render(height, width, camera_id=self.camera_id)

    # The task's random state decides every reset: it is saved with checkpoints so a resumed run
    # replays exactly the episodes of an uninterrupted one.
    def get_rng_state(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, cached = self._env.task.random.get_state()
        return {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached)}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        self._env.task.random.set_state((state["name"], np.asarray(state["keys"], np.uint32), state["pos"],
                                         state["has_gauss"], state["cached_gaussian"]))
