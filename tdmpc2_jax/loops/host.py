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
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from tdmpc2_jax import acting, loading, xla
from tdmpc2_jax.agent import Agent, TrainState
from tdmpc2_jax.buffers.episodic import EpisodeBuffer
from tdmpc2_jax.config import Config
from tdmpc2_jax.environments import make_envs
from tdmpc2_jax.envs.pixels import FRAMES
from tdmpc2_jax.logs import RunLogger
from tdmpc2_jax.loops import resume
from tdmpc2_jax.loops.schedule import check_finite, next_multiple
from tdmpc2_jax.planner import PlanState
from tdmpc2_jax.run_record import Run

MUST_MATCH_ON_RESUME = ("seed", "buffer_size")  # beside resume.MUST_MATCH


@dataclasses.dataclass
class Episode:
    """Transitions of the running episode (obs has one more entry than actions)."""

    obs: list
    task: int | None = None  # task index of a multitask run
    actions: list = dataclasses.field(default_factory=list)
    rewards: list = dataclasses.field(default_factory=list)
    terminated: list = dataclasses.field(default_factory=list)  # whether each step reached a terminal state
    done: bool = False

    def statistics(self) -> dict[str, float]:
        return dict(episode_reward=float(np.sum(self.rewards)), episode_length=len(self.actions))


@dataclasses.dataclass
class RunState:
    """What a run checkpoint restores: the learner, the planner's warm start, the random states and
    the counters (agent steps taken, episodes finished, whether an evaluation waits for the next
    episode boundary)."""

    train_state: TrainState
    plan_state: PlanState
    key: jax.Array
    rng: np.random.Generator
    step: int = 0
    episode: int = 0
    eval_next: bool = False

    def next_key(self) -> jax.Array:
        self.key, key = jax.random.split(self.key)
        return key


def train(run: Run) -> dict[str, Any]:
    """Trains (or resumes) one agent on one host task, or on every task of a set (episodes cycle
    through the tasks); returns the last evaluation (with its `agent_step`)."""
    env, eval_env, agent_cfg = make_envs(run)
    agent = Agent(agent_cfg)
    planners, update = acting.Planners(agent), xla.jit(agent.update, donate_argnums=0)
    buffer = make_buffer(run, agent.cfg)
    num_seed_steps = run.seed_steps_for(max(agent.cfg.episode_lengths or (env.episode_length,)))
    run_state = initial_run_state(run, agent, planners)
    resumed = resume.wants_resume(run)
    if resumed:
        run_state = restore_run(run, agent.cfg, run_state, buffer, (env, eval_env))
    elif run.init_from:
        start = xla.jit(agent.state_from_params)(*loading.starting_weights(run.init_from, agent.cfg))
        run_state = dataclasses.replace(run_state, train_state=start)
    logger = make_logger(run, run_state.step, agent.cfg, env.action_repeat)
    obs = "x".join(map(str, agent.cfg.obs_shape)) if agent.cfg.obs == "rgb" else env.obs_dim
    logger.message(f"{describe(agent.cfg, run.task)}: obs {obs}, action {env.action_dim}, "
                   f"agent steps {run.steps:,} "
                   f"(from {run_state.step:,}), buffer {buffer.capacity:,} rows = {buffer.nbytes / 2**20:.1f} MiB, "
                   f"work dir {run.work_dir}")
    save = lambda final=False: save_run(run, agent.cfg, run_state, buffer, (env, eval_env), final)
    next_checkpoint = next_multiple(run_state.step, run.checkpoint_every)
    metrics, episode, last_eval = {}, None, {}
    try:
        while run_state.step <= run.steps:
            if run_state.step % run.eval_freq == 0 and not resumed:  # a checkpoint already holds this step's flag
                run_state.eval_next = True
            resumed = False
            if episode is None or episode.done:
                if run_state.eval_next:
                    last_eval = evaluate_and_log(run, eval_env, agent.cfg, planners, run_state, logger)
                    run_state.eval_next = False
                if episode is not None:
                    finish_episode(episode, buffer, agent.cfg.horizon)
                    run_state.episode += 1
                    logger.log("train", run_state.step, dict(episode=run_state.episode, **episode.statistics(),
                                                      steps_per_second=run_state.step / max(logger.elapsed(), 1e-9),
                                                      **metrics))
                    if run_state.step >= next_checkpoint:
                        save()
                        next_checkpoint = next_multiple(run_state.step, run.checkpoint_every)
                episode = start_episode(env, agent.cfg, run_state.episode)

            if run_state.step > num_seed_steps:
                action, run_state.plan_state = planners.act(run_state.train_state.params, episode.obs[-1],
                                                            run_state.plan_state, run_state.next_key(),
                                                            not episode.actions, eval_mode=False, task=episode.task)
            else:
                action = env.random_action(run_state.rng)
            result = env.step(action)
            if result.physics_error:
                logger.message(f"physics became unstable at agent step {run_state.step:,} "
                               f"(episode {run_state.episode + 1}); the episode ends there and training goes on")
            else:
                episode.obs.append(result.obs)
                episode.actions.append(np.asarray(action, np.float32))
                episode.rewards.append(result.reward)
                episode.terminated.append(float(result.terminated))
            episode.done = result.done

            if run_state.step >= num_seed_steps and buffer.num_windows:
                if run_state.step == num_seed_steps:
                    logger.message(f"pretraining on {num_seed_steps:,} seed steps ...")
                metrics = learn(run_state, update, buffer, agent.cfg.batch_size,
                                num_seed_steps if run_state.step == num_seed_steps else 1)
                check_finite({"total_loss": metrics["total_loss"]}, f"at agent step {run_state.step:,}", run.ckpt_dir)
            run_state.step += 1
            logger.advance()
        save(final=True)
    finally:
        logger.close()
    return last_eval


