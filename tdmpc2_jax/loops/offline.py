"""Offline multitask training on a dataset in the official chunk format (mt30, mt80, or a custom set).

Like the official offline trainer: `steps` updates on windows sampled uniformly from every episode of
the dataset, and every `eval_freq` updates an evaluation of `eval_episodes` episodes on every task of
the set that runs here (the planner in eval mode, each task with its index). Logs count updates:
`step` and `agent_step` in eval.csv and train.csv are the update index.

A run is resumable: every `checkpoint_every` updates and at the end, the TrainState, the JAX key and
the sampler's random state are written with orbax (the dataset is not: it is read again).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tdmpc2_jax import acting, loading, xla
from tdmpc2_jax.agent import Agent, TrainState
from tdmpc2_jax.buffers.offline import DATASET_SPECS, DatasetSpec, OfflineDataset
from tdmpc2_jax.config import Config
from tdmpc2_jax.environments import make_task_env
from tdmpc2_jax.envs.multitask import PaddedEnv
from tdmpc2_jax.envs.task_sets import TaskSet, episode_length_of, known_dims
from tdmpc2_jax.logs import RunLogger
from tdmpc2_jax.loops import resume
from tdmpc2_jax.loops.schedule import check_finite
from tdmpc2_jax.run_record import Run

MUST_MATCH_ON_RESUME = ("seed", "data_dir")  # beside resume.MUST_MATCH


def train(run: Run) -> dict[str, Any]:
    """Trains (or resumes) one multitask agent on `run.data_dir`; returns the last evaluation."""
    eval_envs, skipped = make_eval_envs(run)
    agent = Agent(offline_agent_config(run, eval_envs))
    dataset = OfflineDataset(run.data_dir, dataset_spec(run.task_set, agent.cfg), run.max_episodes)
    update, planners = xla.jit(agent.update, donate_argnums=0), acting.Planners(agent)
    key, init_key = jax.random.split(jax.random.key(run.seed))
    state, rng, start = agent.init(init_key), np.random.default_rng(run.seed), 0
    if resume.wants_resume(run):
        state, key, rng, start = restore_run(run, agent.cfg, state, eval_envs)
    elif run.init_from:
        state = xla.jit(agent.state_from_params)(*loading.starting_weights(run.init_from, agent.cfg))
    logger = RunLogger(run.work_dir, run.steps, 1, start_step=start, step_name="updates", tensorboard=run.tensorboard,
                       progress=run.progress, csv=run.save_csv, wandb=run.wandb,
                       tasks=tuple(env.task for env in eval_envs), config=run.config)
    logger.message(f"{run.task_set.name} offline: {dataset.num_episodes:,} episodes ({dataset.num_transitions:,} "
                   f"transitions, {dataset.memory_bytes() / 2**30:.2f} GiB mapped from {run.data_dir}), "
                   f"{run.steps:,} updates (from {start:,}), work dir {run.work_dir}")
    for message in dataset.warnings + skipped:
        logger.message("warning: " + message)
    last_eval: dict[str, Any] = {}
    try:
        for i in range(start, run.steps):
            if i % run.eval_freq == 0:
                key, k_eval = jax.random.split(key)
                last_eval = evaluate_and_log(run, eval_envs, agent.cfg.tasks, planners, state.params, k_eval,
                                             logger, i)
            key, k_update = jax.random.split(key)
            batch = jax.tree.map(jnp.asarray, dataset.sample(rng, agent.cfg.batch_size, agent.cfg.horizon))
            state, metrics = update(state, batch, k_update)
            if (i + 1) % run.log_every == 0 or i + 1 == run.steps:
                metrics = {k: float(v) for k, v in metrics.items()}
                check_finite({"total_loss": metrics["total_loss"]}, f"at update {i + 1:,}", run.ckpt_dir)
                logger.log("train", i + 1, metrics)
            if (i + 1) % run.checkpoint_every == 0 and i + 1 < run.steps:
                save_run(run, agent.cfg, state, key, rng, eval_envs, i + 1)
            logger.advance()
        save_run(run, agent.cfg, state, key, rng, eval_envs, run.steps)  # before the last eval draws a key
        last_eval = evaluate_and_log(run, eval_envs, agent.cfg.tasks, planners, state.params,
                                     jax.random.split(key)[1], logger, run.steps)
    finally:
        logger.close()
    return last_eval


def make_eval_envs(run: Run) -> tuple[list, list[str]]:
    """(the set's tasks that run here, unpadded; why each other one does not)."""
    envs, skipped = [], []
    for i, task in enumerate(run.task_set.tasks):
        try:
            envs.append(make_task_env(run, task, run.eval_seed + i))
        except ValueError as err:
            skipped.append(f"not evaluated: {err}")
    return envs, skipped


def offline_agent_config(run: Run, envs: list) -> Config:
    """The set's agent: the published set's padded shapes, each task's action dim and episode length."""
    task_set, by_task = run.task_set, {env.task: env for env in envs}
    dims = [(by_task[t].obs_dim, by_task[t].action_dim) if t in by_task else known_dims(t) for t in task_set.tasks]
    spec = DATASET_SPECS.get(task_set.name)
    obs_dim = spec.obs_dim if spec else max(d[0] for d in dims)
    lengths = tuple(by_task[t].episode_length if t in by_task else episode_length_of(t) for t in task_set.tasks)
    return run.multitask_agent_config(task_set, obs_dim, tuple(d[1] for d in dims), lengths)


def dataset_spec(task_set: TaskSet, agent_cfg: Config) -> DatasetSpec:
    """The published set's chunk layout, or a custom set's (its episode length: the first chunk's)."""
    if task_set.name in DATASET_SPECS:
        return DATASET_SPECS[task_set.name]
    return DatasetSpec(task_set.name, agent_cfg.num_tasks, 0, agent_cfg.obs_dim, agent_cfg.action_dim)


def evaluate_and_log(run: Run, envs: list, tasks: tuple[str, ...], planners: acting.Planners, params,
                     key: jax.Array, logger: RunLogger, update: int) -> dict[str, Any]:
    padded = [PaddedEnv(env, planners.obs_dim, planners.action_dim) for env in envs]
    result = acting.evaluate_tasks(padded, tasks, planners, params, key, run.eval_episodes)
    logger.log("eval", update, {k: v for k, v in result.items() if k not in ("returns", "lengths")})
    return dict(result, update=update)


def run_tree(state: TrainState, key: jax.Array) -> dict:
    """What an offline checkpoint stores: the TrainState's fields and the JAX key."""
    return {**{k: v for k, v in state._asdict().items() if v is not None}, "key": jax.random.key_data(key)}


def save_run(run: Run, agent_cfg: Config, state: TrainState, key: jax.Array, rng: np.random.Generator,
             eval_envs: list, update: int) -> None:
    meta = dict(update=update, rng=resume.rng_state(rng), eval_env_rng=[env.get_rng_state() for env in eval_envs])
    resume.save(run, update, run_tree(state, key), agent_cfg, meta)


def restore_run(run: Run, agent_cfg: Config, like: TrainState, eval_envs: list):
    """(TrainState, key, sampler rng, update) of the latest checkpoint, the evaluation envs' random
    states restored in place; refused when it is another run's."""
    step, meta = resume.read(run, agent_cfg, MUST_MATCH_ON_RESUME)
    tree = resume.restore(run, step, run_tree(like, jax.random.key(0)))
    for env, env_rng in zip(eval_envs, meta["eval_env_rng"]):
        env.set_rng_state(env_rng)
    state = jax.tree.map(jnp.asarray, TrainState(**{f: tree.get(f) for f in TrainState._fields}))
    return state, jax.random.wrap_key_data(jnp.asarray(tree["key"])), resume.rng_from_state(meta["rng"]), \
        int(meta["update"])
