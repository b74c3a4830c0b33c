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
from ml_collections import ConfigDict

from tdmpc2_jax import acting, checkpoints, loading, xla
from tdmpc2_jax.agent import Agent, TrainState
from tdmpc2_jax.buffers.episodic import EpisodeBuffer
from tdmpc2_jax.config import Config
from tdmpc2_jax.envs.dmc import DMCEnv
from tdmpc2_jax.envs.multitask import MultitaskEnv
from tdmpc2_jax.envs.pixels import FRAMES, select_renderer
from tdmpc2_jax.envs.registry import make_host_env
from tdmpc2_jax.envs.task_sets import task_dim_of, task_set_of
from tdmpc2_jax.logs import RunLogger
from tdmpc2_jax.loops import run
from tdmpc2_jax.planner import PlanState, init_plan_state, make_planner

MUST_MATCH_ON_RESUME = ("task", "tasks", "seed", "batch_size", "horizon", "buffer_size")


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


class Planners:
    """Jitted planners for acting (training noise) and evaluation."""

    def __init__(self, agent: Agent):
        self.horizon, self.obs_dim, self.action_dim = agent.cfg.horizon, agent.cfg.obs_dim, agent.cfg.action_dim
        self.train_plan = make_planner(agent.model, eval_mode=False)
        self.eval_plan = make_planner(agent.model, eval_mode=True)

    def initial_state(self) -> PlanState:
        return init_plan_state(self.horizon, self.action_dim)

    def act(self, params, obs: np.ndarray, plan_state: PlanState, key: jax.Array, t0: bool, eval_mode: bool,
            task: int | None = None):
        plan = self.eval_plan if eval_mode else self.train_plan
        task = None if task is None else jnp.asarray(task, jnp.int32)
        result, plan_state = plan(params, jnp.asarray(obs), plan_state, key, jnp.asarray(t0), task)
        return np.asarray(result.action), plan_state


def evaluate(env: DMCEnv, planners: Planners, params, key: jax.Array, episodes: int,
             on_frame: Callable[[np.ndarray], None] | None = None, task: int | None = None) -> dict[str, Any]:
    """Runs `episodes` episodes with the planner in eval mode: returns, lengths and their statistics.

    `on_frame` receives the rendered frames of the first episode; `task` is the task index of a
    multitask agent.
    """
    task = None if task is None else jnp.asarray(task, jnp.int32)

    def policy(plan_state, obs, k, t0):
        result, plan_state = planners.eval_plan(params, obs, plan_state, k, t0, task)
        return result.action, plan_state, ()

    episodes_run = acting.host_episodes(env, policy, planners.initial_state, key, episodes, on_frame)
    return run.episode_statistics(episodes_run.returns, episodes_run.lengths, episodes_run.successes)


def train(config: ConfigDict) -> dict[str, Any]:
    """Trains (or resumes) one agent on one DMC task, or on every task of a set (episodes cycle
    through the tasks); returns the last evaluation (with its `agent_step`)."""
    run.check_run_keys(config)
    work_dir = run.work_dir_of(config)
    ckpt_dir = os.path.join(work_dir, "checkpoints")
    env, eval_env, agent_cfg = make_envs(config)
    agent = Agent(agent_cfg)
    planners, update = Planners(agent), xla.jit(agent.update, donate_argnums=0)
    buffer = make_buffer(config, env, agent.cfg)
    num_seed_steps = run.seed_steps(config, max(agent.cfg.episode_lengths or (env.episode_length,)))
    run_state = initial_run_state(config, agent, planners)
    resumed = config.resume and checkpoints.latest_step(ckpt_dir) is not None
    if resumed:
        run_state = restore_run(ckpt_dir, config, agent.cfg, run_state, buffer, (env, eval_env))
    elif config.init_from:
        start = xla.jit(agent.state_from_params)(*loading.starting_weights(config.init_from, agent.cfg))
        run_state = dataclasses.replace(run_state, train_state=start)
    logger = make_logger(config, work_dir, run_state.step, agent.cfg, env.action_repeat)
    obs = "x".join(map(str, agent.cfg.obs_shape)) if agent.cfg.obs == "rgb" else env.obs_dim
    logger.message(f"{describe(agent.cfg, config.task)}: obs {obs}, action {env.action_dim}, "
                   f"agent steps {config.steps:,} "
                   f"(from {run_state.step:,}), buffer {buffer.capacity:,} rows = {buffer.nbytes / 2**20:.1f} MiB, "
                   f"work dir {work_dir}")
    save = lambda final=False: save_run(ckpt_dir, config, agent.cfg, run_state, buffer, (env, eval_env), final)
    next_checkpoint = run.next_multiple(run_state.step, config.checkpoint_every)
    metrics, episode, last_eval = {}, None, {}
    try:
        while run_state.step <= config.steps:
            if run_state.step % config.eval_freq == 0 and not resumed:  # a checkpoint already holds this step's flag
                run_state.eval_next = True
            resumed = False
            if episode is None or episode.done:
                if run_state.eval_next:
                    last_eval = evaluate_and_log(config, eval_env, agent.cfg, planners, run_state, logger)
                    run_state.eval_next = False
                if episode is not None:
                    finish_episode(episode, buffer, agent.cfg.horizon)
                    run_state.episode += 1
                    logger.log("train", run_state.step, dict(episode=run_state.episode, **episode.statistics(),
                                                      steps_per_second=run_state.step / max(logger.elapsed(), 1e-9),
                                                      **metrics))
                    if run_state.step >= next_checkpoint:
                        save()
                        next_checkpoint = run.next_multiple(run_state.step, config.checkpoint_every)
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
                run.check_finite({"total_loss": metrics["total_loss"]}, f"at agent step {run_state.step:,}", ckpt_dir)
            run_state.step += 1
            logger.advance()
        save(final=True)
    finally:
        logger.close()
    return last_eval


