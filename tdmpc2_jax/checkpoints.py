"""orbax checkpoints of world-model parameters, with the config they were made for.

A model checkpoint is an orbax `CheckpointManager` directory; each step holds two items:
`state` (a pytree with at least `params` and `target_qs`) and `meta` (JSON: `config`, the
architecture keys of `Config.architecture()`, and free-form provenance).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

from tdmpc2_jax.config import Config


def tree_mismatches(expected: Any, got: Any, path: str = "") -> list[str]:
    """Human-readable differences of structure and leaf shapes between two pytrees of arrays."""
    if isinstance(expected, Mapping) and isinstance(got, Mapping):
        out = []
        for key in sorted(set(expected) | set(got)):
            sub = f"{path}/{key}"
            if key not in got:
                out.append(f"{sub}: missing")
            elif key not in expected:
                out.append(f"{sub}: unexpected")
            else:
                out.extend(tree_mismatches(expected[key], got[key], sub))
        return out
    if isinstance(expected, Mapping) or isinstance(got, Mapping):
        return [f"{path}: expected {'a subtree' if isinstance(expected, Mapping) else 'an array'}"]
    if tuple(np.shape(expected)) != tuple(np.shape(got)):
        return [f"{path}: expected shape {tuple(np.shape(expected))}, got {tuple(np.shape(got))}"]
    return []


def architecture_mismatches(expected: Mapping[str, Any], got: Mapping[str, Any]) -> list[str]:
    """Keys on which two architectures differ (a shape stored as a JSON list equals its tuple)."""
    as_stored = lambda v: list(v) if isinstance(v, tuple) else v
    return [f"{k}: model has {expected[k]!r}, checkpoint has {got.get(k)!r}"
            for k in expected if k in got and as_stored(got[k]) != as_stored(expected[k])]


def config_to_json(cfg: Config) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def config_from_json(values: Mapping[str, Any]) -> Config:
    return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def save(directory: str, step: int, state: Any, cfg: Config, extra_meta: Mapping[str, Any] | None = None,
         max_to_keep: int | None = 3) -> None:
    """Writes `state` and its metadata as checkpoint `step` (atomically: orbax commits by rename)."""
    meta = {"config": config_to_json(cfg), "architecture": cfg.architecture(), **(extra_meta or {})}
    if jax.process_count() > 1:  # orbax writes arrays of the whole mesh together, and this process's own as values
        state = jax.tree.map(lambda x: np.asarray(x) if isinstance(x, jax.Array) and x.is_fully_addressable else x,
                             state)
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    with ocp.CheckpointManager(os.path.abspath(directory), options=options) as manager:
        manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                   meta=ocp.args.JsonSave(meta)), force=True)
        manager.wait_until_finished()


def latest_step(directory: str) -> int | None:
    if not os.path.isdir(directory):
        return None
    with ocp.CheckpointManager(os.path.abspath(directory)) as manager:
        return manager.latest_step()


def read_meta(directory: str, step: int | None = None) -> tuple[int, dict[str, Any]]:
    """(step, metadata) of checkpoint `step` (default: the latest); clear errors when absent."""
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no checkpoint directory at {directory}")
    with ocp.CheckpointManager(directory) as manager:
        step = manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{directory} holds no finished checkpoint")
        try:
            meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        except Exception as err:
            raise ValueError(f"checkpoint {directory} step {step} is unreadable: {err}") from err
    return step, meta


def restore(directory: str, like: Any, step: int | None = None, cfg: Config | None = None) -> tuple[Any, dict]:
    """Restores the `state` item into the structure and shapes of `like`.

    With `cfg`, the checkpoint's architecture must equal cfg's: any difference is an error naming
    the keys that differ. Shape or structure differences are named too.
    """
    step, meta = read_meta(directory, step)
    if cfg is not None:
        diffs = architecture_mismatches(cfg.architecture(), meta.get("architecture", {}))
        if diffs:
            raise ValueError(f"checkpoint {directory} was made for another model: " + "; ".join(diffs))
    handlers = dict(state=ocp.StandardCheckpointHandler(), meta=ocp.JsonCheckpointHandler())
    with ocp.CheckpointManager(os.path.abspath(directory), item_handlers=handlers) as manager:
        try:
            target = _on_this_device(manager.item_metadata(step)["state"])
            raw = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
        except Exception as err:
            raise ValueError(f"checkpoint {directory} step {step} is unreadable: {err}") from err
    raw = _select(like, raw)
    diffs = tree_mismatches(like, raw)
    if diffs:
        raise ValueError(f"checkpoint {directory} does not fit the model: " + "; ".join(diffs[:10]))
    restored = jax.tree.map(lambda ref, x: np.asarray(x, dtype=ref.dtype), like, raw)
    return restored, meta


def restore_exact(directory: str, step: int, like: Any) -> Any:
    """The `state` item restored into exactly the structure, shapes and dtypes of `like`, as numpy arrays.

    Host arrays, so that the caller's `jnp.asarray` gives uncommitted device arrays like a fresh run's:
    orbax's committed arrays would make every jitted program compile once more on resume.
    """
    with ocp.CheckpointManager(os.path.abspath(directory)) as manager:
        try:
            tree = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(_on_this_device(like))))
            tree = tree["state"]
        except Exception as err:
            raise ValueError(f"checkpoint {directory} step {step} does not fit this run: {err}") from err
    return jax.tree.map(np.asarray, tree)


def _on_this_device(tree: Any) -> Any:
    """Abstract arrays with the shapes and dtypes of `tree`'s leaves in this process's host memory
    (its CPU device): whatever devices (or processes) wrote a checkpoint, every process reads it
    back whole, without taking an accelerator's memory for values that become numpy arrays."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.dtype(x.dtype) if hasattr(x, "dtype")
                                                       else np.asarray(x).dtype, sharding=device), tree)


def _select(like: Any, raw: Any) -> Any:
    """The part of raw (nested dicts) that `like` asks for (a checkpoint may hold more items)."""
    if isinstance(like, Mapping) and isinstance(raw, Mapping):
        return {k: _select(like[k], raw[k]) for k in like if k in raw}
    return raw


def load_model(directory: str, cfg: Config | None = None, step: int | None = None) -> tuple[Config, Any, Any]:
    """(config, params, target_qs) of a model checkpoint (converted or trained).

    Without `cfg` the checkpoint's own config is used; with it, the architectures must agree.
    """
    from tdmpc2_jax.world_model import WorldModel

    step, meta = read_meta(directory, step)
    if "config" not in meta:
        raise ValueError(f"checkpoint {directory} has no config in its metadata")
    cfg = cfg or config_from_json(meta["config"])
    params = jax.eval_shape(WorldModel(cfg).init, jax.random.key(0))
    restored, _ = restore(directory, {"params": params, "target_qs": params["qs"]}, step, cfg)
    return cfg, restored["params"], restored["target_qs"]
