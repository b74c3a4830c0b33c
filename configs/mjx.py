"""DMControl on batched MJX environments (MuJoCo Playground): `--config=configs/mjx.py:TASK`.

Every key of configs/dmc.py means the same here; counts (steps, eval_freq, checkpoint_every,
seed_steps, buffer_size) are transitions over all environments.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import base  # noqa: E402
from ml_collections import config_dict  # noqa: E402


def get_config(task: str = "cheetah-run"):
    config = base.get_config()
    config.task = task
    config.backend = "mjx"
    config.num_envs = 64  # environments stepped together
    config.impl = "jax"  # MJX implementation: "jax" (runs everywhere) or "warp" (NVIDIA GPUs)
    # updates per batched step of num_envs transitions; default num_envs, the official ratio of one
    # update per transition (fewer trade samples for speed)
    config.updates_per_step = config_dict.placeholder(int)
    config.chunk_steps = config_dict.placeholder(int)  # batched steps per compiled chunk; default from eval_freq
    config.num_devices = config_dict.placeholder(int)  # devices to split over; default all JAX sees
    config.distributed = False  # several hosts: call jax.distributed.initialize() first (one process per host)
    return config
