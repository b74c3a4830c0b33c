"""DMControl on host MuJoCo: `--config=configs/dmc.py:TASK` (dash names, e.g. cheetah-run, dog-run)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import base  # noqa: E402


def get_config(task: str = "dog-run"):
    config = base.get_config()
    config.task = task
    return config
