"""Several MJX tasks stepped as one batch, for one multitask agent.

A batch of N environments holds N / T environments of each of the T tasks, task-major: rows
[i * N/T, (i + 1) * N/T) run task i, the row of the agent's task embedding. Each task keeps its
own Playground state; a step splits the actions by task (each task reads its own leading action
dimensions), steps every task's group with its own physics, and joins the outputs, observations
zero-padded to the largest observation of the set, as the official multitask wrapper pads them.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tdmpc2_jax.envs.dmc import EPISODE_LENGTH
from tdmpc2_jax.envs.mjx import MJXEnv, StepOutput


class MultitaskEnvState(tuple):
    """One EnvState batch [N/T, ...] per task (a tuple, so a pytree), with the batch's views."""

    @property
    def t(self) -> jax.Array:
        return jnp.concatenate([part.t for part in self])  # [N]

    @property
    def episode(self) -> jax.Array:
        return jnp.concatenate([part.episode for part in self])  # [N]


jax.tree_util.register_pytree_node(MultitaskEnvState, lambda s: (tuple(s), None),
                                   lambda _, parts: MultitaskEnvState(parts))


class MultitaskMJXEnv:
    """One MJXEnv per task of a set (in set order) behind MJXEnv's batched interface (reset_batch,
    step_batch, observe, task_index)."""

    def __init__(self, envs: Sequence[MJXEnv]):
        self.envs = list(envs)
        self.tasks = tuple(env.task for env in self.envs)
        self.obs_dims = tuple(env.obs_dim for env in self.envs)
        self.action_dims = tuple(env.action_dim for env in self.envs)
        self.episode_lengths = tuple(env.episode_length for env in self.envs)
        self.obs_dim, self.action_dim = max(self.obs_dims), max(self.action_dims)
        self.episode_length = max(self.episode_lengths)
        self.action_repeat = self.envs[0].action_repeat
        self.task = "+".join(self.tasks)

    @classmethod
    def of_tasks(cls, tasks: Sequence[str], impl: str = "jax", episode_length: int = EPISODE_LENGTH):
        """The Playground environments of `tasks`."""
        return cls([MJXEnv(task, impl=impl, episode_length=episode_length) for task in tasks])

    def group_size(self, num_envs: int) -> int:
        if num_envs % len(self.tasks):
            raise ValueError(f"{num_envs} environments do not split evenly over {len(self.tasks)} tasks: use a "
                             f"multiple of {len(self.tasks)}")
        return num_envs // len(self.tasks)

    def task_index(self, num_envs: int) -> jax.Array:
        """[N] int32 task of each environment of a batch of N (task-major)."""
        return jnp.asarray(np.repeat(np.arange(len(self.tasks), dtype=np.int32), self.group_size(num_envs)))

    def _pad(self, obs: jax.Array) -> jax.Array:
        return jnp.pad(obs, [(0, 0)] * (obs.ndim - 1) + [(0, self.obs_dim - obs.shape[-1])])

    def observe(self, state: MultitaskEnvState) -> jax.Array:
        """[N, obs_dim] padded observations of the batch."""
        return jnp.concatenate([self._pad(env.observe(part)) for env, part in zip(self.envs, state)])

    def reset_batch(self, keys: jax.Array) -> MultitaskEnvState:
        """N fresh environments from keys [N], N / T of each task."""
        n = self.group_size(keys.shape[0])
        return MultitaskEnvState(env.reset_batch(keys[i * n:(i + 1) * n]) for i, env in enumerate(self.envs))

    def step_batch(self, state: MultitaskEnvState, actions: jax.Array) -> tuple[MultitaskEnvState, StepOutput]:
        """One agent step of every environment (actions [N, action_dim]); outputs [N, ...] padded."""
        n = self.group_size(actions.shape[0])
        parts, outs = [], []
        for i, (env, part) in enumerate(zip(self.envs, state)):
            part, out = env.step_batch(part, actions[i * n:(i + 1) * n, :env.action_dim])
            parts.append(part)
            outs.append(out._replace(obs=self._pad(out.obs), final_obs=self._pad(out.final_obs)))
        return MultitaskEnvState(parts), jax.tree.map(lambda *x: jnp.concatenate(x), *outs)

