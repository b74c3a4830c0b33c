"""Several host tasks behind one interface, as the official multitask wrapper presents them.

Observations are zero-padded to the largest observation of the set, actions are [max action dim]
and each task reads only its own leading dimensions. `reset(task)` picks the task of the next
episode; its index is the row of the agent's task embedding.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from tdmpc2_jax.envs.base import StepResult
from tdmpc2_jax.envs.registry import make_host_env


class PaddedEnv:
    """One task seen through a set's shapes: observations padded to obs_dim, actions [action_dim]."""

    def __init__(self, env, obs_dim: int, action_dim: int):
        if env.obs_dim > obs_dim or env.action_dim > action_dim:
            raise ValueError(f"{env.task} has obs {env.obs_dim} / action {env.action_dim}, more than the set's "
                             f"{obs_dim} / {action_dim}")
        self.inner, self.task, self.obs_dim, self.action_dim = env, env.task, obs_dim, action_dim
        self.episode_length, self.action_repeat = env.episode_length, env.action_repeat

    def _pad(self, obs: np.ndarray) -> np.ndarray:
        return np.pad(obs, (0, self.obs_dim - obs.shape[0]))

    def reset(self) -> np.ndarray:
        return self._pad(self.inner.reset())

    def step(self, action: np.ndarray) -> StepResult:
        """One agent step with the leading action dims of action [action_dim]."""
        result = self.inner.step(np.asarray(action)[: self.inner.action_dim])
        return result._replace(obs=self._pad(result.obs))

    def random_action(self, rng: np.random.Generator) -> np.ndarray:
        """Uniform in [-1, 1] on the task's own dims, zero beyond them: [action_dim]."""
        return np.pad(self.inner.random_action(rng), (0, self.action_dim - self.inner.action_dim))

    def render(self, width: int = 384, height: int = 384) -> np.ndarray:
        return self.inner.render(width, height)

    def get_rng_state(self) -> dict[str, Any]:
        return self.inner.get_rng_state()

    def set_rng_state(self, state: dict[str, Any]) -> None:
        self.inner.set_rng_state(state)


class MultitaskEnv:
    """Host environments of `tasks` (seeded `seed + index`) padded to the set's shapes; one episode
    at a time, of the task chosen at `reset`."""

    def __init__(self, tasks: Sequence[str], seed: int, episode_length: int | None = None,
                 make_env: Callable[..., Any] = make_host_env):
        self.tasks = tuple(tasks)
        envs = [make_env(task, seed + i, episode_length) for i, task in enumerate(self.tasks)]
        self.obs_dims = tuple(env.obs_dim for env in envs)
        self.action_dims = tuple(env.action_dim for env in envs)
        self.episode_lengths = tuple(env.episode_length for env in envs)
        self.obs_dim, self.action_dim = max(self.obs_dims), max(self.action_dims)
        self.envs = [PaddedEnv(env, self.obs_dim, self.action_dim) for env in envs]
        self.action_repeat = envs[0].action_repeat
        self.task_index = 0

    @property
    def env(self) -> PaddedEnv:
        return self.envs[self.task_index]

    @property
    def episode_length(self) -> int:
        return self.env.episode_length

    def reset(self, task_index: int | None = None) -> np.ndarray:
        """The first observation [obs_dim] of an episode of task `task_index` (default: the last one's)."""
        if task_index is not None:
            self.task_index = int(task_index)
        return self.env.reset()

    def step(self, action: np.ndarray) -> StepResult:
        return self.env.step(action)

    def random_action(self, rng: np.random.Generator) -> np.ndarray:
        return self.env.random_action(rng)

    def render(self, width: int = 384, height: int = 384) -> np.ndarray:
        return self.env.render(width, height)

    def get_rng_state(self) -> dict[str, Any]:
        return {"task_index": self.task_index, "envs": [env.get_rng_state() for env in self.envs]}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        self.task_index = int(state["task_index"])
        for env, env_state in zip(self.envs, state["envs"]):
            env.set_rng_state(env_state)
