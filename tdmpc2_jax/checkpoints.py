"""orbax checkpoints of world-model parameters, with the config they were made for.

A model checkpoint is an orbax `CheckpointManager` directory; each step holds two items:
`state` (a pytree with at least `params` and `target_qs`) and `meta` (JSON: `config`, the
architecture keys of `Config.architecture()`, and free-form provenance).

What one step `DIR/<step>/` holds, as orbax writes it:

    _CHECKPOINT_METADATA        JSON: the items' handlers and the commit time (the commit record)
    commit_success.txt          the commit marker (one per step and one per item; older writers left none)
    meta/metadata               JSON: the `meta` item
    state/_METADATA             JSON: the tree's structure, leaf by leaf
    state/_sharding, state/array_metadatas/process_N   JSON (only for trees of jax.Arrays)
    state/manifest.ocdbt        the OCDBT database of the arrays: its versions and root b-tree node
    state/d/<hash>              b-tree nodes, with small values inline
    state/ocdbt.process_N/      each writing process's own database; after the commit only its data
                                files (d/<hash>, the values too large to inline) are read, through the
                                root b-tree: its manifest and its own b-tree nodes are never read again

A write goes to `DIR/<step>.orbax-checkpoint-tmp` and is renamed to `DIR/<step>` once complete,
so a killed write leaves only that temporary directory, which no listing here counts as a step.

Faults: `verify` reads a step whole and names its first bad file (`DamagedCheckpoint`);
`newest_whole` walks back to the newest step that reads whole, moving damaged ones aside; `save`
turns a failed write (full disk, read-only directory, file size limit) into `CheckpointWriteError`
and leaves the steps already written as they were; `restore_exact` tells a damaged step from one
written by another run ("does not fit this run").
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import gc
import json
import logging
import os
import re
import shutil
import sys
import warnings
from typing import Any, Callable, Iterator, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp
import tensorstore as ts

from tdmpc2_jax.config import Config

UNFINISHED_SUFFIX = ".orbax-checkpoint-tmp"  # orbax's name for a write in progress
DAMAGED_SUFFIX = ".damaged"  # a step moved aside by `newest_whole`: orbax lists only digit names
_COMMIT_MARKER = "commit_success.txt"
_COMMITTED = "Checkpoint commit was successful to "
_ITEMS = ("meta", "state")


class DamagedCheckpoint(ValueError):
    """A checkpoint step that cannot be read whole: one of its files is missing, truncated,
    corrupt or unreadable. `path` is the first bad file (absolute), `file` the same relative to
    the step's directory, `problem` what is wrong with it ("missing", "truncated", ...)."""

    def __init__(self, directory: str, step: int, path: str, problem: str):
        self.directory, self.step, self.path, self.problem = directory, step, path, problem
        self.file = os.path.relpath(path, os.path.join(directory, str(step)))
        super().__init__(f"checkpoint {directory} step {step} is damaged: {self.file} is {problem}")


class NoWholeCheckpoint(ValueError):
    """Every step of a checkpoint directory is damaged (`damaged`: one `DamagedCheckpoint` each,
    newest first); nothing was moved or deleted."""

    def __init__(self, directory: str, damaged: list[DamagedCheckpoint]):
        self.directory, self.damaged = directory, damaged
        steps = sorted(d.step for d in damaged)
        causes = "; ".join(f"{d.step}: {d.file} is {d.problem}" for d in damaged)
        # what was done first: a long list of causes may be cut short where the line is shown
        super().__init__(f"no readable checkpoint in {directory}, nothing was deleted: "
                         f"step{'s' if len(steps) > 1 else ''} {_listing(steps)} "
                         f"{'is' if len(steps) == 1 else 'are'} damaged ({causes})")


class CheckpointWriteError(OSError):
    """A checkpoint write that failed (full disk, read-only directory, file size limit, ...):
    `step` is the step that was not written, `cause` why, `last_step` the newest step already
    in the directory (None if none), which the failed write left as it was."""

    def __init__(self, directory: str, step: int, cause: str, last_step: int | None):
        self.directory, self.step, self.cause, self.last_step = directory, step, cause, last_step
        kept = (f"the last checkpoint, step {last_step}, is kept" if last_step is not None
                else "there is no earlier checkpoint")
        super().__init__(f"cannot write checkpoint step {step} in {directory}: {cause}; {kept}")


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


# ---------------------------------------------------------------------------------------------
# writing


