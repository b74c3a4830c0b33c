"""The official TD-MPC2 multitask datasets (mt30, mt80), read without torch and sampled in windows.

A dataset is a directory of `*.pt` chunks. Each chunk is a `torch.save` zip archive of one tensordict
`TensorDict` of batch shape [episodes, rows] with keys `obs` [N, L, obs_dim] (zero-padded to the set's
largest observation), `action` [N, L, A] (padded to the largest action), `reward` [N, L], `task` [N, L]
and maybe `terminated` [N, L]. Row 0 of an episode holds the first observation (action and reward
NaN); row t the observation after step t with the action and reward that led to it.

Chunks are memory-mapped (`torch_archive.read_chunk`). `OfflineDataset` checks a directory of chunks
against its set and draws windows of H+1 consecutive rows inside one episode, uniformly over every
valid start.
"""
from __future__ import annotations

import glob
import os
from typing import NamedTuple

import numpy as np

from tdmpc2_jax.torch_archive import read_chunk
from tdmpc2_jax.types import Batch

class DatasetSpec(NamedTuple):
    """What the chunks of a task set hold."""

    name: str
    num_tasks: int
    episode_length: int  # rows per episode: agent steps + the first observation (0: the first chunk's)
    obs_dim: int  # the set's largest observation (smaller ones are zero-padded)
    action_dim: int  # the set's largest action
    num_files: int = 0  # chunks of the published set (0: no published set to compare with)
    buffer_size: int = 0  # transitions of the published set (0: likewise)


DATASET_SPECS = {
    "mt30": DatasetSpec("mt30", 30, 501, 24, 6, 4, 345_690_000),
    "mt80": DatasetSpec("mt80", 80, 101, 39, 6, 20, 550_450_000),
}
REQUIRED_KEYS = ("obs", "action", "reward", "task")


class _Chunk(NamedTuple):
    path: str
    arrays: dict[str, np.ndarray]  # memmaps [N, L, ...]
    num_episodes: int  # episodes used (the first ones, under a cap)


