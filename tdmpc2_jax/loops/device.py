"""On-device training on N batched MJX environments: one compiled step, scanned over chunks.

Schedule (the official one, counted in transitions over all N environments): `seed_batches =
ceil(seed_steps / N)` batched steps of uniformly random actions, then one burst of `seed_steps`
updates (`pretrain`), then at every batched step MPPI for all N environments, one vmapped
environment step with automatic reset, one row per environment into the device buffer and
`updates_per_step` core updates (a scan of `Agent.update`). Whether a chunk is in the seed phase
is static, so no branch of the program runs a planner it does not need. Nothing leaves the device
inside a chunk; the host only reads the per-step logs a chunk returns.

With a `mesh`, the environment axis of the carry and the batch axis of every update are sharded
over the mesh's "data" axis (data-parallel updates; XLA inserts the gradient all-reduce).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from tdmpc2_jax import acting
from tdmpc2_jax.agent import Agent, TrainState
from tdmpc2_jax.buffers import device as device_buffer
from tdmpc2_jax.envs.mjx import EnvState, MJXEnv
from tdmpc2_jax.envs.mjx_multitask import MultitaskMJXEnv
from tdmpc2_jax.planner import PlanState, init_plan_state, plan_batch
from tdmpc2_jax.types import Batch, Transition


class Carry(NamedTuple):
    train_state: TrainState
    env_state: EnvState  # [N]
    plan_state: PlanState  # [N]
    buffer: device_buffer.DeviceBuffer
    obs: jax.Array  # [N, obs_dim] observations to act on
    key: jax.Array
    batched_steps: jax.Array  # [] int32 batched steps taken (transitions = batched_steps * N)


class StepLog(NamedTuple):
    ended: jax.Array  # [N] bool
    episode_return: jax.Array  # [N] return of episodes that ended at this step
    episode_length: jax.Array  # [N]
    metrics: dict  # scalar update metrics (empty in the seed phase)


def carry_shardings(carry: Carry, mesh: Mesh, mode: str) -> Carry:
    """NamedShardings for a population carry (leading member axis on every leaf)."""
    def spec(*axes):
        return NamedSharding(mesh, PartitionSpec(*axes))

    if mode == "members":
        return jax.tree.map(lambda _: spec("data"), carry)
    by_env = lambda tree: jax.tree.map(lambda _: spec(None, "data"), tree)
    replicated = lambda tree: jax.tree.map(lambda _: spec(), tree)
    buffer = jax.tree.map(lambda x: spec(None, None, "data") if x.ndim >= 3 else spec(), carry.buffer)
    return Carry(replicated(carry.train_state), by_env(carry.env_state), by_env(carry.plan_state), buffer,
                 by_env(carry.obs), replicated(carry.key), replicated(carry.batched_steps))


class DeviceLoop:
    """The pure functions of the on-device loop for one agent, environment and batch size."""

    def __init__(self, agent: Agent, env: MJXEnv | MultitaskMJXEnv, num_envs: int, seed_steps: int,
                 updates_per_step: int = 1,
                 buffer_capacity: int | None = None, mesh: Mesh | None = None):
        cfg = agent.cfg
        if (env.obs_dim, env.action_dim) != (cfg.obs_dim, cfg.action_dim):
            raise ValueError(f"agent is for obs {cfg.obs_dim} / action {cfg.action_dim}, env has "
                             f"{env.obs_dim} / {env.action_dim}")
        self.agent, self.env, self.num_envs, self.mesh = agent, env, num_envs, mesh
        self.seed_steps, self.updates_per_step = seed_steps, updates_per_step
        self.seed_batches = -(-seed_steps // num_envs)
        self.capacity = buffer_capacity or device_buffer.rows_per_env(0, num_envs, env.episode_length, cfg.horizon)
        if self.capacity < env.episode_length + cfg.horizon:
            raise ValueError(f"buffer capacity {self.capacity} per env must hold an episode "
                             f"({env.episode_length}) plus a window ({cfg.horizon})")
        self.task = env.task_index(num_envs)  # [N] task of each environment (multitask), else None
        self._plan = functools.partial(plan_batch, agent.model, eval_mode=False)

    # ------------------------------------------------------------------ state
    def init(self, key: jax.Array, lr: jax.Array | None = None) -> Carry:
        """A fresh carry: new agent (learning rate `lr`, default the config's), N reset envs, empty buffer."""
        cfg, n = self.agent.cfg, self.num_envs
        k_agent, k_env, k_loop = jax.random.split(key, 3)
        train_state = self.agent.fresh_state(k_agent)
        if lr is not None:
            train_state = self.agent.with_learning_rate(train_state, lr)
        env_state = self.env.reset_batch(jax.random.split(k_env, n))
        plan_state = jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + x.shape),
                                  init_plan_state(cfg.horizon, cfg.action_dim))
        buffer = device_buffer.init(self.capacity, n, cfg.obs_dim, cfg.action_dim, self.task)
        return Carry(train_state, env_state, plan_state, buffer, self.env.observe(env_state), k_loop,
                     jnp.zeros((), jnp.int32))

    # ------------------------------------------------------------------ one step
    def act(self, carry: Carry, key: jax.Array, seeding: bool) -> tuple[jax.Array, PlanState]:
        """[N, A] actions: uniformly random in the seed phase (zero beyond a task's own action dims),
        MPPI (training noise) after it."""
        n, a = self.num_envs, self.agent.cfg.action_dim
        if seeding:
            action = jax.random.uniform(key, (n, a), minval=-1.0, maxval=1.0)
            return action * self.agent.model.action_mask(self.task), carry.plan_state
        result, plan_state = self._plan(carry.train_state.params, carry.obs, carry.plan_state,
                                        jax.random.split(key, n), carry.env_state.t == 0, self.task)
        return result.action, plan_state

    def updates(self, train_state: TrainState, buffer: device_buffer.DeviceBuffer, key: jax.Array, count: int):
        """`count` core updates on windows sampled from the device buffer; mean metrics."""
        cfg = self.agent.cfg

        def one(state, k):
            k_sample, k_update = jax.random.split(k)
            batch = self._shard_batch(device_buffer.sample(buffer, k_sample, cfg.batch_size, cfg.horizon))
            return self.agent.update(state, batch, k_update)

        train_state, metrics = jax.lax.scan(one, train_state, jax.random.split(key, count))
        return train_state, jax.tree.map(jnp.mean, metrics)

    def step(self, carry: Carry, seeding: bool = False) -> tuple[Carry, StepLog]:
        key, k_act, k_update = jax.random.split(carry.key, 3)
        action, plan_state = self.act(carry, k_act, seeding)
        env_state, out = self.env.step_batch(carry.env_state, action)
        buffer = device_buffer.insert(carry.buffer, Transition(
            obs=carry.obs, action=action, reward=out.reward, next_obs=out.final_obs, terminated=out.terminated,
            episode=carry.env_state.episode, step=carry.env_state.t))
        train_state, metrics = carry.train_state, {}
        if not seeding and self.updates_per_step:
            train_state, metrics = self.updates(train_state, buffer, k_update, self.updates_per_step)
        carry = Carry(train_state, env_state, plan_state, buffer, out.obs, key, carry.batched_steps + 1)
        return carry, StepLog(out.ended, out.episode_return, out.episode_length, metrics)

    # ------------------------------------------------------------------ programs (jit these)
    def chunk(self, carry: Carry, length: int, seeding: bool = False) -> tuple[Carry, StepLog]:
        """`length` steps in one lax.scan (length and seeding static)."""
        return jax.lax.scan(lambda c, _: self.step(c, seeding), carry, None, length=length)

    def seed_chunk(self, carry: Carry) -> tuple[Carry, StepLog]:
        """The whole seed phase: `seed_batches` steps of random actions, no updates."""
        return self.chunk(carry, self.seed_batches, seeding=True)

    def pretrain(self, carry: Carry, count: int) -> tuple[Carry, dict]:
        """The official burst of `count` updates when the seed phase ends."""
        key, k = jax.random.split(carry.key)
        train_state, metrics = self.updates(carry.train_state, carry.buffer, k, count)
        return carry._replace(train_state=train_state, key=key), metrics

    def evaluate(self, params, key: jax.Array, episodes: int) -> acting.EvalResult:
        """`episodes` episodes at once with the planner in eval mode (`acting.evaluate_batched`)."""
        return acting.evaluate_batched(self.agent.model, self.env, params, key, episodes)

    # ------------------------------------------------------------------ sharding
    def _shard_batch(self, batch: Batch) -> Batch:
        if self.mesh is None:
            return batch
        spec = NamedSharding(self.mesh, PartitionSpec(None, "data"))
        return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, spec), batch)
