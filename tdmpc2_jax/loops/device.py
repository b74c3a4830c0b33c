"""On-device training on N batched MJX environments: one compiled step, scanned over chunks.

Each step: uniformly random actions while fewer than `seed_steps` transitions were collected (the
official schedule, counted over all environments), MPPI for all N environments after that; one
vmapped environment step with automatic reset; one row per environment into the device buffer;
then `updates_per_step` core updates (a scan of `Agent.update`) once training has started. The
pretraining burst of the official schedule is `pretrain(carry, n)`. Nothing leaves the device
inside a chunk; the host only reads the per-step logs a chunk returns.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from tdmpc2_jax.agent import Agent, TrainState
from tdmpc2_jax.buffers import device as device_buffer
from tdmpc2_jax.envs.mjx import EnvState, MJXEnv
from tdmpc2_jax.planner import PlanState, init_plan_state, plan


class Carry(NamedTuple):
    train_state: TrainState
    env_state: EnvState  # [N]
    plan_state: PlanState  # [N]
    buffer: device_buffer.DeviceBuffer
    obs: jax.Array  # [N, obs_dim] observations to act on
    key: jax.Array
    agent_step: jax.Array  # [] int32 batched steps taken (transitions = agent_step * N)


class StepLog(NamedTuple):
    ended: jax.Array  # [N] bool
    episode_return: jax.Array  # [N] return of episodes that ended at this step
    episode_length: jax.Array  # [N]
    metrics: dict  # scalar update metrics (zeros before training starts)


class DeviceLoop:
    """The pure functions of the on-device loop for one agent, environment and batch size."""

    def __init__(self, agent: Agent, env: MJXEnv, num_envs: int, seed_steps: int, updates_per_step: int = 1,
                 buffer_capacity: int | None = None):
        cfg = agent.cfg
        if (env.obs_dim, env.action_dim) != (cfg.obs_dim, cfg.action_dim):
            raise ValueError(f"agent is for obs {cfg.obs_dim} / action {cfg.action_dim}, env has "
                             f"{env.obs_dim} / {env.action_dim}")
        self.agent, self.env, self.num_envs = agent, env, num_envs
        self.seed_steps, self.updates_per_step = seed_steps, updates_per_step
        self.capacity = buffer_capacity or env.episode_length + cfg.horizon + 1
        if self.capacity < env.episode_length + cfg.horizon:
            raise ValueError(f"buffer capacity {self.capacity} per env must hold an episode "
                             f"({env.episode_length}) plus a window ({cfg.horizon})")
        self._plan = jax.vmap(functools.partial(plan, agent.model, eval_mode=False), in_axes=(None, 0, 0, 0, 0))

    def init(self, key: jax.Array) -> Carry:
        cfg, n = self.agent.cfg, self.num_envs
        k_agent, k_env, k_loop = jax.random.split(key, 3)
        env_state = jax.vmap(self.env.reset)(jax.random.split(k_env, n))
        plan_state = jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + x.shape),
                                  init_plan_state(cfg.horizon, cfg.action_dim))
        buffer = device_buffer.init(self.capacity, n, cfg.obs_dim, cfg.action_dim)
        return Carry(self.agent.init(k_agent), env_state, plan_state, buffer, env_state.inner.obs, k_loop,
                     jnp.zeros((), jnp.int32))

    def act(self, carry: Carry, key: jax.Array) -> tuple[jax.Array, PlanState]:
        """[N, A] actions: random during the seed phase, planned after (strictly after, as officially)."""
        n, a = self.num_envs, self.agent.cfg.action_dim

        def random_actions(_):
            return jax.random.uniform(key, (n, a), minval=-1.0, maxval=1.0), carry.plan_state

        def planned(_):
            result, plan_state = self._plan(carry.train_state.params, carry.obs, carry.plan_state,
                                            jax.random.split(key, n), carry.env_state.t == 0)
            return result.action, plan_state

        return jax.lax.cond(carry.agent_step * n > self.seed_steps, planned, random_actions, None)

    def updates(self, train_state: TrainState, buffer: device_buffer.DeviceBuffer, key: jax.Array, count: int):
        """`count` core updates on windows sampled from the device buffer; mean metrics."""
        cfg = self.agent.cfg

        def one(state, k):
            k_sample, k_update = jax.random.split(k)
            batch = device_buffer.sample(buffer, k_sample, cfg.batch_size, cfg.horizon)
            return self.agent.update(state, batch, k_update)

        train_state, metrics = jax.lax.scan(one, train_state, jax.random.split(key, count))
        return train_state, jax.tree.map(jnp.mean, metrics)

    def step(self, carry: Carry, _=None) -> tuple[Carry, StepLog]:
        key, k_act, k_update = jax.random.split(carry.key, 3)
        action, plan_state = self.act(carry, k_act)
        env_state, out = jax.vmap(self.env.step)(carry.env_state, action)
        buffer = device_buffer.insert(carry.buffer, device_buffer.Transition(
            obs=carry.obs, action=action, reward=out.reward, next_obs=out.final_obs, terminated=out.terminated,
            episode=carry.env_state.episode, step=carry.env_state.t))
        collected = (carry.agent_step + 1) * self.num_envs
        metrics_shape = jax.eval_shape(lambda: self.updates(carry.train_state, buffer, k_update, 1)[1])
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), metrics_shape)
        train_state, metrics = jax.lax.cond(
            collected > self.seed_steps,
            lambda: self.updates(carry.train_state, buffer, k_update, self.updates_per_step),
            lambda: (carry.train_state, zeros))
        carry = Carry(train_state, env_state, plan_state, buffer, out.obs, key, carry.agent_step + 1)
        return carry, StepLog(out.ended, out.episode_return, out.episode_length, metrics)

    def chunk(self, carry: Carry, length: int) -> tuple[Carry, StepLog]:
        """`length` steps in one lax.scan (jit this with length static)."""
        return jax.lax.scan(self.step, carry, None, length=length)

    def pretrain(self, carry: Carry, count: int) -> tuple[Carry, dict]:
        """The official burst of `count` updates when the seed phase ends."""
        key, k = jax.random.split(carry.key)
        train_state, metrics = self.updates(carry.train_state, carry.buffer, k, count)
        return carry._replace(train_state=train_state, key=key), metrics
