"""Corrector training data: speculative rollouts labelled by the teacher (the full planner).

Every reuse step (k = 1..K-1 steps after a plan) of a speculative rollout, on N MJX environments
(`label_rollouts`) or in host episodes one after another (`label_host`), gives one tuple: the
corrector's input history at that step and the teacher's label, the MPPI mean's first action planned
(eval mode) at the visited state. The teacher keeps its own warm start and plans at every step; its
actions are never executed. DAgger: later rounds roll out the corrected controller, so the data
covers the states the corrector itself visits.
"""
from __future__ import annotations

import json
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tdmpc2_jax import acting, xla
from tdmpc2_jax.envs.mjx import MJXEnv
from tdmpc2_jax.planner import init_plan_state, plan, plan_batch
from tdmpc2_jax.speculative.controller import Speculator
from tdmpc2_jax.speculative.correctors import CorrectorInput


class Dataset(NamedTuple):
    inputs: CorrectorInput  # leaves [M, T, ...]
    label: jax.Array  # [M, A] teacher action


def label_rollouts(env: MJXEnv, speculator: Speculator, params, corrector_params, key: jax.Array, num_envs: int,
                   steps: int, on_progress=None) -> Dataset:
    """Tuples from `steps` batched steps of N environments (runs as one scan; filtering on host;
    `on_progress`: as in `acting.rollout`)."""
    model = speculator.model
    cfg = model.cfg
    broadcast = lambda tree: jax.tree.map(lambda x: jnp.broadcast_to(x, (num_envs,) + x.shape), tree)

    def run(key, params, corrector_params):
        def policy(states, obs, keys, t0):
            state, teacher_state = states
            pairs = jax.vmap(jax.random.split)(keys)  # [N, 2]
            k_act, k_teach = pairs[:, 0], pairs[:, 1]
            action, state, info = speculator.step_batch(params, corrector_params, state, obs, k_act, t0)
            label, teacher_state = plan_batch(model, params, obs, teacher_state, k_teach, t0, eval_mode=True)
            return action, (state, teacher_state), (state.history, label.mean[:, 0], ~info.replanned)

        states = (broadcast(speculator.init_state()), broadcast(init_plan_state(cfg.horizon, cfg.action_dim)))
        return acting.rollout(env, policy, states, key, num_envs, steps, on_progress=on_progress).info

    history, label, keep = xla.jit(run)(key, params, corrector_params)
    keep = np.asarray(keep).reshape(-1)
    flat = lambda x: np.asarray(x).reshape((-1,) + x.shape[2:])[keep]
    return Dataset(jax.tree.map(flat, history), flat(label))


def label_host(env, speculator: Speculator, params, corrector_params, key: jax.Array, episodes: int,
               on_episode=None) -> Dataset:
    """Tuples from `episodes` episodes of a host environment (`envs.registry.make_host_env`), one
    jitted call per step that runs the speculative step and the teacher's solve (`on_episode`: as
    in `acting.host_episodes`)."""
    model = speculator.model
    cfg = model.cfg

    def policy(states, obs, key, t0):
        state, teacher_state = states
        k_act, k_teach = jax.random.split(key)
        action, state, info = speculator.step(params, corrector_params, state, obs, k_act, t0)
        label, teacher_state = plan(model, params, obs, teacher_state, k_teach, t0, eval_mode=True)
        return action, (state, teacher_state), (state.history, label.mean[0], ~info.replanned)

    initial = lambda: (speculator.init_state(), init_plan_state(cfg.horizon, cfg.action_dim))
    history, label, keep = acting.host_episodes(env, xla.jit(policy), initial, key, episodes,
                                                on_episode=on_episode).info
    keep = np.asarray(keep)
    return Dataset(jax.tree.map(lambda x: np.asarray(x)[keep], history), np.asarray(label)[keep])


def trim(data: Dataset, history: int) -> Dataset:
    """The same tuples with only the newest `history` steps of input (an MLP corrector reads one)."""
    length = data.inputs.k.shape[1]
    if history > length:
        raise ValueError(f"the data holds {length} steps of history per tuple, fewer than {history}")
    return data._replace(inputs=jax.tree.map(lambda x: x[:, length - history:], data.inputs))


def concatenate(parts: list[Dataset]) -> Dataset:
    return jax.tree.map(lambda *x: np.concatenate(x, axis=0), *parts)


def save(path: str, data: Dataset, meta: dict) -> None:
    """One .npz with the arrays and the metadata (task, K, checkpoint, seed, dims) as JSON."""
    arrays = {f"inputs_{name}": np.asarray(value) for name, value in data.inputs._asdict().items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, label=np.asarray(data.label), meta=json.dumps(meta), **arrays)
    os.replace(tmp, path)


def load(path: str) -> tuple[Dataset, dict]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"no corrector data at {path}")
    try:
        with np.load(path) as f:
            inputs = CorrectorInput(**{name: f[f"inputs_{name}"] for name in CorrectorInput._fields})
            return Dataset(inputs, f["label"]), json.loads(str(f["meta"]))
    except (KeyError, ValueError, OSError) as err:
        raise ValueError(f"{path} is not corrector data of this project: {err}") from err