def make_envs(config: ConfigDict) -> tuple[Any, Any, Config]:
    """(training env, evaluation env, the agent's Config): the task's host envs, MultitaskEnvs for a set."""
    task_set = task_set_of(config)
    if task_set is None:
        if config.obs == "rgb":
            select_renderer()
        env = make_host_env(config.task, config.seed, config.episode_length, config.obs)
        eval_env = make_host_env(config.task, run.eval_seed(config.seed), config.episode_length, config.obs)
        return env, eval_env, run.agent_config(config, env.obs_shape, env.action_dim, env.episode_length)
    env = MultitaskEnv(task_set.tasks, config.seed, run.set_episode_length(config))
    eval_env = MultitaskEnv(task_set.tasks, run.eval_seed(config.seed), run.set_episode_length(config))
    agent_cfg = run.multitask_agent_config(config, task_set, env.obs_dim, env.action_dims, env.episode_lengths,
                                           task_dim_of(task_set.name, config.model_size))
    return env, eval_env, agent_cfg


def describe(agent_cfg: Config, task: str) -> str:
    return f"{task} ({agent_cfg.num_tasks} tasks)" if agent_cfg.multitask else task


def start_episode(env, agent_cfg: Config, episode: int) -> Episode:
    """A new episode; a multitask run cycles through the set's tasks, one episode each."""
    if not agent_cfg.multitask:
        return Episode([env.reset()])
    task = episode % agent_cfg.num_tasks
    return Episode([env.reset(task)], task)


def make_buffer(config: ConfigDict, env, agent_cfg: Config) -> EpisodeBuffer:
    """A buffer for min(buffer_size, steps) transitions (plus each episode's final observation)."""
    capacity_steps = min(config.buffer_size, config.steps)
    shortest = min(agent_cfg.episode_lengths or (env.episode_length,))
    return EpisodeBuffer(capacity_steps + capacity_steps // shortest + 1, agent_cfg.obs_shape, env.action_dim,
                         agent_cfg.horizon, multitask=agent_cfg.multitask,
                         stacked_frames=FRAMES if agent_cfg.obs == "rgb" else 0)


def initial_run_state(config: ConfigDict, agent: Agent, planners: Planners) -> RunState:
    key, init_key = jax.random.split(jax.random.key(config.seed))
    return RunState(agent.init(init_key), planners.initial_state(), key, np.random.default_rng(config.seed))


def make_logger(config: ConfigDict, work_dir: str, step: int, agent_cfg: Config, action_repeat: int) -> RunLogger:
    os.makedirs(work_dir, exist_ok=True)
    # agent steps 0..steps inclusive, as in the official loop
    return RunLogger(work_dir, config.steps + 1, action_repeat, start_step=step, tensorboard=config.tensorboard,
                     progress=config.progress, csv=config.save_csv, wandb=run.wandb_settings(config, work_dir),
                     tasks=agent_cfg.tasks if agent_cfg.multitask else ())