def describe(agent_cfg: Config, task: str) -> str:
    return f"{task} ({agent_cfg.num_tasks} tasks)" if agent_cfg.multitask else task


def start_episode(env, agent_cfg: Config, episode: int) -> Episode:
    """A new episode; a multitask run cycles through the set's tasks, one episode each."""
    if not agent_cfg.multitask:
        return Episode([env.reset()])
    task = episode % agent_cfg.num_tasks
    return Episode([env.reset(task)], task)


def make_buffer(run: Run, agent_cfg: Config) -> EpisodeBuffer:
    """A buffer for the run's budget of kept transitions (plus each episode's final observation)."""
    capacity = EpisodeBuffer.rows_for(run.kept_transitions, min(agent_cfg.episode_lengths or (agent_cfg.episode_length,)))
    return EpisodeBuffer(capacity, agent_cfg.obs_shape, agent_cfg.action_dim, agent_cfg.horizon,
                         multitask=agent_cfg.multitask, stacked_frames=FRAMES if agent_cfg.obs == "rgb" else 0)


def initial_run_state(run: Run, agent: Agent, planners: acting.Planners) -> RunState:
    key, init_key = jax.random.split(jax.random.key(run.seed))
    return RunState(agent.init(init_key), planners.initial_state(), key, np.random.default_rng(run.seed))


def make_logger(run: Run, step: int, agent_cfg: Config, action_repeat: int) -> RunLogger:
    os.makedirs(run.work_dir, exist_ok=True)
    # agent steps 0..steps inclusive, as in the official loop
    return RunLogger(run.work_dir, run.steps + 1, action_repeat, start_step=step, tensorboard=run.tensorboard,
                     progress=run.progress, csv=run.save_csv, wandb=run.wandb,
                     tasks=agent_cfg.tasks if agent_cfg.multitask else (), config=run.config)


def evaluate_and_log(run: Run, eval_env, agent_cfg: Config, planners: acting.Planners, run_state: RunState,
                     logger: RunLogger) -> dict[str, Any]:
    """An evaluation during training, logged (with the first episode's video when save_video is on).

    A multitask run evaluates every task and logs each one's return (`episode_reward+TASK`) beside
    the mean over tasks.
    """
    frames = [] if run.save_video else None
    key, params = run_state.next_key(), run_state.train_state.params
    if agent_cfg.multitask:
        result = acting.evaluate_tasks(eval_env.envs, eval_env.tasks, planners, params, key, run.eval_episodes)
    else:
        result = acting.evaluate(eval_env, planners, params, key, run.eval_episodes,
                                 on_frame=None if frames is None else frames.append)
    logger.log("eval", run_state.step, {k: v for k, v in result.items() if k not in ("returns", "lengths")})
    if frames:
        logger.video(run_state.step, frames)
    return dict(result, agent_step=run_state.step)


