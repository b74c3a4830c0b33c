"""Offline multitask training on a dataset in the official chunk format (mt30, mt80, or a custom set).

Like the official offline trainer: `steps` updates on windows sampled uniformly from every episode of
the dataset, and every `eval_freq` updates an evaluation of `eval_episodes` episodes on every task of
the set that runs here (the planner in eval mode, each task with its index). Logs count updates:
`step` and `agent_step` in eval.csv and train.csv are the update index.

A run is resumable: every `checkpoint_every` updates and at the end, the TrainState, the JAX key and
the sampler's random state are written with orbax (the dataset is not: it is read again).
"""
from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from tdmpc2_jax import checkpoints, loading, xla
from tdmpc2_jax.agent import Agent, TrainState
from tdmpc2_jax.buffers.offline import DATASET_SPECS, DatasetSpec, OfflineDataset
from tdmpc2_jax.config import Config
from tdmpc2_jax.envs.multitask import PaddedEnv
from tdmpc2_jax.envs.registry import make_host_env
from tdmpc2_jax.envs.task_sets import TaskSet, episode_length_of, known_dims, task_dim_of, task_set_of
from tdmpc2_jax.logs import RunLogger
from tdmpc2_jax.loops import run
from tdmpc2_jax.loops.host import Planners, evaluate_tasks

MUST_MATCH_ON_RESUME = ("task", "tasks", "seed", "batch_size", "horizon", "data_dir")


def train(config: ConfigDict) -> dict[str, Any]:
    """Trains (or resumes) one multitask agent on `config.data_dir`; returns the last evaluation."""
    task_set = task_set_of(config)
    if task_set is None:
        raise ValueError("offline training is multitask: name a task set (configs/dmc.py:mt30, mt80) or "
                         "list tasks with --config.tasks")
    work_dir = run.work_dir_of(config)
    ckpt_dir = os.path.join(work_dir, "checkpoints")
    eval_envs, skipped = make_eval_envs(config, task_set)
    agent = Agent(offline_agent_config(config, task_set, eval_envs))
    dataset = OfflineDataset(config.data_dir, dataset_spec(task_set, agent.cfg), config.max_episodes)
    update, planners = xla.jit(agent.update, donate_argnums=0), Planners(agent)
    key, init_key = jax.random.split(jax.random.key(config.seed))
    state, rng, start = agent.init(init_key), np.random.default_rng(config.seed), 0
    if config.resume and checkpoints.latest_step(ckpt_dir) is not None:
        state, key, rng, start = restore_run(ckpt_dir, config, agent.cfg, state, eval_envs)
    elif config.init_from:
        state = xla.jit(agent.state_from_params)(*loading.starting_weights(config.init_from, agent.cfg))
    logger = RunLogger(work_dir, config.steps, 1, start_step=start, step_name="updates", tensorboard=config.tensorboard,
                       progress=config.progress, csv=config.save_csv, wandb=run.wandb_settings(config, work_dir),
                       tasks=tuple(env.task for env in eval_envs))
    logger.message(f"{task_set.name} offline: {dataset.num_episodes:,} episodes ({dataset.num_transitions:,} "
                   f"transitions, {dataset.memory_bytes() / 2**30:.2f} GiB mapped from {config.data_dir}), "
                   f"{config.steps:,} updates (from {start:,}), work dir {work_dir}")
    for message in dataset.warnings + skipped:
        logger.message("warning: " + message)
    last_eval: dict[str, Any] = {}
    try:
        for i in range(start, config.steps):
            if i % config.eval_freq == 0:
                key, k_eval = jax.random.split(key)
                last_eval = evaluate_and_log(eval_envs, agent.cfg.tasks, planners, state.params, k_eval, config,
                                             logger, i)
            key, k_update = jax.random.split(key)
            batch = jax.tree.map(jnp.asarray, dataset.sample(rng, agent.cfg.batch_size, agent.cfg.horizon))
            state, metrics = update(state, batch, k_update)
            if (i + 1) % config.log_every == 0 or i + 1 == config.steps:
                metrics = {k: float(v) for k, v in metrics.items()}
                run.check_finite({"total_loss": metrics["total_loss"]}, f"at update {i + 1:,}", ckpt_dir)
                logger.log("train", i + 1, metrics)
            if (i + 1) % config.checkpoint_every == 0 and i + 1 < config.steps:
                save_run(ckpt_dir, config, agent.cfg, state, key, rng, eval_envs, i + 1)
            logger.advance()
        save_run(ckpt_dir, config, agent.cfg, state, key, rng, eval_envs, config.steps)  # before the last eval draws a key
        last_eval = evaluate_and_log(eval_envs, agent.cfg.tasks, planners, state.params, jax.random.split(key)[1],
                                     config, logger, config.steps)
    finally:
        logger.close()
    return last_eval


