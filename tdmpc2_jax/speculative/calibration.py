"""Thresholds tau_k for the fallback: full-replanning runs that record e_k, and their file.

e_k compares each observation with the latent that the plan made k steps earlier predicted for it;
tau_k is a quantile of e_k per k (`controller.calibrate_tau`). The thresholds are saved per task
and K in `speculative_calibration.json` beside the agent's checkpoint.
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from tdmpc2_jax import xla

CALIBRATION_FILE = "speculative_calibration.json"


def calibration_path(checkpoint: str) -> str:
    directory = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(os.path.abspath(checkpoint))
    return os.path.join(directory, CALIBRATION_FILE)


def read_calibration(checkpoint: str, task: str) -> dict[int, list[float]]:
    path = calibration_path(checkpoint)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {int(k): v["tau"] for k, v in json.load(f).get(task, {}).items()}


def write_calibration(checkpoint: str, task: str, k: int, tau: np.ndarray, quantile: float, episodes: int) -> None:
    path = calibration_path(checkpoint)
    table = json.load(open(path)) if os.path.exists(path) else {}
    table.setdefault(task, {})[str(k)] = dict(tau=[float(t) for t in tau], quantile=quantile, episodes=episodes)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(table, f, indent=1)
    os.replace(tmp, path)


def watch_mjx(env, speculator, params, key: jax.Array, episodes: int):
    """Checks [T, E, K-1] of full-replanning episodes, all at once."""
    from tdmpc2_jax.speculative.rollout import watch_batch

    return xla.jit(lambda p, k: watch_batch(env, speculator, p, k, episodes, env.episode_length))(params, key)


def watch_host(env, speculator, params, key: jax.Array, episodes: int):
    """Checks [steps, K-1] of full-replanning episodes on host MuJoCo, one after another."""
    step, checks = xla.jit(speculator.watch_step), []
    for _ in range(episodes):
        obs, state, t, done = env.reset(), speculator.init_watch_state(), 0, False
        while not done:
            key, k = jax.random.split(key)
            action, state, check = step(params, state, jnp.asarray(obs), k, jnp.asarray(t == 0))
            result = env.step(np.asarray(action))
            obs, t, done = result.obs, t + 1, result.done
            checks.append(check)
    return jax.tree.map(lambda *x: np.stack(x), *checks)