def learn(run_state: RunState, update: Callable, buffer: EpisodeBuffer, batch_size: int,
          updates: int) -> dict[str, float]:
    """`updates` updates on batches sampled from the buffer; the last one's metrics."""
    for _ in range(updates):
        key = run_state.next_key()
        batch = jax.tree.map(jnp.asarray, buffer.sample(run_state.rng, batch_size))
        run_state.train_state, metrics = update(run_state.train_state, batch, key)
    return {k: float(v) for k, v in metrics.items()}


def finish_episode(episode: Episode, buffer: EpisodeBuffer, horizon: int) -> None:
    """Adds a finished episode to the buffer (an episode cut short before H steps is dropped)."""
    if len(episode.actions) >= horizon:
        buffer.add_episode(np.stack(episode.obs), np.stack(episode.actions), np.asarray(episode.rewards, np.float32),
                           np.asarray(episode.terminated, np.float32), task=episode.task)


# ---------------------------------------------------------------------- checkpoints
def run_tree(state: TrainState, plan_state: PlanState, key: jax.Array, buffer: EpisodeBuffer | None) -> dict:
    """What a run checkpoint stores (params and target_qs at the top, like a model checkpoint)."""
    tree = {k: v for k, v in state._asdict().items() if v is not None}
    tree["plan_mean"] = plan_state.mean
    tree["key"] = jax.random.key_data(key)
    if buffer is not None:
        tree["buffer"] = buffer.state_dict()
    return tree


def save_run(run: Run, agent_cfg: Config, run_state: RunState, buffer: EpisodeBuffer, envs: tuple[Any, Any],
             final: bool) -> None:
    """Writes the run checkpoint at run_state.step (nothing with save_agent off)."""
    env, eval_env = envs
    meta = dict(agent_step=run_state.step, episode=run_state.episode, eval_next=run_state.eval_next,
                has_buffer=bool(run.save_buffer), rng=resume.rng_state(run_state.rng),
                env_rng=env.get_rng_state(), eval_env_rng=eval_env.get_rng_state(), final=final)
    tree = run_tree(run_state.train_state, run_state.plan_state, run_state.key, buffer if run.save_buffer else None)
    resume.save(run, run_state.step, tree, agent_cfg, meta)


def restore_run(run: Run, agent_cfg: Config, like: RunState, buffer: EpisodeBuffer, envs: tuple[Any, Any]
                ) -> RunState:
    """The latest run checkpoint (the buffer and the envs' random states restored in place), refused
    with the differing keys when it is another run's. A finished run resumed with a larger `steps`
    goes on with its buffer grown to the new budget."""
    step, meta = resume.read(run, agent_cfg, MUST_MATCH_ON_RESUME)
    # the buffer as it was saved: a run resumed with a larger budget (steps) has a larger one
    saved = make_buffer(run.replace(steps=meta["run_config"]["steps"]), agent_cfg) if meta.get("has_buffer") else None
    tree = resume.restore(run, step, run_tree(like.train_state, like.plan_state, jax.random.key(0), saved))
    if "buffer" in tree:
        buffer.load_state_dict(tree["buffer"])
    for env, rng_state in zip(envs, (meta["env_rng"], meta["eval_env_rng"])):
        env.set_rng_state(rng_state)
    train_state = jax.tree.map(jnp.asarray, TrainState(**{f: tree.get(f) for f in TrainState._fields}))
    return RunState(train_state, PlanState(jnp.asarray(tree["plan_mean"])),
                    jax.random.wrap_key_data(jnp.asarray(tree["key"])), resume.rng_from_state(meta["rng"]),
                    int(meta["agent_step"]), int(meta["episode"]), bool(meta["eval_next"]))
