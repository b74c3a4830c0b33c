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


def read_calibration(checkpoint: str, task: str, backend: str) -> dict[tuple[int, str], list[float]]:
    """{(K, mismatch): tau [K]} of one task on one backend."""
    key, path = table_key(task, backend), calibration_path(checkpoint)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        entries = json.load(f).get(key, {})
    taus = {}
    for key, value in entries.items():
        k, _, mismatch = key.partition(":")
        taus[int(k), mismatch or "latent"] = value["tau"]
    return taus


def write_calibration(checkpoint: str, task: str, backend: str, k: int, mismatch: str, tau: np.ndarray,
                      quantile: float, episodes: int) -> None:
    path = calibration_path(checkpoint)
    table = json.load(open(path)) if os.path.exists(path) else {}
    table.setdefault(table_key(task, backend), {})[entry_key(k, mismatch)] = dict(tau=[float(t) for t in tau], quantile=quantile,
                                                             episodes=episodes)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(table, f, indent=1)
    os.replace(tmp, path)


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
