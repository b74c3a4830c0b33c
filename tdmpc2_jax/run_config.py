"""The run config of the command lines (official key names): the agent's settings with the defaults
of `config.Config`, the run's own keys, and the MJX loop's. configs/dmc.py and configs/mjx.py start
from these; a command resolves the result once into a `run_record.Run`. `KEY_MEANINGS` says what
each key means (`--config_keys` prints it), `UNSUPPORTED_KEYS` why an official key is absent."""
from __future__ import annotations

import dataclasses

from ml_collections import config_dict

from tdmpc2_jax.config import SIZE_KEYS, Config
from tdmpc2_jax.envs.registry import task_defaults
from tdmpc2_jax.run_record import DERIVED

COMPILATION_CACHE = "~/.cache/tdmpc2_jax/xla"  # the default of every run config's compilation_cache


def base_config(task: str) -> config_dict.ConfigDict:
    """Every key of a run on host MuJoCo (`backend="dmc"`); `KEY_MEANINGS` says what each means."""
    c = config_dict.ConfigDict()
    c.task = task
    c.tasks = config_dict.placeholder(str)
    c.backend = "dmc"
    c.obs = "state"
    # the agent: Config's defaults, the official ones; the size keys are left to model_size
    for field in dataclasses.fields(Config):
        if field.name in DERIVED:
            continue
        if field.name in SIZE_KEYS:
            setattr(c, field.name, config_dict.placeholder(int))
        else:
            setattr(c, field.name, field.default)
    c.model_size = 5
    c.seed_steps = config_dict.placeholder(int)
    c.eval_episodes = 10
    c.eval_freq = 50_000
    c.steps = 10_000_000
    c.buffer_size = 1_000_000
    c.exp_name = "default"
    c.data_dir = config_dict.placeholder(str)
    c.max_episodes = config_dict.placeholder(int)
    c.log_every = 1000
    c.seed = 1
    c.save_csv = True
    c.save_video = False
    c.save_agent = True
    c.enable_wandb = False  # on by default in the official code
    c.wandb_project = config_dict.placeholder(str)
    c.wandb_entity = config_dict.placeholder(str)
    c.wandb_silent = False
    c.work_dir = config_dict.placeholder(str)
    c.checkpoint_every = 50_000
    c.resume = False
    c.init_from = config_dict.placeholder(str)
    c.save_buffer = True
    c.tensorboard = True
    c.progress = True
    c.compilation_cache = COMPILATION_CACHE
    c.update(task_defaults(task))  # what the task's domain sets (Gymnasium: episode length, episodic, ...)
    return c


def mjx_config(task: str) -> config_dict.ConfigDict:
    """A run on batched MJX environments (`backend="mjx"`): counts are transitions over all of them."""
    from tdmpc2_jax.envs.mjx import playground_defaults

    c = base_config(task)
    c.update(playground_defaults(task))  # a locomotion or manipulation task's episode length and terminations
    c.backend = "mjx"
    c.num_envs = 64
    c.impl = "jax"
    c.updates_per_step = config_dict.placeholder(int)
    c.chunk_steps = config_dict.placeholder(int)
    c.num_devices = config_dict.placeholder(int)
    c.distributed = False
    c.coordinator_address = config_dict.placeholder(str)
    c.num_processes = config_dict.placeholder(int)
    c.process_id = config_dict.placeholder(int)
    return c


