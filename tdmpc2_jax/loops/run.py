"""Run bookkeeping shared by the host and the MJX loop: the agent's Config from a run config, the
work directory, the official seeding schedule, evaluation seeds, schedule boundaries, the resume
check, the non-finite-loss stop and evaluation statistics."""
from __future__ import annotations

import hashlib
import os
from typing import Any, Iterable, Mapping

import numpy as np
from ml_collections import ConfigDict

from tdmpc2_jax import checkpoints
from tdmpc2_jax.config import FIELD_NAMES, Config, make_config
from tdmpc2_jax.envs.task_sets import TaskSet, task_set_of
from tdmpc2_jax.run_config import DERIVED

# evaluation environments and keys are seeded apart from training's
EVAL_SEED_OFFSET = 1_000_003


class NonFiniteLoss(RuntimeError):
    pass


def agent_config(config: ConfigDict, obs_shape: int | tuple[int, ...], action_dim: int, episode_length: int
                 ) -> Config:
    """The agent's Config from a run config (official keys) and the environment's dimensions:
    obs_shape is obs_dim, or the image shape [C, H, W] of pixel observations."""
    values = {k: v for k, v in config.to_dict().items() if k in FIELD_NAMES and k not in DERIVED}
    if config.obs == "rgb":
        values.update(obs_dim=0, image_shape=tuple(obs_shape))
    else:
        values.update(obs_dim=obs_shape if isinstance(obs_shape, int) else int(obs_shape[0]))
    values.update(action_dim=action_dim, episode_length=episode_length, model_size=config.model_size)
    if config.task == "mt30" and config.model_size == 19 and config.latent_dim is None:
        values["latent_dim"] = 512  # the official mt30 19M model is narrower than the 19M preset
    return make_config(values)


def multitask_agent_config(config: ConfigDict, task_set: TaskSet, obs_dim: int, action_dims: tuple[int, ...],
                           episode_lengths: tuple[int, ...], task_dim: int) -> Config:
    """The Config of one agent for every task of a set: observations padded to obs_dim, actions to
    max(action_dims), a discount per task from its episode length."""
    single = agent_config(config, obs_dim, max(action_dims), max(episode_lengths))
    return single.replace(multitask=True, tasks=task_set.tasks, action_dims=tuple(action_dims),
                          episode_lengths=tuple(episode_lengths), task_dim=task_dim)


def set_episode_length(config: ConfigDict) -> int | None:
    """Agent steps per episode of a task set's tasks: each one's own (None: DMControl 500, Meta-World
    100, ...), unless `episode_length` is set to another value than the default, which all then use."""
    return None if config.episode_length == Config.episode_length else config.episode_length


def check_run_keys(config: ConfigDict) -> None:
    """Refuses combinations of the official run keys that cannot work, with what to change."""
    if config.resume and not config.save_agent:
        raise ValueError("resume=True needs the checkpoints that save_agent=False turns off")
    if config.obs not in ("state", "rgb"):
        raise ValueError(f"obs={config.obs!r}: choose 'state' or 'rgb'")
    if config.obs == "rgb":
        if config.backend == "mjx":
            raise ValueError("obs=rgb runs on host MuJoCo (--config=configs/dmc.py:TASK): MJX environments render "
                             "pixels only through Madrona on NVIDIA GPUs, which this project does not drive")
        if task_set_of(config) is not None or config.data_dir:
            raise ValueError("obs=rgb is single-task and online (the official code has no multitask pixel agent)")
    if config.save_video and config.backend != "dmc":
        raise ValueError("save_video records evaluation episodes rendered on host MuJoCo: train with "
                         f"--config=configs/dmc.py:{config.task}, or evaluate an MJX checkpoint there with --video")


def wandb_settings(config: ConfigDict, work_dir: str, name: str | None = None) -> dict[str, Any] | None:
    """What RunLogger needs for a Weights & Biases run (None with enable_wandb off): one run per
    work dir (a resume continues it), named by seed (or population member), grouped by task and
    experiment like the official runs."""
    if not config.enable_wandb:
        return None
    if not config.wandb_project:
        raise ValueError("enable_wandb=True needs --config.wandb_project (and usually --config.wandb_entity)")
    run_id = hashlib.sha256(os.path.abspath(work_dir).encode()).hexdigest()[:16]
    return dict(project=config.wandb_project, entity=config.wandb_entity, name=name or str(config.seed),
                group=f"{config.task}-{config.exp_name}", config=config.to_dict(), silent=config.wandb_silent,
                id=run_id)


def work_dir_of(config: ConfigDict) -> str:
    """runs/<task or task set>/<seed>/<exp_name> unless work_dir is given."""
    task_set = task_set_of(config)
    name = task_set.name if task_set else config.task
    return config.work_dir or os.path.join("runs", name, str(config.seed), config.exp_name)


def seed_steps(config: ConfigDict, episode_length: int) -> int:
    """Steps of uniformly random actions before planning: the official max(1000, 5 x episode length)."""
    return config.seed_steps or max(1000, 5 * episode_length)


def eval_seed(seed: int) -> int:
    return seed + EVAL_SEED_OFFSET


def next_multiple(step: int, every: int) -> int:
    """The first multiple of `every` after `step` (where the next eval or checkpoint is due)."""
    return (step // every + 1) * every


def check_resumable(ckpt_dir: str, config: ConfigDict, agent_cfg: Config, meta: Mapping[str, Any],
                    must_match: Iterable[str], extra: Iterable[str] = ()) -> None:
    """Refuses, naming every difference, a checkpoint written by another run (keys in `must_match`
    and the architecture; `extra` adds differences the caller found)."""
    saved = meta.get("run_config", {})
    diffs = [f"{k}: run has {config[k]!r}, checkpoint has {saved.get(k)!r}" for k in must_match
             if k in saved and saved[k] != config[k]]
    diffs += list(extra)
    diffs += checkpoints.architecture_mismatches(agent_cfg.architecture(), meta.get("architecture", {}))
    if diffs:
        raise ValueError(f"cannot resume from {ckpt_dir}: " + "; ".join(diffs))


def check_finite(metrics: Mapping[str, Any], where: str, ckpt_dir: str, members: list[str] | None = None) -> None:
    """Stops the run when a metric is not finite, naming it, the members of a population whose
    values ([M, ...]) are not, and the last good checkpoint."""
    for name, value in metrics.items():
        finite = np.isfinite(np.asarray(value))
        if finite.all():
            continue
        if members is not None:
            where += " (" + ", ".join(members[i] for i in np.flatnonzero(~finite.reshape(len(members), -1).all(1))) + ")"
        raise NonFiniteLoss(f"non-finite {name} {where}; the last good checkpoint is step "
                            f"{checkpoints.latest_step(ckpt_dir)} in {ckpt_dir}")


def episode_statistics(returns: Iterable[float], lengths: Iterable[int],
                       successes: Iterable[float] | None = None) -> dict[str, Any]:
    """Mean, spread and lengths of evaluation episodes, as logged to eval.csv (with the success rate
    where the domain defines success: `successes` holds NaN where it does not)."""
    returns, lengths = np.asarray(list(returns), np.float64), np.asarray(list(lengths))
    stats = dict(episode_reward=float(returns.mean()), episode_reward_std=float(returns.std()),
                 episode_reward_min=float(returns.min()), episode_length=float(lengths.mean()),
                 returns=returns.tolist(), lengths=lengths.tolist())
    successes = np.asarray([] if successes is None else list(successes), np.float64)
    if successes.size and not np.isnan(successes).all():
        stats["episode_success"] = float(np.nanmean(successes))
    return stats