def save(directory: str, step: int, state: Any, cfg: Config, extra_meta: Mapping[str, Any] | None = None,
         max_to_keep: int | None = 3) -> None:
    """Writes `state` and its metadata as checkpoint `step`, atomically: orbax writes
    `<step>.orbax-checkpoint-tmp` and renames it once complete, and only then deletes the steps
    beyond `max_to_keep`, so a failed or killed write never costs an earlier step.

    Raises CheckpointWriteError (one line: the step, the cause, the last step kept) when the
    write fails for want of space, permission or file size; its unfinished directory is removed.
    """
    meta = {"config": config_to_json(cfg), "architecture": cfg.architecture(), **(extra_meta or {})}
    if jax.process_count() > 1:  # orbax writes arrays of the whole mesh together, and this process's own as values
        state = jax.tree.map(lambda x: np.asarray(x) if isinstance(x, jax.Array) and x.is_fully_addressable else x,
                             state)
    directory = os.path.abspath(directory)
    primary = jax.process_index() == 0
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    try:
        if primary:
            remove_unfinished(directory, step)  # an earlier write of this step, killed before its commit
            _check_writable(directory, step)
        with _holding_orbax_logs(), _quiet_async_teardown():
            with ocp.CheckpointManager(directory, options=options) as manager:
                manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                           meta=ocp.args.JsonSave(meta)), force=True)
                manager.wait_until_finished()
    except Exception as err:
        cause = _write_cause(err)
        if cause is None:
            raise
        if primary:
            with contextlib.suppress(OSError):
                remove_unfinished(directory, step)
        last = max((s for s in committed_steps(directory) if s != step), default=None)
        raise CheckpointWriteError(directory, step, cause, last) from err


def _check_writable(directory: str, step: int) -> None:
    """Creates `directory` and an empty directory beside the steps (removed again), raising
    OSError when it cannot: orbax, when it fails to create the directory of a write, raises but
    leaves threads waiting for it that keep the process from ever exiting."""
    os.makedirs(directory, exist_ok=True)
    probe = os.path.join(directory, f"{step}{UNFINISHED_SUFFIX}-probe")
    os.mkdir(probe)
    os.rmdir(probe)


def remove_unfinished(directory: str, step: int | None = None) -> list[str]:
    """Deletes the unfinished writes in `directory` (`<step>.orbax-checkpoint-tmp...`, all of
    them or those of `step`) and returns their paths. Nothing else is touched. Call it where no
    write is under way (on one process of a multi-process run)."""
    if not os.path.isdir(directory):
        return []
    removed = []
    for name in sorted(os.listdir(directory)):
        head, suffix, _ = name.partition(UNFINISHED_SUFFIX)
        if suffix and head.isdigit() and (step is None or int(head) == step):
            path = os.path.join(directory, name)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _write_cause(err: BaseException) -> str | None:
    """Why a write failed, in a few words ("No space left on device (ENOSPC)"), when it failed
    for the file system's reasons; None for any other error (a bug, a bad tree)."""
    chain = _exception_chain(err)
    for e in chain:
        code = e.errno if isinstance(e, OSError) and e.errno else None
        found = re.search(r"os_error_code=\D?(\d+)", str(e))
        code = code or (int(found.group(1)) if found else None)
        if code:
            return f"{os.strerror(code)} ({errno.errorcode.get(code, code)})"
    for e in chain:
        if re.search(r"Error writing|Failed writing", str(e)):
            return error_summary(e)
    return None


def _exception_chain(err: BaseException) -> list[BaseException]:
    chain = []
    while err is not None and err not in chain:
        chain.append(err)
        err = err.__cause__ or err.__context__
    return chain


# ---------------------------------------------------------------------------------------------
# listing and reading


def committed_steps(directory: str) -> list[int]:
    """The steps in `directory`, ascending: its subdirectories named by a number (orbax's own rule).
    Unfinished writes (`<step>.orbax-checkpoint-tmp`) and steps moved aside (`<step>.damaged`) are not
    steps. A listed step may still be damaged: `verify` tells."""
    if not os.path.isdir(directory):
        return []
    return sorted(int(name) for name in os.listdir(directory)
                  if name.isdigit() and os.path.isdir(os.path.join(directory, name)))


def latest_step(directory: str) -> int | None:
    """The newest step in `directory` (None without any); unfinished writes are not steps."""
    return max(committed_steps(directory), default=None)