class OfflineDataset:
    """The chunks of one task set in a directory (every `*.pt`, sorted), memory-mapped.

    `spec` names an official set ("mt30", "mt80") or is a DatasetSpec. `max_episodes` keeps only the
    first episodes, in chunk order. `warnings` lists what differs from the published set.
    """

    def __init__(self, directory: str | os.PathLike, spec: str | DatasetSpec = "mt30",
                 max_episodes: int | None = None):
        if isinstance(spec, str):
            if spec not in DATASET_SPECS:
                raise ValueError(f"unknown dataset {spec!r}: expected one of {', '.join(DATASET_SPECS)}")
            spec = DATASET_SPECS[spec]
        self.spec = spec
        self.directory = os.fspath(directory)
        pattern = os.path.join(self.directory, "*.pt")
        if not os.path.isdir(self.directory):
            raise ValueError(f"dataset directory {self.directory} does not exist")
        paths = sorted(glob.glob(pattern))
        if not paths:
            raise ValueError(f"no dataset chunks match {pattern}")
        if max_episodes is not None and max_episodes < 1:
            raise ValueError(f"max_episodes must be positive, got {max_episodes}")
        self.warnings: list[str] = []
        if len(paths) < spec.num_files:
            self.warnings.append(f"expected {spec.num_files} files for the {spec.name} task set, "
                                 f"found {len(paths)} in {self.directory}")
        if not spec.episode_length:
            spec = self.spec = spec._replace(episode_length=int(read_chunk(paths[0])["reward"].shape[-1]))
        self.chunks: list[_Chunk] = []
        tasks = []
        total = 0
        for path in paths:
            if max_episodes is not None and total >= max_episodes:
                break
            arrays = self._check(path, read_chunk(path))
            used = len(arrays["reward"]) if max_episodes is None else min(len(arrays["reward"]), max_episodes - total)
            task = np.asarray(arrays["task"][:used, 0])
            bad = (task < 0) | (task >= spec.num_tasks)
            if bad.any():
                raise ValueError(f"{path}: task id {int(task[bad][0])} is outside [0, {spec.num_tasks}) "
                                 f"of the {spec.name} task set ({spec.num_tasks} tasks)")
            self.chunks.append(_Chunk(path, arrays, used))
            tasks.append(task.astype(np.int32))
            total += used
        self.episode_task = np.concatenate(tasks)  # [episodes] task of each episode's first row
        self._first_episode = np.cumsum([0] + [c.num_episodes for c in self.chunks])  # [chunks + 1]
        expected = spec.buffer_size // spec.episode_length
        if spec.buffer_size and self.num_episodes != expected:
            self.warnings.append(f"dataset has {self.num_episodes} episodes, expected {expected} episodes "
                                 f"for the {spec.name} task set")

    def _check(self, path: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        spec = self.spec
        missing = [k for k in REQUIRED_KEYS if k not in arrays]
        if missing:
            raise ValueError(f"{path}: missing key(s) {', '.join(missing)} (has {', '.join(sorted(arrays))})")
        reward = arrays["reward"]
        if reward.ndim != 2:
            raise ValueError(f"{path}: reward has shape {reward.shape}; expected [episodes, rows]")
        if reward.shape[1] != spec.episode_length:
            raise ValueError(f"{path}: episodes of {reward.shape[1]} rows, expected {spec.episode_length} for "
                             f"{spec.name} (mt30 uses 501, mt80 101)")
        rows = reward.shape
        shapes = {"obs": rows + (spec.obs_dim,), "action": rows + (spec.action_dim,), "task": rows}
        if "terminated" in arrays:
            shapes["terminated"] = rows
        for key, shape in shapes.items():
            if arrays[key].shape != shape:
                raise ValueError(f"{path}: {key} has shape {arrays[key].shape}, expected {shape} "
                                 f"(the {spec.name} set has obs dim {spec.obs_dim}, action dim {spec.action_dim})")
        if not np.issubdtype(arrays["task"].dtype, np.integer):
            raise ValueError(f"{path}: task has dtype {arrays['task'].dtype}, expected an integer type")
        return arrays

    @property
    def num_episodes(self) -> int:
        return int(self._first_episode[-1])

    @property
    def num_transitions(self) -> int:
        """Rows of all episodes (the official buffer's count: agent steps + 1 per episode)."""
        return self.num_episodes * self.spec.episode_length

    @property
    def bytes_per_transition(self) -> int:
        """Bytes one row takes in the chunks' dtypes (obs, action, reward, task, terminated)."""
        arrays = self.chunks[0].arrays
        keys = [k for k in (*REQUIRED_KEYS, "terminated") if k in arrays]
        return sum(arrays[k].dtype.itemsize * int(np.prod(arrays[k].shape[2:], dtype=np.int64)) for k in keys)

    def memory_bytes(self, num_transitions: int | None = None) -> int:
        """Memory that `num_transitions` rows (default: all of them) take loaded whole."""
        return self.bytes_per_transition * (self.num_transitions if num_transitions is None else num_transitions)

    def sample(self, rng: np.random.Generator, batch_size: int, horizon: int) -> Batch:
        """Windows of horizon+1 rows inside one episode, uniform over every valid start of every episode.

        obs [H+1, B, obs_dim] float32, action [H, B, A] and reward [H, B] of rows 1..H of the window,
        terminated [H, B] (zeros unless the chunks hold it), task [B] int32 of the episode (its first row's).
        """
        length = self.spec.episode_length
        if not 1 <= horizon < length:
            raise ValueError(f"horizon {horizon} does not fit episodes of {length} rows")
        starts_per_episode = length - horizon
        draw = rng.integers(0, self.num_episodes * starts_per_episode, size=batch_size)
        episode, start = np.divmod(draw, starts_per_episode)
        rows = np.arange(horizon + 1)[:, None] + start  # [H+1, B]
        chunk_of = np.searchsorted(self._first_episode, episode, side="right") - 1
        obs = np.empty((horizon + 1, batch_size, self.spec.obs_dim), np.float32)
        action = np.empty((horizon, batch_size, self.spec.action_dim), np.float32)
        reward = np.empty((horizon, batch_size), np.float32)
        terminated = np.zeros((horizon, batch_size), np.float32)
        for c in np.unique(chunk_of):
            pick = np.flatnonzero(chunk_of == c)
            arrays = self.chunks[c].arrays
            local = (episode[pick] - self._first_episode[c])[None, :]  # [1, b]
            window = rows[:, pick]  # [H+1, b]
            obs[:, pick] = arrays["obs"][local, window]
            action[:, pick] = arrays["action"][local, window[1:]]
            reward[:, pick] = arrays["reward"][local, window[1:]]
            if "terminated" in arrays:
                terminated[:, pick] = arrays["terminated"][local, window[1:]]
        return Batch(obs=obs, action=action, reward=reward, terminated=terminated, task=self.episode_task[episode])