def make_eval_envs(config: ConfigDict, task_set: TaskSet) -> tuple[list, list[str]]:
    """(the set's tasks that run here, unpadded; why each other one does not)."""
    envs, skipped = [], []
    for i, task in enumerate(task_set.tasks):
        try:
            envs.append(make_host_env(task, run.eval_seed(config.seed) + i, run.set_episode_length(config)))
        except ValueError as err:
            skipped.append(f"not evaluated: {err}")
    return envs, skipped


def offline_agent_config(config: ConfigDict, task_set: TaskSet, envs: list) -> Config:
    """The set's agent: the published set's padded shapes, each task's action dim and episode length."""
    by_task = {env.task: env for env in envs}
    dims = [(by_task[t].obs_dim, by_task[t].action_dim) if t in by_task else known_dims(t) for t in task_set.tasks]
    spec = DATASET_SPECS.get(task_set.name)
    obs_dim = spec.obs_dim if spec else max(d[0] for d in dims)
    lengths = tuple(by_task[t].episode_length if t in by_task else episode_length_of(t) for t in task_set.tasks)
    return run.multitask_agent_config(config, task_set, obs_dim, tuple(d[1] for d in dims), lengths,
                                      task_dim_of(task_set.name, config.model_size))


def dataset_spec(task_set: TaskSet, agent_cfg: Config) -> DatasetSpec:
    """The published set's chunk layout, or a custom set's (its episode length: the first chunk's)."""
    if task_set.name in DATASET_SPECS:
        return DATASET_SPECS[task_set.name]
    return DatasetSpec(task_set.name, agent_cfg.num_tasks, 0, agent_cfg.obs_dim, agent_cfg.action_dim)


def evaluate_and_log(envs: list, tasks: tuple[str, ...], planners: Planners, params, key: jax.Array,
                     config: ConfigDict, logger: RunLogger, update: int) -> dict[str, Any]:
    padded = [PaddedEnv(env, planners.obs_dim, planners.action_dim) for env in envs]
    result = evaluate_tasks(padded, tasks, planners, params, key, config.eval_episodes)
    logger.log("eval", update, {k: v for k, v in result.items() if k not in ("returns", "lengths")})
    return dict(result, update=update)


def save_run(ckpt_dir: str, config: ConfigDict, agent_cfg: Config, state: TrainState, key: jax.Array,
             rng: np.random.Generator, eval_envs: list, update: int) -> None:
    if not config.save_agent:
        return
    tree = {k: v for k, v in state._asdict().items() if v is not None}
    tree["key"] = jax.random.key_data(key)
    meta = dict(update=update, rng=rng.bit_generator.state, run_config=config.to_dict(),
                eval_env_rng=[env.get_rng_state() for env in eval_envs])
    checkpoints.save(ckpt_dir, update, tree, agent_cfg, extra_meta=meta)


def restore_run(ckpt_dir: str, config: ConfigDict, agent_cfg: Config, like: TrainState, eval_envs: list):
    """(TrainState, key, sampler rng, update) of the latest checkpoint, the evaluation envs' random
    states restored in place; refused when it is another run's."""
    step, meta = checkpoints.read_meta(ckpt_dir)
    run.check_resumable(ckpt_dir, config, agent_cfg, meta, MUST_MATCH_ON_RESUME)
    like_tree = {k: v for k, v in like._asdict().items() if v is not None}
    like_tree["key"] = jax.random.key_data(jax.random.key(0))
    tree = checkpoints.restore_exact(ckpt_dir, step, like_tree)
    rng = np.random.default_rng()
    rng.bit_generator.state = meta["rng"]
    for env, env_rng in zip(eval_envs, meta["eval_env_rng"]):
        env.set_rng_state(env_rng)
    state = jax.tree.map(jnp.asarray, TrainState(**{f: tree.get(f) for f in TrainState._fields}))
    return state, jax.random.wrap_key_data(jnp.asarray(tree["key"])), rng, int(meta["update"])
