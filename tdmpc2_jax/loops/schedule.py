"""When a loop does what: the next evaluation or checkpoint, and the stop on a non-finite loss."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from tdmpc2_jax import checkpoints


class NonFiniteLoss(RuntimeError):
    pass


def next_multiple(step: int, every: int) -> int:
    """The first multiple of `every` after `step` (where the next eval or checkpoint is due)."""
    return (step // every + 1) * every


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
