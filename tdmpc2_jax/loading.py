"""An agent from any checkpoint (this project's orbax checkpoints or official `.pt` files), for one
task or for a task set, with the shapes checked against the tasks it will run."""
from __future__ import annotations

import os
from typing import NamedTuple

import jax

from tdmpc2_jax.config import Config
from tdmpc2_jax.envs.task_sets import TaskSet, episode_length_of, known_set_of_size
from tdmpc2_jax.run_record import Run
from tdmpc2_jax.types import Params

ARCHITECTURE_KEYS = ("num_enc_layers", "enc_dim", "num_channels", "mlp_dim", "latent_dim", "num_q", "simnorm_dim",
                     "num_bins", "log_std_min", "log_std_max", "episodic", "task_dim")


def read_checkpoint(path: str) -> tuple[Config, Params]:
    """(the checkpoint's Config, params as jax arrays) of an orbax directory or an official file."""
    ckpt_cfg, params, _ = read_weights(path)
    return ckpt_cfg, params


def read_weights(path: str) -> tuple[Config, Params, Params]:
    """(the checkpoint's Config, params, target Q-functions [num_q, ...]) as jax arrays, of an orbax
    directory or an official file."""
    from tdmpc2_jax import checkpoints, convert

    if os.path.isfile(path):
        ckpt_cfg, params, target_qs = convert.to_project(convert.read_state_dict(path))
    else:
        ckpt_cfg, params, target_qs = checkpoints.load_model(path)
    return ckpt_cfg, *jax.tree.map(jax.numpy.asarray, (params, target_qs))


def starting_weights(path: str, agent_cfg: Config) -> tuple[Params, Params]:
    """(params, target_qs) of a checkpoint that starts a run of `agent_cfg` (`init_from`); refuses
    one whose architecture differs, naming each difference."""
    from tdmpc2_jax import checkpoints

    if not os.path.exists(path):
        raise FileNotFoundError(f"init_from={path}: no such checkpoint")
    ckpt_cfg, params, target_qs = read_weights(path)
    diffs = checkpoints.architecture_mismatches(agent_cfg.architecture(), ckpt_cfg.architecture())
    if diffs:
        raise ValueError(f"init_from={path} does not fit this run: " + "; ".join(diffs))
    return params, target_qs


def load_for_task(path: str, run: Run, obs_shape: int | tuple[int, ...], action_dim: int) -> tuple[Config, Params]:
    """(agent Config, params) of a single-task checkpoint, planning settings from `run`; checks the task's shapes."""
    return for_task(path, read_checkpoint(path), run, obs_shape, action_dim)


def for_task(path: str, checkpoint: tuple[Config, Params], run: Run, obs_shape: int | tuple[int, ...],
             action_dim: int):
    """`load_for_task` of a checkpoint already read from `path` (obs_shape: the task's obs_dim or image shape)."""
    ckpt_cfg, params = checkpoint
    obs_shape = (obs_shape,) if isinstance(obs_shape, int) else tuple(obs_shape)
    if ckpt_cfg.multitask:
        raise ValueError(f"checkpoint {path} is multitask ({ckpt_cfg.num_tasks} tasks): evaluate it with its task "
                         f"set, e.g. --config=configs/dmc.py:mt30, or with --config.tasks listing its tasks")
    if ckpt_cfg.obs != run.obs:
        raise ValueError(f"checkpoint {path} was trained on {ckpt_cfg.obs} observations: evaluate it with "
                         f"--config.obs={ckpt_cfg.obs} (this run has obs={run.obs})")
    if (ckpt_cfg.obs_shape, ckpt_cfg.action_dim) != (obs_shape, action_dim):
        shape = lambda s: "x".join(map(str, s))
        raise ValueError(f"checkpoint {path} is for obs {shape(ckpt_cfg.obs_shape)} / action {ckpt_cfg.action_dim}, "
                         f"task {run.task} has obs {shape(obs_shape)} / action {action_dim}")
    agent_cfg = run.agent_config(obs_shape, action_dim, run.episode_length)
    return agent_cfg.replace(**{k: getattr(ckpt_cfg, k) for k in ARCHITECTURE_KEYS}), params


class MultitaskModel(NamedTuple):
    agent_cfg: Config  # multitask Config with the set's tasks, action dims and episode lengths
    params: Params
    task_set: TaskSet


def _names_known(cfg: Config) -> bool:
    """Official weights do not name their tasks (conversion without --tasks calls them task0, ...)."""
    return cfg.tasks != tuple(f"task{i}" for i in range(cfg.num_tasks))


def for_set(path: str, checkpoint: tuple[Config, Params], run: Run, task_set: TaskSet | None) -> MultitaskModel:
    """A multitask checkpoint (read from `path`) with its task set, planning settings from `run`.

    The set is `task_set`, else the one the checkpoint names, else the official set with as many
    tasks (mt30, mt80). Refuses a single-task checkpoint, a set of another size or other names.
    """
    ckpt_cfg, params = checkpoint
    if not ckpt_cfg.multitask:
        wanted = f"the task set {task_set.name}" if task_set else "a task set"
        raise ValueError(f"checkpoint {path} is single-task: {wanted} needs a multitask checkpoint")
    named = TaskSet(f"custom-mt{ckpt_cfg.num_tasks}", ckpt_cfg.tasks) if _names_known(ckpt_cfg) else None
    if task_set is None:
        task_set = named or known_set_of_size(ckpt_cfg.num_tasks)
        if task_set is None:
            raise ValueError(f"checkpoint {path} has {ckpt_cfg.num_tasks} tasks and does not name them: list them "
                             "in embedding order with --config.tasks")
    if len(task_set.tasks) != ckpt_cfg.num_tasks:
        raise ValueError(f"checkpoint {path} has {ckpt_cfg.num_tasks} tasks, the set {task_set.name} has "
                         f"{len(task_set.tasks)}")
    if named and named.tasks != task_set.tasks:
        i = next(i for i, (a, b) in enumerate(zip(named.tasks, task_set.tasks)) if a != b)
        raise ValueError(f"checkpoint {path} was trained on other tasks: its task {i} is {named.tasks[i]}, "
                         f"the set's is {task_set.tasks[i]}")
    lengths = ckpt_cfg.episode_lengths if named else tuple(episode_length_of(t) for t in task_set.tasks)
    agent_cfg = run.multitask_agent_config(task_set, obs_dim=ckpt_cfg.obs_dim, action_dims=ckpt_cfg.action_dims,
                                           episode_lengths=lengths, task_dim=ckpt_cfg.task_dim)
    return MultitaskModel(agent_cfg.replace(**{k: getattr(ckpt_cfg, k) for k in ARCHITECTURE_KEYS}), params, task_set)
