"""Evaluating a checkpoint: a single-task agent on host MuJoCo or MJX, or a multitask agent on the
tasks of its set, with the planner in eval mode. The evaluate command is a thin edge over these."""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from tdmpc2_jax import acting, xla
from tdmpc2_jax.agent import Agent
from tdmpc2_jax.config import Config
from tdmpc2_jax.environments import make_env, make_task_env
from tdmpc2_jax.envs.multitask import PaddedEnv
from tdmpc2_jax.loading import for_set, for_task
from tdmpc2_jax.names import close_matches
from tdmpc2_jax.run_record import Run, eval_seed
from tdmpc2_jax.types import Params


class Episodes(NamedTuple):
    returns: np.ndarray  # [E]
    lengths: list[int]  # [E]
    success: float | None  # the success rate where the domain defines success
    frames: list[np.ndarray]  # the first episode's frames [H, W, 3] uint8 (with video)


def evaluate_task(run: Run, path: str, checkpoint: tuple[Config, Params], episodes: int, seed: int,
                  video: bool = False, on_progress: Callable[[int], None] | None = None) -> Episodes:
    """`episodes` episodes of a single-task checkpoint on the run's task and backend (seeded
    eval_seed(seed)); on MJX at once in one program (the video drawn on host MuJoCo from the first
    episode's physics states, `on_progress` hearing of every tenth of the steps)."""
    env = make_env(run, eval_seed(seed))
    obs_shape = env.obs_dim if run.backend == "mjx" else env.obs_shape
    agent_cfg, params = for_task(path, checkpoint, run, obs_shape, env.action_dim)
    if run.backend != "mjx":
        result = acting.evaluate(env, acting.Planners(Agent(agent_cfg)), params, jax.random.key(seed), episodes,
                                 on_frame=(frames := []).append if video else None)
        return Episodes(np.asarray(result["returns"]), [int(n) for n in result["lengths"]],
                        result.get("episode_success"), frames if video else [])
    trace = env.physics if video else None
    model = Agent(agent_cfg).model
    result = xla.jit(lambda p, k: acting.evaluate_batched(model, env, p, k, episodes, trace, on_progress))(
        params, jax.random.key(eval_seed(seed)))
    lengths = [int(n) for n in np.asarray(result.lengths)]
    frames = env.draw(jax.tree.map(lambda x: np.asarray(x[:lengths[0], 0]), result.trace)) if video else []
    return Episodes(np.asarray(result.returns), lengths, None, frames)


class SetEvaluation(NamedTuple):
    name: str  # the task set's name
    rows: list[dict[str, Any]]  # per task: task, index, episodes, return_mean, return_std, success, note
    frames: list[np.ndarray]  # the first task's first episode (with video)


def evaluate_set(run: Run, path: str, checkpoint: tuple[Config, Params], selected: list[str] | None, episodes: int,
                 seed: int, video: bool = False, on_task: Callable[[dict[str, Any]], None] | None = None
                 ) -> SetEvaluation:
    """Every selected task (default: all of the run's set, or the run's one task) of a multitask
    checkpoint on host MuJoCo; a task that cannot run here gets a row with its reason in `note`.
    `on_task(row)` hears of each row as it is made."""
    if run.backend != "host":
        raise ValueError("multitask evaluation runs on host MuJoCo: use --config=configs/dmc.py:" + run.task)
    if run.obs != "state":
        raise ValueError("multitask agents take state observations (the official code has no multitask pixel agent)")
    model = for_set(path, checkpoint, run, run.task_set)
    tasks = model.task_set.tasks
    selected = selected or (list(tasks) if run.task_set else [run.task])
    unknown = [t for t in selected if t not in tasks]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} not in the checkpoint's task set {model.task_set.name}"
                         f"{close_matches(unknown[0], tasks)}")
    if video and len(selected) != 1:
        raise ValueError("--video records one task: select it with --tasks TASK")
    cfg, planners, key = model.agent_cfg, acting.Planners(Agent(model.agent_cfg)), jax.random.key(seed)
    rows, frames = [], []
    for task in selected:
        index = tasks.index(task)
        row = dict(task=task, index=index, episodes=0, return_mean="", return_std="", success="", note="")
        try:
            env = PaddedEnv(make_task_env(run, task, eval_seed(seed) + index), cfg.obs_dim, cfg.action_dim)
            if env.inner.action_dim > cfg.action_dims[index]:
                raise ValueError(f"{task} has {env.inner.action_dim} actions, the checkpoint's task {index} "
                                 f"{cfg.action_dims[index]}")
        except ValueError as err:
            row["note"] = str(err)
        else:
            stats = acting.evaluate(env, planners, model.params, jax.random.fold_in(key, index), episodes,
                                    on_frame=frames.append if video else None, task=index)
            success = stats.get("episode_success")
            row.update(episodes=episodes, return_mean=stats["episode_reward"], return_std=stats["episode_reward_std"],
                       success="" if success is None else success)
        rows.append(row)
        if on_task is not None:
            on_task(row)
    return SetEvaluation(model.task_set.name, rows, frames)
