"""Training and evaluation on host MuJoCo (dm_control), with the official TD-MPC2 schedule.

Schedule: seed_steps = max(1000, 5 * episode_length) uniformly random actions; at step seed_steps
one burst of seed_steps updates; then one update per agent step. Every eval_freq agent steps an
evaluation of eval_episodes episodes (planner in eval mode) runs at the next episode boundary.

A run is resumable: at the first episode boundary after every `checkpoint_every` agent steps, and
at the end, the whole run (TrainState, warm start, RNG states, counters, env RNG states and by
default the replay buffer) is written with orbax. Resuming from such a checkpoint continues
exactly like the uninterrupted run (same parameters on the same machine).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from tdmpc2_jax import acting, checkpoints, xla
from tdmpc2_jax.agent import Agent, TrainState
from tdmpc2_jax.buffers.episodic import EpisodeBuffer
from tdmpc2_jax.config import Config
from tdmpc2_jax.envs.dmc import ACTION_REPEAT, DMCEnv
from tdmpc2_jax.logs import RunLogger
from tdmpc2_jax.loops import run
from tdmpc2_jax.planner import PlanState, init_plan_state, make_planner

MUST_MATCH_ON_RESUME = ("task", "seed", "batch_size", "horizon", "buffer_size")


@dataclasses.dataclass
class Episode:
    """Transitions of the running episode (obs has one more entry than actions)."""

    obs: list
    actions: list = dataclasses.field(default_factory=list)
    rewards: list = dataclasses.field(default_factory=list)

    @property
    def reward(self) -> float:
        return float(np.sum(self.rewards))


class Planners:
    """Jitted planners for acting (training noise) and evaluation."""

    def __init__(self, agent: Agent):
        self.horizon, self.action_dim = agent.cfg.horizon, agent.cfg.action_dim
        self.train_plan = make_planner(agent.model, eval_mode=False)
        self.eval_plan = make_planner(agent.model, eval_mode=True)

    def initial_state(self) -> PlanState:
        return init_plan_state(self.horizon, self.action_dim)

    def act(self, params, obs: np.ndarray, plan_state: PlanState, key: jax.Array, t0: bool, eval_mode: bool):
        plan = self.eval_plan if eval_mode else self.train_plan
        result, plan_state = plan(params, jnp.asarray(obs), plan_state, key, jnp.asarray(t0))
        return np.asarray(result.action), plan_state


def evaluate(env: DMCEnv, planners: Planners, params, key: jax.Array, episodes: int,
             on_frame: Callable[[np.ndarray], None] | None = None) -> dict[str, Any]:
    """Runs `episodes` episodes with the planner in eval mode: returns, lengths and their statistics.

    `on_frame` receives the rendered frames of the first episode.
    """
    def policy(plan_state, obs, k, t0):
        result, plan_state = planners.eval_plan(params, obs, plan_state, k, t0)
        return result.action, plan_state, ()

    episodes_run = acting.host_episodes(env, policy, planners.initial_state, key, episodes, on_frame)
    return run.episode_statistics(episodes_run.returns, episodes_run.lengths)


def train(config: ConfigDict) -> dict[str, Any]:
    """Trains (or resumes) one agent on one DMC task; returns the last evaluation (with its `agent_step`)."""
    run.check_run_keys(config)
    work_dir = run.work_dir_of(config)
    ckpt_dir = os.path.join(work_dir, "checkpoints")
    env = DMCEnv(config.task, config.seed, episode_length=config.episode_length)
    eval_env = DMCEnv(config.task, run.eval_seed(config.seed), episode_length=config.episode_length)
    cfg = run.agent_config(config, env.obs_dim, env.action_dim, env.episode_length)
    agent = Agent(cfg)
    planners = Planners(agent)
    update = xla.jit(agent.update, donate_argnums=0)
    capacity_steps = min(config.buffer_size, config.steps)
    buffer = EpisodeBuffer(capacity_steps + capacity_steps // env.episode_length + 1, env.obs_dim,
                           env.action_dim, cfg.horizon)
    num_seed_steps = run.seed_steps(config, env.episode_length)

    key = jax.random.key(config.seed)
    key, init_key = jax.random.split(key)
    state = agent.init(init_key)
    plan_state = planners.initial_state()
    rng = np.random.default_rng(config.seed)
    step, episode_index, eval_next, last_eval, resumed = 0, 0, False, {}, False

    if config.resume and checkpoints.latest_step(ckpt_dir) is not None:
        restored = restore_run(ckpt_dir, config, cfg, state, plan_state, buffer)
        state, plan_state, key, rng = restored.state, restored.plan_state, restored.key, restored.rng
        step, episode_index, eval_next, resumed = restored.agent_step, restored.episode, restored.eval_next, True
        env.set_rng_state(restored.meta["env_rng"])
        eval_env.set_rng_state(restored.meta["eval_env_rng"])
    os.makedirs(work_dir, exist_ok=True)
    # agent steps 0..steps inclusive, as in the official loop
    logger = RunLogger(work_dir, config.steps + 1, ACTION_REPEAT, start_step=step, tensorboard=config.tensorboard,
                       progress=config.progress, csv=config.save_csv,
                       wandb=run.wandb_settings(config, work_dir))
    logger.message(f"{config.task}: obs {env.obs_dim}, action {env.action_dim}, agent steps {config.steps:,} "
                   f"(from {step:,}), buffer {buffer.capacity:,} rows = {buffer.nbytes / 2**20:.1f} MiB, "
                   f"work dir {work_dir}")
    next_checkpoint = run.next_multiple(step, config.checkpoint_every)
    metrics: dict[str, float] = {}
    episode: Episode | None = None
    episode_done = True  # the loop starts by opening an episode

    def save(final: bool = False) -> None:
        if not config.save_agent:
            return
        meta = dict(agent_step=step, episode=episode_index, eval_next=eval_next, has_buffer=bool(config.save_buffer),
                    rng=rng.bit_generator.state, env_rng=env.get_rng_state(), eval_env_rng=eval_env.get_rng_state(),
                    run_config=config.to_dict(), final=final)
        tree = run_tree(state, plan_state, key, buffer if config.save_buffer else None)
        checkpoints.save(ckpt_dir, step, tree, cfg, extra_meta=meta)

    try:
        while step <= config.steps:
            if step % config.eval_freq == 0 and not resumed:  # a checkpoint already holds this step's flag
                eval_next = True
            resumed = False
            if episode_done:
                if eval_next:
                    key, k = jax.random.split(key)
                    frames = [] if config.save_video else None
                    last_eval = evaluate(eval_env, planners, state.params, k, config.eval_episodes,
                                         on_frame=None if frames is None else frames.append)
                    logger.log("eval", step, {k_: v for k_, v in last_eval.items() if k_ not in ("returns", "lengths")})
                    if frames:
                        logger.video(step, frames)
                    last_eval["agent_step"] = step
                    eval_next = False
                if episode is not None:
                    finish_episode(episode, buffer, cfg.horizon)
                    episode_index += 1
                    logger.log("train", step, dict(episode=episode_index, episode_reward=episode.reward,
                                                    episode_length=len(episode.actions),
                                                    steps_per_second=step / max(logger.elapsed(), 1e-9), **metrics))
                    if step >= next_checkpoint:
                        save()
                        next_checkpoint = run.next_multiple(step, config.checkpoint_every)
                episode = Episode([env.reset()])
                episode_done = False

            if step > num_seed_steps:
                key, k = jax.random.split(key)
                action, plan_state = planners.act(state.params, episode.obs[-1], plan_state, k,
                                               len(episode.actions) == 0, eval_mode=False)
            else:
                action = env.random_action(rng)
            result = env.step(action)
            if result.physics_error:
                logger.message(f"physics became unstable at agent step {step:,} (episode {episode_index + 1}); "
                               "the episode ends there and training goes on")
            else:
                episode.obs.append(result.obs)
                episode.actions.append(np.asarray(action, np.float32))
                episode.rewards.append(result.reward)
            episode_done = result.done

            if step >= num_seed_steps and buffer.num_windows:
                if step == num_seed_steps:
                    logger.message(f"pretraining on {num_seed_steps:,} seed steps ...")
                for _ in range(num_seed_steps if step == num_seed_steps else 1):
                    key, k = jax.random.split(key)
                    batch = jax.tree.map(jnp.asarray, buffer.sample(rng, cfg.batch_size))
                    state, device_metrics = update(state, batch, k)
                metrics = {k_: float(v) for k_, v in device_metrics.items()}
                run.check_finite({"total_loss": metrics["total_loss"]}, f"at agent step {step:,}", ckpt_dir)
            step += 1
            logger.advance()
        save(final=True)
    finally:
        logger.close()
    return last_eval


def finish_episode(episode: Episode, buffer: EpisodeBuffer, horizon: int) -> None:
    """Adds a finished episode to the buffer (an episode cut short before H steps is dropped)."""
    if len(episode.actions) >= horizon:
        buffer.add_episode(np.stack(episode.obs), np.stack(episode.actions),
                           np.asarray(episode.rewards, np.float32))


def run_tree(state: TrainState, plan_state: PlanState, key: jax.Array, buffer: EpisodeBuffer | None) -> dict:
    """What a run checkpoint stores (params and target_qs at the top, like a model checkpoint)."""
    tree = {k: v for k, v in state._asdict().items() if v is not None}
    tree["plan_mean"] = plan_state.mean
    tree["key"] = jax.random.key_data(key)
    if buffer is not None:
        tree["buffer"] = buffer.state_dict()
    return tree


class RunCheckpoint(NamedTuple):
    state: TrainState
    plan_state: PlanState
    key: jax.Array
    rng: np.random.Generator
    agent_step: int
    episode: int
    eval_next: bool
    meta: dict


def restore_run(ckpt_dir: str, config: ConfigDict, cfg: Config, state: TrainState, plan_state: PlanState,
                buffer: EpisodeBuffer) -> RunCheckpoint:
    """The latest run checkpoint, refused with the differing keys when it is another run's."""
    step, meta = checkpoints.read_meta(ckpt_dir)
    run.check_resumable(ckpt_dir, config, cfg, meta, MUST_MATCH_ON_RESUME)
    like = run_tree(state, plan_state, jax.random.key(0), buffer if meta.get("has_buffer") else None)
    tree = checkpoints.restore_exact(ckpt_dir, step, like)
    if "buffer" in tree:
        buffer.load_state_dict(tree["buffer"])
    restored = jax.tree.map(jnp.asarray, TrainState(**{f: tree.get(f) for f in TrainState._fields}))
    rng = np.random.default_rng()
    rng.bit_generator.state = meta["rng"]
    return RunCheckpoint(restored, PlanState(jnp.asarray(tree["plan_mean"])),
                         jax.random.wrap_key_data(jnp.asarray(tree["key"])), rng, int(meta["agent_step"]),
                         int(meta["episode"]), bool(meta["eval_next"]), meta)
