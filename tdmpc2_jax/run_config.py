"""The run config of the command lines (official key names): the agent's settings with the defaults
of `config.Config`, the run's own keys, and the MJX loop's. configs/dmc.py and configs/mjx.py start
from these; a command resolves the result once into a `run_record.Run`."""
from __future__ import annotations

import dataclasses

from ml_collections import config_dict

from tdmpc2_jax.config import SIZE_KEYS, Config
from tdmpc2_jax.envs.registry import task_defaults
from tdmpc2_jax.run_record import DERIVED

COMPILATION_CACHE = "~/.cache/tdmpc2_jax/xla"  # the default of every run config's compilation_cache


def base_config(task: str) -> config_dict.ConfigDict:
    """Every key of a run on host MuJoCo (`backend="dmc"`)."""
    c = config_dict.ConfigDict()
    c.task = task  # a task, or a task set: mt30, mt80
    c.tasks = config_dict.placeholder(str)  # a custom task set: comma-separated tasks, in embedding order
    c.backend = "dmc"  # "dmc": host MuJoCo (configs/dmc.py); "mjx": batched MJX (configs/mjx.py)
    c.obs = "state"  # "rgb": 64x64 camera frames, 3 stacked (DMControl tasks, host MuJoCo)
    # the agent: Config's defaults, the official ones; model_size fills the size keys left unset
    # (a size key set explicitly wins)
    for field in dataclasses.fields(Config):
        if field.name in DERIVED:
            continue
        if field.name in SIZE_KEYS:
            setattr(c, field.name, config_dict.placeholder(int))
        else:
            setattr(c, field.name, field.default)
    c.model_size = 5
    c.seed_steps = config_dict.placeholder(int)  # default max(1000, 5 * episode_length); episode_length in agent steps
    # evaluation and training budget, in agent steps (transitions on MJX)
    c.eval_episodes = 10
    c.eval_freq = 50_000
    c.steps = 10_000_000
    c.buffer_size = 1_000_000
    c.exp_name = "default"
    # offline multitask training: a directory of dataset chunks (official format); the episodes to
    # load (default all); train.csv rows every log_every updates
    c.data_dir = config_dict.placeholder(str)
    c.max_episodes = config_dict.placeholder(int)
    c.log_every = 1000
    c.seed = 1
    c.save_csv = True
    c.save_video = False
    c.save_agent = True
    # Weights & Biases, like the official code (off by default here; WANDB_MODE=offline needs no network)
    c.enable_wandb = False
    c.wandb_project = config_dict.placeholder(str)
    c.wandb_entity = config_dict.placeholder(str)
    c.wandb_silent = False
    # this project's run keys
    c.work_dir = config_dict.placeholder(str)  # default: runs/<task>/<seed>/<exp_name>
    c.checkpoint_every = 50_000  # agent steps; checkpoints land on the next episode boundary
    c.resume = False
    # a model checkpoint (orbax directory or official .pt) whose weights and target Q-functions start
    # a new run; the optimizer, the replay buffer and the seeding schedule start fresh
    c.init_from = config_dict.placeholder(str)
    c.save_buffer = True  # include the replay buffer in checkpoints (needed for exact resume)
    c.tensorboard = True
    c.progress = True
    # compiled XLA programs kept on disk, so a run that compiles what an earlier run compiled (same
    # model, shapes, jax version) loads it instead: "" turns this off
    c.compilation_cache = COMPILATION_CACHE
    c.update(task_defaults(task))  # what the task's domain sets (Gymnasium: episode length, episodic, ...)
    return c


def mjx_config(task: str) -> config_dict.ConfigDict:
    """A run on batched MJX environments (`backend="mjx"`): counts are transitions over all of them."""
    from tdmpc2_jax.envs.mjx import playground_defaults

    c = base_config(task)
    c.update(playground_defaults(task))  # a locomotion or manipulation task's episode length and terminations
    c.backend = "mjx"
    c.num_envs = 64  # environments stepped together
    c.impl = "jax"  # MJX implementation: "jax" (runs everywhere) or "warp" (NVIDIA GPUs)
    # updates per batched step of num_envs transitions; default num_envs, the official ratio of one
    # update per transition (fewer trade samples for speed)
    c.updates_per_step = config_dict.placeholder(int)
    c.chunk_steps = config_dict.placeholder(int)  # batched steps per compiled chunk; default from eval_freq
    c.num_devices = config_dict.placeholder(int)  # devices to split over; default all JAX sees
    # several hosts: one process per host, jax.distributed.initialize() first; the address, count and
    # id come from these keys, else from the cluster (SLURM, Cloud TPU, ...) or JAX_COORDINATOR_ADDRESS
    c.distributed = False
    c.coordinator_address = config_dict.placeholder(str)  # host:port of process 0
    c.num_processes = config_dict.placeholder(int)
    c.process_id = config_dict.placeholder(int)
    return c