# What every key of base_config and mjx_config means, one line each, in the order --config_keys
# lists them (the official config.yaml's order, then this project's keys). Counts are agent steps
# on host, transitions over all environments on MJX, updates offline.
KEY_MEANINGS: dict[str, str] = {
    # the environment
    "task": "the task (e.g. dog-run, mw-reach, myo-reach) or a task set (mt30, mt80)",
    "tasks": "a custom task set: comma-separated tasks, in the order of their embeddings",
    "obs": "observations: state (vectors) or rgb (64x64 camera frames, 3 stacked; host DMControl)",
    "episodic": "episodes end at terminal states, and a termination head learns them",
    "episode_length": "agent steps per episode (a task set: each task's own unless changed)",
    "backend": "dmc: host MuJoCo (configs/dmc.py); mjx: batched MJX environments (configs/mjx.py)",
    # evaluation
    "eval_episodes": "episodes per evaluation",
    "eval_freq": "steps between evaluations",
    # training
    "steps": "steps of training in all",
    "batch_size": "sequences per update batch",
    "reward_coef": "weight of the reward loss",
    "value_coef": "weight of the value (Q) loss",
    "termination_coef": "weight of the termination loss (episodic tasks)",
    "consistency_coef": "weight of the latent consistency loss",
    "rho": "per-step decay of the loss weights along the horizon",
    "lr": "learning rate (Adam)",
    "enc_lr_scale": "the encoder's learning rate as a fraction of lr",
    "grad_clip_norm": "largest global gradient norm of an update",
    "tau": "rate of the target Q-functions' moving average",
    "discount_denom": "discount = 1 - discount_denom / episode_length, clipped to [discount_min, discount_max]",
    "discount_min": "smallest discount",
    "discount_max": "largest discount",
    "buffer_size": "transitions the replay buffer keeps",
    "exp_name": "the experiment's name: part of the default work_dir and of the W&B group",
    "data_dir": "offline multitask training: a directory of dataset chunks (official format)",
    # planning
    "mpc": "plan with MPPI (false: act with the policy prior alone)",
    "iterations": "MPPI iterations per planning step",
    "num_samples": "action sequences sampled per iteration",
    "num_elites": "best sequences that refit the sampling distribution",
    "num_pi_trajs": "of the samples, sequences drawn from the policy prior",
    "horizon": "planning and training horizon (steps)",
    "min_std": "smallest standard deviation of the sampled actions",
    "max_std": "largest (and initial) standard deviation of the sampled actions",
    "temperature": "temperature of MPPI's weighting of the elites by value",
    # the policy prior
    "log_std_min": "smallest log standard deviation of the policy",
    "log_std_max": "largest log standard deviation of the policy",
    "entropy_coef": "weight of the policy's entropy bonus",
    # the critic
    "num_bins": "bins of the two-hot regression of rewards and values",
    "vmin": "lowest bin (symlog scale)",
    "vmax": "highest bin (symlog scale)",
    # the architecture
    "model_size": "parameters in millions (1, 5, 19, 48, 317): sets the size keys left unset",
    "num_enc_layers": "encoder layers (unset: from model_size)",
    "enc_dim": "width of the encoder's hidden layers (unset: from model_size)",
    "num_channels": "channels of the pixel encoder's convolutions",
    "mlp_dim": "width of the dynamics, reward, policy and Q hidden layers (unset: from model_size)",
    "latent_dim": "size of the latent state (unset: from model_size)",
    "num_q": "Q-functions in the ensemble (unset: from model_size)",
    "dropout": "dropout rate of the Q-functions",
    "simnorm_dim": "group size of the simplicial normalization of latents",
    # logging
    "wandb_project": "Weights & Biases project",
    "wandb_entity": "Weights & Biases entity (user or team)",
    "wandb_silent": "silence Weights & Biases' own output",
    "enable_wandb": "log to Weights & Biases (needs the wandb extra; WANDB_MODE=offline keeps it on disk)",
    "save_csv": "write eval.csv and train.csv",
    # misc
    "save_video": "save a video of an evaluation episode at each evaluation (host)",
    "save_agent": "write checkpoints",
    "seed": "random seed of the run",
    "work_dir": "where the run writes (unset: runs/<task>/<seed>/<exp_name>)",
    "seed_steps": "steps of random actions before planning (unset: max(1000, 5 x episode_length))",
    # this project's run keys
    "max_episodes": "offline: episodes of the dataset to load (unset: all)",
    "log_every": "offline: updates between train.csv rows",
    "checkpoint_every": "steps between checkpoints (on host at the next episode's end)",
    "resume": "continue the run in work_dir from its newest checkpoint",
    "init_from": "start from a model checkpoint's weights (orbax directory or official .pt); the rest starts fresh",
    "save_buffer": "keep the replay buffer in checkpoints (needed for an exact resume)",
    "tensorboard": "write TensorBoard scalars, the config and hyperparameters under work_dir/tb",
    "progress": "show a progress bar",
    "compilation_cache": "directory of compiled XLA programs kept between runs (\"\": off)",
    # MJX (configs/mjx.py)
    "num_envs": "MJX: environments stepped together",
    "impl": "MJX implementation: jax (everywhere) or warp (NVIDIA GPUs)",
    "updates_per_step": "MJX: updates per batched step (unset: num_envs, one per transition as officially)",
    "chunk_steps": "MJX: batched steps per compiled chunk (unset: from eval_freq)",
    "num_devices": "MJX: devices to split the environments over (unset: all JAX sees)",
    "distributed": "MJX on several hosts: one process per host, joined by jax.distributed",
    "coordinator_address": "MJX on several hosts: host:port of process 0 (unset: from the cluster)",
    "num_processes": "MJX on several hosts: the number of processes (unset: from the cluster)",
    "process_id": "MJX on several hosts: this process's index (unset: from the cluster)",
}

# Keys of the official config.yaml that this project has no key for, and why.
UNSUPPORTED_KEYS: dict[str, str] = {
    "compile": "XLA compiles every program already",
    "checkpoint": "evaluate a checkpoint with tdmpc2_jax.evaluate --checkpoint=PATH; "
                  "--config.init_from=PATH starts training from one",
    "multitask": "a task set makes a run multitask: --config.task=mt30 or mt80, or --config.tasks=a,b,...",
    "task_title": "a display name the official code derives from the task; logs here use the task's name",
    "task_dim": "set by the task set as the official code sets it (96 for mt80 and the 1M and 317M mt30 "
                "models, else 64)",
    "obs_shape": "read from the environment",
    "action_dim": "read from the environment",
    "obs_shapes": "read from each task's environment",
    "action_dims": "read from each task's environment",
    "episode_lengths": "read from each task's environment (--config.episode_length sets one for all)",
    "bin_size": "derived: (vmax - vmin) / (num_bins - 1)",
}