def resume_hint(directory: str) -> str:
    """Where a stopped multi-process run resumes from, as the end of an error line."""
    step = latest_step(directory)
    where = f"the newest checkpoint is step {step} in {directory}" if step is not None else "no checkpoint was written"
    return f"{where}: start every process again with --config.resume=True"


def read_meta(directory: str, step: int | None = None) -> tuple[int, dict[str, Any]]:
    """(step, metadata) of checkpoint `step` (default: the latest); clear errors when absent.

    Raises FileNotFoundError without the directory or the step, DamagedCheckpoint when the
    metadata file is missing or bad.
    """
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no checkpoint directory at {directory}")
    step = latest_step(directory) if step is None else step
    if step is None:
        raise FileNotFoundError(f"{directory} holds no finished checkpoint")
    if not os.path.isdir(os.path.join(directory, str(step))):
        raise FileNotFoundError(f"checkpoint {directory} has no step {step} "
                                f"(it holds {_listing(committed_steps(directory)) or 'none'})")
    with _naming_damage(directory, step):
        return step, _read_json(os.path.join(directory, str(step), "meta", "metadata"))


def verify(directory: str, step: int) -> dict[str, Any]:
    """Reads checkpoint `step` whole and returns its metadata; raises DamagedCheckpoint naming
    the first bad file (FileNotFoundError when there is no such step).

    Checks, in order: the commit record (_CHECKPOINT_METADATA with its commit time) and the
    commit markers, both items, every JSON file, the arrays' database (its manifest, every b-tree
    node, every data file at its full length), and finally decodes every array. Reads with
    tensorstore directly: no event loop, nothing left running when it raises.
    """
    directory = os.path.abspath(directory)
    step_dir = os.path.join(directory, str(step))
    if not os.path.isdir(step_dir):
        raise FileNotFoundError(f"checkpoint {directory} has no step {step}")
    with _naming_damage(directory, step):
        record = _read_json(os.path.join(step_dir, "_CHECKPOINT_METADATA"))
        if not isinstance(record, dict) or not isinstance(record.get("commit_timestamp_nsecs"), int):
            raise _Damage(os.path.join(step_dir, "_CHECKPOINT_METADATA"), "missing its commit time (never committed)")
        _check_commit_markers(step_dir)
        for item in _ITEMS:
            if not os.path.isdir(os.path.join(step_dir, item)):
                raise _Damage(os.path.join(step_dir, item), "missing")
        meta = _read_json(os.path.join(step_dir, "meta", "metadata"))
        _check_state(os.path.join(step_dir, "state"))
    return meta


def newest_whole(directory: str, on_message: Callable[[str], None] = print, unit: str = "steps"
                 ) -> tuple[int, dict[str, Any]]:
    """(step, metadata) of the newest checkpoint in `directory` that reads whole (`verify`).

    Each newer step that is damaged is moved aside (renamed `<step>.damaged`, which orbax does not
    list; nothing is deleted), the unfinished writes are removed, and `on_message` gets one line
    naming the damage, where the damaged steps went and what is lost, counted in `unit` (the
    caller's word for a step: "agent steps", "updates", ...):

        checkpoint step 251 is damaged (state/d/... is truncated); moved to DIR/251.damaged;
        resuming from step 200: the 51 agent steps after it are lost

    Raises FileNotFoundError when the directory holds no step, NoWholeCheckpoint (one line; nothing
    moved or deleted) when every step is damaged. Call it on one process of a multi-process run.
    """
    directory = os.path.abspath(directory)
    steps = committed_steps(directory)
    if not steps:
        raise FileNotFoundError(f"no checkpoint directory at {directory}" if not os.path.isdir(directory)
                                else f"{directory} holds no finished checkpoint")
    damaged = []
    for step in reversed(steps):
        try:
            meta = verify(directory, step)
            break
        except DamagedCheckpoint as err:
            damaged.append(err)
    else:
        raise NoWholeCheckpoint(directory, damaged)
    remove_unfinished(directory)
    if damaged:
        moved = [move_aside(directory, err.step) for err in damaged]
        on_message(_fallback_line(damaged, moved, step, unit))
    return step, meta


def move_aside(directory: str, step: int) -> str:
    """Renames step `step` to `<step>.damaged` (`.damaged-2`, ... if taken) and returns the new path."""
    source = os.path.join(directory, str(step))
    target, n = source + DAMAGED_SUFFIX, 1
    while os.path.exists(target):
        n += 1
        target = f"{source}{DAMAGED_SUFFIX}-{n}"
    os.rename(source, target)
    return target


