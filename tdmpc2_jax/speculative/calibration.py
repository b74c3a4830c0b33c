"""Thresholds tau_k for the fallback: full-replanning runs that record e_k, and their file.

e_k compares each observation with the latent that the plan made k steps earlier predicted for it;
tau_k is a quantile of e_k per k (`controller.calibrate_tau`). The policy mismatch (the prior's
action at the observed latent against the planned action) has its own thresholds, taken from the
same runs. The thresholds are saved per task and backend ("walker-walk@host", "walker-walk@mjx":
the physics differ, and so do the mismatches), K and mismatch in `speculative_calibration.json`
beside the agent's checkpoint (keys "K" for e_k, "K:policy" for the policy mismatch).
"""
from __future__ import annotations

import json
import os
import re
import tempfile

import jax
import numpy as np

from tdmpc2_jax import acting, xla

CALIBRATION_FILE = "speculative_calibration.json"


def calibration_path(checkpoint: str) -> str:
    directory = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(os.path.abspath(checkpoint))
    return os.path.join(directory, CALIBRATION_FILE)


def entry_key(k: int, mismatch: str) -> str:
    return str(k) if mismatch == "latent" else f"{k}:{mismatch}"


def table_key(task: str, backend: str) -> str:
    if backend not in ("host", "mjx"):
        raise ValueError(f"calibrations are kept for backend host or mjx, not {backend!r}")
    return f"{task}@{backend}"


def read_calibration(checkpoint: str, task: str, backend: str, seed: int | None = None) -> dict[tuple[int, str], list[float]]:
    """{(K, mismatch): tau [K]} of one task on one backend (with `seed`: only the thresholds made
    from episodes of that seed; entries written before seeds were recorded have none); a damaged
    file is a one-line ValueError naming it."""
    return {key: entry["tau"] for key, entry in read_entries(checkpoint, task, backend).items()
            if seed is None or entry.get("seed") == seed}


def read_entries(checkpoint: str, task: str, backend: str) -> dict[tuple[int, str], dict]:
    """{(K, mismatch): the file's entry (tau, quantile, episodes, seed where recorded)} of one task on one backend."""
    key, path = table_key(task, backend), calibration_path(checkpoint)
    entries = {}
    for entry, value in _read_table(path).get(key, {}).items():
        k, _, mismatch = entry.partition(":")
        entries[int(k), mismatch or "latent"] = value
    return entries


def write_calibration(checkpoint: str, task: str, backend: str, k: int, mismatch: str, tau: np.ndarray,
                      quantile: float, episodes: int, seed: int) -> None:
    """Adds one entry to the file (with the seed of the calibration episodes, which evaluations
    must not share), atomically: the new table goes to a temporary file beside it, flushed to
    disk, then renamed over it, so a crash or a full disk leaves the old file whole."""
    path = calibration_path(checkpoint)
    table = _read_table(path)
    table.setdefault(table_key(task, backend), {})[entry_key(k, mismatch)] = dict(
        tau=[float(t) for t in tau], quantile=quantile, episodes=episodes, seed=seed)
    fd, tmp = tempfile.mkstemp(prefix=CALIBRATION_FILE + ".", suffix=".tmp", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(table, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise


def _read_table(path: str) -> dict:
    """The file's table {"TASK@BACKEND": {"K[:mismatch]": {"tau": [K], ...}}} ({} without a file); a
    one-line ValueError naming the file when it is anything else (cut short, garbage, another shape)."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path, "rb") as f:
            table = json.loads(f.read().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"calibration file {path} is damaged: not JSON ({err}); remove it and calibrate again") from None
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise ValueError(f"calibration file {path} is damaged: not a table of task@backend entries; "
                         "remove it and calibrate again")
    for key, entries in table.items():
        for entry, value in entries.items():
            if not (re.fullmatch(r"\d+(:\w+)?", entry) and isinstance(value, dict) and isinstance(value.get("tau"), list)
                    and all(isinstance(t, (int, float)) for t in value["tau"])):
                raise ValueError(f"calibration file {path} is damaged: entry {key} {entry} holds no list of "
                                 "thresholds; remove it and calibrate again")
    return table


def calibration_mjx(env, speculator, params, key: jax.Array, episodes: int, on_progress=None):
    """Checks [T, E, K-1] of full-replanning episodes, all at once (`on_progress`: as in
    `acting.rollout`)."""
    from tdmpc2_jax.speculative.rollout import calibration_batch

    run = lambda p, k: calibration_batch(env, speculator, p, k, episodes, env.episode_length, on_progress)
    return xla.jit(run)(params, key)


def calibration_host(env, speculator, params, key: jax.Array, episodes: int, on_episode=None):
    """Checks [steps, K-1] of full-replanning episodes on host MuJoCo, one after another
    (`on_episode`: as in `acting.host_episodes`)."""
    step = xla.jit(speculator.calibration_step)
    policy = lambda state, obs, k, t0: step(params, state, obs, k, t0)
    return acting.host_episodes(env, policy, speculator.init_calibration_state, key, episodes,
                                on_episode=on_episode).info
