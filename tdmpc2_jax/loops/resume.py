"""Resume bookkeeping shared by every loop: the run checkpoint's metadata, the keys a checkpoint
must share with the run that resumes it, numpy random states, and the one save / read / restore
path. Each loop declares only its own tree (what its state holds) and its own keys.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import jax
import numpy as np

from tdmpc2_jax import checkpoints
from tdmpc2_jax.config import Config
from tdmpc2_jax.run_record import Run

# keys every run's checkpoint must share with the run that resumes it (loops add their own)
MUST_MATCH = ("task", "tasks", "batch_size", "horizon")


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """A numpy generator's state, as JSON."""
    return rng.bit_generator.state


def rng_from_state(state: Mapping[str, Any]) -> np.random.Generator:
    """The numpy generator a `rng_state` was taken from, at the same point of its stream."""
    rng = np.random.default_rng()
    rng.bit_generator.state = dict(state)
    return rng


def wants_resume(run: Run) -> bool:
    """Whether the run resumes: resume=True and its checkpoint directory holds a checkpoint."""
    return run.resume and checkpoints.latest_step(run.ckpt_dir) is not None


def save(run: Run, step: int, tree: Any, agent_cfg: Config, meta: Mapping[str, Any]) -> None:
    """Writes run checkpoint `step` (nothing with save_agent off): `tree` and the loop's `meta`,
    with the run config that the resume check compares."""
    if run.save_agent:
        checkpoints.save(run.ckpt_dir, step, tree, agent_cfg, extra_meta={**meta, "run_config": dict(run.config)})


def read(run: Run, agent_cfg: Config, must_match: Iterable[str],
         differences: Callable[[Mapping[str, Any]], list[str]] | None = None,
         on_message: Callable[[str], None] = print) -> tuple[int, dict[str, Any]]:
    """(step, metadata) of the newest run checkpoint that reads whole, refused in one line naming
    every difference when another run wrote it (keys of MUST_MATCH and `must_match`, the
    architecture, and what the loop's `differences(metadata)` finds).

    A damaged newer checkpoint is moved aside, and `on_message` hears which step was damaged, which
    step the run resumes from and what is lost (`checkpoints.newest_whole`); with several
    processes (sharing the checkpoint directory), process 0 chooses the step and says so."""
    if jax.process_count() > 1:
        step = newest_whole_everywhere(run, on_message)
        _, meta = checkpoints.read_meta(run.ckpt_dir, step)
    else:
        step, meta = checkpoints.newest_whole(run.ckpt_dir, on_message, run.step_unit)
    saved = meta.get("run_config", {})
    diffs = [f"{k}: run has {run.config.get(k)!r}, checkpoint has {saved.get(k)!r}"
             for k in (*MUST_MATCH, *must_match) if k in saved and saved[k] != run.config.get(k)]
    diffs += differences(meta) if differences else []
    diffs += checkpoints.architecture_mismatches(agent_cfg.architecture(), meta.get("architecture", {}))
    if diffs:
        raise ValueError(f"cannot resume from {run.ckpt_dir}: " + "; ".join(diffs))
    return step, meta


def newest_whole_everywhere(run: Run, on_message: Callable[[str], None]) -> int:
    """The step of `checkpoints.newest_whole` found (and damage moved aside) by process 0 alone,
    then given to every process; each raises the same one-line error when there is none."""
    from jax.experimental import multihost_utils

    step, failure = -1, None
    if jax.process_index() == 0:
        try:
            step, _ = checkpoints.newest_whole(run.ckpt_dir, on_message, run.step_unit)
        except (FileNotFoundError, checkpoints.NoWholeCheckpoint) as err:
            failure = err
    step = int(multihost_utils.broadcast_one_to_all(np.int32(step)))
    if failure is not None:
        raise failure
    if step < 0:
        raise FileNotFoundError(f"process 0 found no whole checkpoint in {run.ckpt_dir}; nothing was deleted")
    return step


def restore(run: Run, step: int, like: Any) -> Any:
    """The tree of run checkpoint `step` in exactly the structure, shapes and dtypes of `like` (numpy)."""
    return checkpoints.restore_exact(run.ckpt_dir, step, like)
