"""What every host environment adapter shares: the result of one agent step."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class StepResult(NamedTuple):
    """One agent step of a host environment (every domain's adapter returns these)."""

    obs: np.ndarray  # [obs_dim] float32
    reward: float  # summed over the repeated physics steps
    done: bool  # the episode ended: time limit, termination, or the physics became unstable
    physics_error: bool
    terminated: bool = False  # the episode reached a terminal state (a time limit is not one)
    success: float = float("nan")  # the domain's success flag at this step, NaN where it defines none
