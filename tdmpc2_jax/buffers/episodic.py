"""Host replay buffer of whole episodes (NumPy), sampling H+1-step windows inside one episode.

Storage is a ring of rows. An episode of T agent steps fills T+1 rows: row 0 holds the first
observation (action and reward NaN), row t the observation after step t with the action and
reward that led to it, as in the official buffer. A window of H+1 rows starting at row i gives
obs [H+1], action [H] = actions of rows i+1..i+H, reward [H] likewise. Windows start uniformly over
every row whose next H rows belong to the same episode; an episode that is partly overwritten
stops offering windows at once.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tdmpc2_jax.types import Batch


class EpisodeBuffer:
    """Episodes of (obs, action, reward, terminated) rows; capacity in rows (agent steps + 1 per episode).

    A multitask buffer also keeps each episode's task index and gives it with every window.
    """

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, horizon: int, multitask: bool = False):
        if capacity < horizon + 1:
            raise ValueError(f"buffer capacity {capacity} cannot hold one window of {horizon + 1} steps")
        self.capacity, self.horizon = capacity, horizon
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.full((capacity, action_dim), np.nan, np.float32)
        self.reward = np.full((capacity,), np.nan, np.float32)
        self.terminated = np.zeros((capacity,), np.float32)
        self.episode = np.full((capacity,), -1, np.int64)  # episode index of each row, -1 when empty
        self.task = np.zeros((capacity,), np.int32) if multitask else None  # task index of each row
        self.valid_start = np.zeros((capacity,), bool)
        self.cursor = 0  # next row to write
        self.num_episodes = 0
        self.num_rows = 0
        self._starts = np.zeros((0,), np.int64)

    @property
    def nbytes(self) -> int:
        arrays = (self.obs, self.action, self.reward, self.terminated, self.episode, self.valid_start, self.task)
        return sum(a.nbytes for a in arrays if a is not None)

    @property
    def num_windows(self) -> int:
        return len(self._starts)

    def add_episode(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray,
                    terminated: np.ndarray | None = None, task: int | None = None) -> int:
        """Stores one episode: obs [T+1, obs_dim], action [T, A], reward [T], terminated [T], and the
        task index of a multitask buffer."""
        if (task is None) != (self.task is None):
            raise ValueError("a multitask buffer needs each episode's task index, a single-task one none")
        steps = len(action)
        if obs.shape[0] != steps + 1 or reward.shape[0] != steps:
            raise ValueError(f"an episode needs obs [T+1], action [T], reward [T]; got {obs.shape[0]}, "
                             f"{steps}, {reward.shape[0]}")
        if steps + 1 > self.capacity:
            raise ValueError(f"an episode of {steps} steps does not fit a buffer of {self.capacity} rows")
        rows = (self.cursor + np.arange(steps + 1)) % self.capacity
        overwritten = np.unique(self.episode[rows])
        overwritten = overwritten[overwritten >= 0]
        if overwritten.size:  # an episode losing any row loses all its windows
            self.valid_start[np.isin(self.episode, overwritten)] = False
        self.obs[rows] = obs
        self.action[rows[0]], self.reward[rows[0]], self.terminated[rows[0]] = np.nan, np.nan, 0.0
        self.action[rows[1:]] = action
        self.reward[rows[1:]] = reward
        self.terminated[rows[1:]] = 0.0 if terminated is None else terminated
        self.episode[rows] = self.num_episodes
        if task is not None:
            self.task[rows] = task
        self.valid_start[rows] = np.arange(steps + 1) + self.horizon <= steps
        self.cursor = int((self.cursor + steps + 1) % self.capacity)
        self.num_episodes += 1
        self.num_rows = min(self.num_rows + steps + 1, self.capacity)
        self._starts = np.flatnonzero(self.valid_start)
        return self.num_episodes

    def sample(self, rng: np.random.Generator, batch_size: int) -> Batch:
        """Windows drawn uniformly over valid starts: obs [H+1, B, obs], action [H, B, A], reward [H, B]
        (and task [B] of a multitask buffer)."""
        if not self.num_windows:
            raise ValueError("the buffer holds no complete window yet")
        starts = self._starts[rng.integers(0, self.num_windows, size=batch_size)]
        rows = (starts[None, :] + np.arange(self.horizon + 1)[:, None]) % self.capacity  # [H+1, B]
        following = rows[1:]
        return Batch(obs=self.obs[rows], action=self.action[following], reward=self.reward[following],
                     terminated=self.terminated[following], task=None if self.task is None else self.task[starts])

    def _arrays(self) -> tuple[str, ...]:
        names = ("obs", "action", "reward", "terminated", "episode", "valid_start")
        return names + ("task",) if self.task is not None else names

    def state_dict(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in self._arrays()},
                "counters": np.array([self.cursor, self.num_episodes, self.num_rows], np.int64)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self._arrays():
            value = np.asarray(state[name])
            if value.shape != getattr(self, name).shape:
                raise ValueError(f"buffer {name} has shape {value.shape} in the checkpoint, "
                                 f"{getattr(self, name).shape} here")
            setattr(self, name, value.astype(getattr(self, name).dtype))
        self.cursor, self.num_episodes, self.num_rows = (int(x) for x in np.asarray(state["counters"]))
        self._starts = np.flatnonzero(self.valid_start)
