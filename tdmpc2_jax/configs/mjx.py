"""DMControl on batched MJX environments (MuJoCo Playground): `--config=configs/mjx.py:TASK`.

Every key of configs/dmc.py means the same here; counts (steps, eval_freq, checkpoint_every,
seed_steps, buffer_size) are transitions over all environments.
"""
from tdmpc2_jax.run_config import mjx_config


def get_config(task: str = "cheetah-run"):
    return mjx_config(task)
