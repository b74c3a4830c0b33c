"""DMControl on host MuJoCo: `--config=configs/dmc.py:TASK` (dash names, e.g. cheetah-run, dog-run)."""
from tdmpc2_jax.run_config import base_config


def get_config(task: str = "dog-run"):
    return base_config(task)
