"""An agent for a task from any checkpoint: this project's orbax checkpoints or official `.pt` files."""
from __future__ import annotations

import os

import jax

ARCHITECTURE_KEYS = ("num_enc_layers", "enc_dim", "mlp_dim", "latent_dim", "num_q", "simnorm_dim", "num_bins",
                     "log_std_min", "log_std_max", "episodic", "task_dim")


def load_for_task(path: str, config, obs_dim: int, action_dim: int):
    """(agent Config, params) of a checkpoint, planning settings from `config`; checks the task's shapes."""
    from tdmpc2_jax import checkpoints, convert
    from tdmpc2_jax.loops.run import agent_config

    if os.path.isfile(path):
        ckpt_cfg, params, _ = convert.to_project(convert.read_state_dict(path))
    else:
        ckpt_cfg, params, _ = checkpoints.load_model(path)
    if (ckpt_cfg.obs_dim, ckpt_cfg.action_dim) != (obs_dim, action_dim):
        raise ValueError(f"checkpoint {path} is for obs {ckpt_cfg.obs_dim} / action {ckpt_cfg.action_dim}, task "
                         f"{config.task} has obs {obs_dim} / action {action_dim}")
    if ckpt_cfg.multitask:
        raise ValueError(f"checkpoint {path} is multitask; evaluate runs single-task checkpoints")
    agent_cfg = agent_config(config, obs_dim, action_dim, config.episode_length)
    agent_cfg = agent_cfg.replace(**{k: getattr(ckpt_cfg, k) for k in ARCHITECTURE_KEYS})
    return agent_cfg, jax.tree.map(jax.numpy.asarray, params)