def _fallback_line(damaged: list[DamagedCheckpoint], moved: list[str], step: int, unit: str) -> str:
    causes = "; ".join(f"{d.file} is {d.problem}" if len(damaged) == 1 else f"{d.step}: {d.file} is {d.problem}"
                       for d in damaged)
    steps = _listing([d.step for d in damaged])
    lost = damaged[0].step - step
    return (f"checkpoint step{'s' if len(damaged) > 1 else ''} {steps} {'is' if len(damaged) == 1 else 'are'} "
            f"damaged ({causes}); moved to {_listing(moved)}; resuming from step {step}: "
            f"the {lost:,} {unit} after it are lost")


def restore(directory: str, like: Any, step: int | None = None, cfg: Config | None = None) -> tuple[Any, dict]:
    """Restores the `state` item into the structure and shapes of `like`.

    With `cfg`, the checkpoint's architecture must equal cfg's: any difference is an error naming
    the keys that differ. Shape or structure differences are named too. A damaged step raises
    DamagedCheckpoint.
    """
    step, meta = read_meta(directory, step)
    directory = os.path.abspath(directory)
    if cfg is not None:
        diffs = architecture_mismatches(cfg.architecture(), meta.get("architecture", {}))
        if diffs:
            raise ValueError(f"checkpoint {directory} was made for another model: " + "; ".join(diffs))
    with _orbax_read(directory, step) as manager:
        target = _on_this_device(manager.item_metadata(step)["state"])
        raw = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
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

    Raises ValueError "... does not fit this run: ..." naming the leaves whose presence or shape
    differ when another run wrote the step, DamagedCheckpoint when the step is damaged.
    """
    directory = os.path.abspath(directory)
    with _orbax_read(directory, step) as manager:
        diffs = _leaf_mismatches(like, manager.item_metadata(step)["state"].tree)
        if not diffs:
            tree = manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_on_this_device(like))))["state"]
    if diffs:
        more = f" (and {len(diffs) - 10} more)" if len(diffs) > 10 else ""
        raise ValueError(f"checkpoint {directory} step {step} does not fit this run: " + "; ".join(diffs[:10]) + more)
    return jax.tree.map(np.asarray, tree)


def _leaf_mismatches(like: Any, saved: Any) -> list[str]:
    """The leaves (by path) that only one of two trees has, and those whose shapes differ."""
    want, have = _leaf_shapes(like), _leaf_shapes(saved)
    out = []
    for path in sorted(set(want) | set(have)):
        if path not in have:
            out.append(f"{path}: not in the checkpoint")
        elif path not in want:
            out.append(f"{path}: not in this run")
        elif want[path] != have[path]:
            out.append(f"{path}: run has shape {want[path]}, checkpoint has {have[path]}")
    return out


def _leaf_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    def name(key) -> str:
        for attr in ("key", "idx", "name"):
            if hasattr(key, attr):
                return str(getattr(key, attr))
        return str(key)

    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {"/".join(name(k) for k in path): tuple(getattr(leaf, "shape", np.shape(leaf))) for path, leaf in leaves}


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


# ---------------------------------------------------------------------------------------------
# finding damage


class _Damage(Exception):
    """A bad file (`path`) found while checking one step; `_naming_damage` names the step."""

    def __init__(self, path: str, problem: str):
        super().__init__(path, problem)
        self.path, self.problem = path, problem


@contextlib.contextmanager
def _naming_damage(directory: str, step: int) -> Iterator[None]:
    try:
        yield
    except _Damage as err:
        raise DamagedCheckpoint(directory, step, err.path, err.problem) from None


@contextlib.contextmanager
def _orbax_read(directory: str, step: int) -> Iterator[ocp.CheckpointManager]:
    """A CheckpointManager for reading step `step`, closed on every exit. Any failure of the read
    becomes DamagedCheckpoint when `verify` finds a bad file, else a one-line ValueError."""
    handlers = dict(state=ocp.StandardCheckpointHandler(), meta=ocp.JsonCheckpointHandler())
    try:
        with _holding_orbax_logs(), _quiet_async_teardown():
            with ocp.CheckpointManager(directory, item_handlers=handlers) as manager:
                yield manager
    except Exception as err:
        verify(directory, step)  # raises DamagedCheckpoint when the step is damaged
        raise ValueError(f"checkpoint {directory} step {step} is unreadable: {error_summary(err)}") from err


def _read_json(path: str) -> Any:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise _Damage(path, "missing") from None
    except OSError as err:
        raise _Damage(path, f"unreadable ({err.strerror})") from None
    if not data.strip():
        raise _Damage(path, "truncated (empty)")
    try:
        return json.loads(data.decode())
    except UnicodeDecodeError:
        raise _Damage(path, "corrupt (not text)") from None
    except json.JSONDecodeError:  # orbax writes one object: one that never closes was cut short
        cut = data.lstrip()[:1] == b"{" and data.rstrip()[-1:] != b"}"
        raise _Damage(path, "truncated" if cut else "corrupt (not JSON)") from None


def _check_commit_markers(step_dir: str) -> None:
    """Orbax writes commit_success.txt in the step and in each item (older versions wrote none):
    all of them or none must be there, each with the text orbax writes, which ends with the path
    of the directory it commits (`.../<step>`, `.../state`)."""
    markers = {os.path.join(step_dir, *sub, _COMMIT_MARKER): os.path.basename(os.path.join(step_dir, *sub))
               for sub in ((), *((item,) for item in _ITEMS))}
    if not any(os.path.isfile(marker) for marker in markers):
        return
    for marker, committed in markers.items():
        try:
            with open(marker, "rb") as f:
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            raise _Damage(marker, "missing") from None
        except OSError as err:
            raise _Damage(marker, f"unreadable ({err.strerror})") from None
        if not (text.startswith(_COMMITTED) and text.endswith(f"{os.sep}{committed}")):
            cut = _COMMITTED.startswith(text) or text.startswith(_COMMITTED)
            raise _Damage(marker, "truncated" if cut else "corrupt")


def _check_state(state_dir: str) -> None:
    """The `state` item: its JSON files, then its OCDBT database, then every array decoded."""
    _read_json(os.path.join(state_dir, "_METADATA"))
    for name in ("_sharding", *(os.path.join("array_metadatas", f) for f in _listdir(state_dir, "array_metadatas"))):
        if os.path.exists(os.path.join(state_dir, name)):
            _read_json(os.path.join(state_dir, name))
    manifest = os.path.join(state_dir, "manifest.ocdbt")
    if not os.path.isfile(manifest):  # tensorstore would read an absent manifest as an empty database
        raise _Damage(manifest, "missing")
    context = ts.Context({"cache_pool": {"total_bytes_limit": 0}})
    base = ts.KvStore.open(f"file://{state_dir}/", context=context).result()
    try:
        versions = ts.ocdbt.dump(base).result()["versions"]
    except Exception as err:
        raise _Damage(manifest, _problem(err)) from None
    if not versions:
        raise _Damage(manifest, "corrupt (no version)")
    files = _walk_node(base, state_dir, versions[-1]["root"]["location"])
    for array, driver in _arrays(files):
        spec = {"driver": driver, "kvstore": {"driver": "ocdbt", "base": f"file://{state_dir}/", "path": array + "/"},
                "fill_missing_data_reads": False}
        try:
            ts.open(spec, context=context, open=True, read=True).result().read().result()
        except Exception as err:
            key = re.search(r'Error reading "([^"]+)"', str(err))
            path = files.get(key.group(1) if key else "", os.path.join(state_dir, array))
            raise _Damage(path, _problem(err)) from None


def _walk_node(base: ts.KvStore, state_dir: str, location: str) -> dict[str, str]:
    """{key: the file holding its value} under the b-tree node at `location`, every node and data
    file checked to exist at its full length on the way."""
    node_file = _located_file(state_dir, location)
    try:
        node = ts.ocdbt.dump(base, location).result()
    except Exception as err:
        raise _Damage(node_file, _problem(err)) from None
    files = {}
    for entry in node.get("entries", []):
        key = entry.get("key", b"").decode(errors="replace")
        for value in entry.values():
            if isinstance(value, str) and value.startswith("btreenode:"):
                files.update(_walk_node(base, state_dir, value))
            elif isinstance(value, str) and value.startswith("value:"):
                files[key] = _located_file(state_dir, value)
        if "inline_value" in entry:
            files[key] = node_file
    return files


def _located_file(state_dir: str, location: str) -> str:
    """The file of an OCDBT location `kind:prefix:file:offset:length`, checked to exist and to
    hold at least offset + length bytes."""
    head, offset, length = location.rsplit(":", 2)
    _, prefix, name = head.split(":", 2)
    path = os.path.join(state_dir, prefix + name)
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise _Damage(path, "missing") from None
    if size < int(offset) + int(length):
        raise _Damage(path, f"truncated ({size:,} of at least {int(offset) + int(length):,} bytes)")
    return path


def _arrays(files: Mapping[str, str]) -> list[tuple[str, str]]:
    """(name, tensorstore driver) of every array in a database, from its keys."""
    out = []
    for key in sorted(files):
        for marker, driver in (("/.zarray", "zarr"), ("/zarr.json", "zarr3")):
            if key.endswith(marker):
                out.append((key[: -len(marker)], driver))
    return out


def _problem(err: Exception) -> str:
    """What a tensorstore error says is wrong with a file, in a word or two."""
    text = str(err)
    code = re.search(r"os_error_code=\D?(\d+)", text)
    if "does not match actual length" in text or text.startswith("OUT_OF_RANGE"):
        return "truncated"
    if text.startswith("NOT_FOUND"):
        return "missing"
    if text.startswith(("DATA_LOSS", "FAILED_PRECONDITION", "INVALID_ARGUMENT")):
        return "corrupt"
    if code:
        return f"unreadable ({os.strerror(int(code.group(1)))})"
    return f"unreadable ({error_summary(err)})"


def _listdir(directory: str, sub: str) -> list[str]:
    path = os.path.join(directory, sub)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def error_summary(err: BaseException, limit: int = 2000) -> str:
    """The first line of an error's message, without tensorstore's spec and source locations."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    for cut in (" [tensorstore_spec=", " [source locations=", ". See full TensorStore details"):
        text = text.split(cut)[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _listing(items: list) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = [str(i) for i in items]
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# ---------------------------------------------------------------------------------------------
# orbax's background noise


def is_async_teardown_noise(unraisable: Any) -> bool:
    """Whether an unraisable exception (`sys.unraisablehook`'s argument) is what orbax's asyncio
    reads and writes leave behind when one of them fails: tensorstore completing a future on an
    event loop that orbax already closed ("Event loop is closed"), or one of orbax's coroutines,
    abandoned when its siblings failed, reporting the same failure when it is collected."""
    exc, obj = unraisable.exc_value, unraisable.object
    if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
        return True
    code = getattr(obj, "cr_code", None)
    return code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename


def _ignore_abandoned_orbax_work() -> None:
    """For the rest of the process: no report of the work of orbax's serialization that a failed
    write abandoned, which Python and asyncio make when it is collected (at the latest at
    interpreter shutdown): "coroutine ... was never awaited" warnings and "Task exception was never
    retrieved" errors of orbax's tasks. The failure itself is what the write raises."""
    warnings.filterwarnings("ignore", message=r"coroutine 'async_serialize\S*' was never awaited",
                            category=RuntimeWarning)
    logger = logging.getLogger("asyncio")
    if _not_an_abandoned_orbax_task not in logger.filters:
        logger.addFilter(_not_an_abandoned_orbax_task)


def _not_an_abandoned_orbax_task(record: logging.LogRecord) -> bool:
    text = record.getMessage()
    return not (text.startswith("Task exception was never retrieved") and f"{os.sep}orbax{os.sep}" in text)


@contextlib.contextmanager
def _quiet_async_teardown() -> Iterator[None]:
    """Drops `is_async_teardown_noise` (and nothing else) while an orbax read or write runs; on a
    failure, collects the abandoned coroutines before the hook goes back. The reports of abandoned
    work that come later are dropped from the first read or write on (`_ignore_abandoned_orbax_work`)."""
    _ignore_abandoned_orbax_work()
    previous = sys.unraisablehook

    def hook(unraisable):
        if not is_async_teardown_noise(unraisable):
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    except BaseException:
        gc.collect()
        raise
    finally:
        sys.unraisablehook = previous


@contextlib.contextmanager
def _holding_orbax_logs() -> Iterator[None]:
    """Holds back orbax's warnings and errors while an orbax read or write runs. Its background
    threads log the traceback of a failure before (or after) the caller sees it raised; that
    failure is reported once, by what is raised, and orbax's records are dropped from then on.
    Without a failure, the held records are logged as usual."""
    logger, held = logging.getLogger("absl"), []

    def hold(record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING and f"{os.sep}orbax{os.sep}" in record.pathname:
            held.append(record)
            return False
        return True

    logger.addFilter(hold)
    try:
        yield
    except BaseException:
        # its background threads may go on reporting the failure after it is raised: the filter
        # stays, and orbax's later warnings and errors are dropped with these
        raise
    else:
        logger.removeFilter(hold)
    for record in held:
        logger.handle(record)