def evaluate_and_log(config: ConfigDict, eval_env, agent_cfg: Config, planners: Planners, run_state: RunState,
                     logger: RunLogger) -> dict[str, Any]:
    """An evaluation during training, logged (with the first episode's video when save_video is on).

    A multitask run evaluates every task and logs each one's return (`episode_reward+TASK`) beside
    the mean over tasks.
    """
    frames = [] if config.save_video else None
    key, params = run_state.next_key(), run_state.train_state.params
    if agent_cfg.multitask:
        result = evaluate_tasks(eval_env.envs, eval_env.tasks, planners, params, key, config.eval_episodes)
    else:
        result = evaluate(eval_env, planners, params, key, config.eval_episodes,
                          on_frame=None if frames is None else frames.append)
    logger.log("eval", run_state.step, {k: v for k, v in result.items() if k not in ("returns", "lengths")})
    if frames:
        logger.video(run_state.step, frames)
    return dict(result, agent_step=run_state.step)


def evaluate_tasks(envs: list, tasks: tuple[str, ...], planners: Planners, params, key: jax.Array,
                   episodes: int) -> dict[str, Any]:
    """`evaluate` on each env of a multitask agent's set `tasks` (PaddedEnvs, each with its task's
    index): the mean over them and each one's return (and success rate where its domain has one)."""
    indices = [tasks.index(env.task) for env in envs]
    per_task = [evaluate(env, planners, params, jax.random.fold_in(key, i), episodes, task=i)
                for i, env in zip(indices, envs)]
    returns = [r for result in per_task for r in result["returns"]]
    lengths = [n for result in per_task for n in result["lengths"]]
    result = run.episode_statistics(returns, lengths)
    result["episode_reward"] = float(np.mean([r["episode_reward"] for r in per_task]))
    result.update({f"episode_reward+{env.task}": r["episode_reward"] for env, r in zip(envs, per_task)})
    successes = {f"episode_success+{env.task}": r["episode_success"] for env, r in zip(envs, per_task)
                 if "episode_success" in r}
    if successes:  # the mean over the tasks that define success, and each one's
        result["episode_success"] = float(np.mean(list(successes.values())))
        result.update(successes)
    return result


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


def save_run(ckpt_dir: str, config: ConfigDict, agent_cfg: Config, run_state: RunState, buffer: EpisodeBuffer,
             envs: tuple[DMCEnv, DMCEnv], final: bool) -> None:
    """Writes the run checkpoint at run_state.step (nothing with save_agent off)."""
    if not config.save_agent:
        return
    env, eval_env = envs
    meta = dict(agent_step=run_state.step, episode=run_state.episode, eval_next=run_state.eval_next,
                has_buffer=bool(config.save_buffer), rng=run_state.rng.bit_generator.state,
                env_rng=env.get_rng_state(), eval_env_rng=eval_env.get_rng_state(),
                run_config=config.to_dict(), final=final)
    tree = run_tree(run_state.train_state, run_state.plan_state, run_state.key, buffer if config.save_buffer else None)
    checkpoints.save(ckpt_dir, run_state.step, tree, agent_cfg, extra_meta=meta)


def restore_run(ckpt_dir: str, config: ConfigDict, agent_cfg: Config, like: RunState, buffer: EpisodeBuffer,
                envs: tuple[DMCEnv, DMCEnv]) -> RunState:
    """The latest run checkpoint (the buffer and the envs' random states restored in place), refused
    with the differing keys when it is another run's. A finished run resumed with a larger `steps`
    goes on with its buffer grown to the new budget."""
    step, meta = checkpoints.read_meta(ckpt_dir)
    run.check_resumable(ckpt_dir, config, agent_cfg, meta, MUST_MATCH_ON_RESUME)
    # the buffer as it was saved: a run resumed with a larger budget (steps) has a larger one
    saved = make_buffer(ConfigDict(meta["run_config"]), envs[0], agent_cfg) if meta.get("has_buffer") else None
    tree = checkpoints.restore_exact(ckpt_dir, step, run_tree(like.train_state, like.plan_state, jax.random.key(0),
                                                              saved))
    if "buffer" in tree:
        buffer.load_state_dict(tree["buffer"])
    for env, rng_state in zip(envs, (meta["env_rng"], meta["eval_env_rng"])):
        env.set_rng_state(rng_state)
    rng = np.random.default_rng()
    rng.bit_generator.state = meta["rng"]
    train_state = jax.tree.map(jnp.asarray, TrainState(**{f: tree.get(f) for f in TrainState._fields}))
    return RunState(train_state, PlanState(jnp.asarray(tree["plan_mean"])),
                    jax.random.wrap_key_data(jnp.asarray(tree["key"])), rng, int(meta["agent_step"]),
                    int(meta["episode"]), bool(meta["eval_next"]))
