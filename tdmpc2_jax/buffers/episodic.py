"""Host replay buffer of whole episodes (NumPy), sampling H+1-step windows inside one episode.

Storage is a ring of rows. An episode of T agent steps fills T+1 rows: row 0 holds the first
observation (action and reward NaN), row t the observation after step t with the action and
reward that led to it, as in the official buffer. A window of H+1 rows starting at row i gives
obs [H+1], action [H] = actions of rows i+1..i+H, reward [H] likewise. Windows start uniformly over
every row whose next H rows belong to the same episode; an episode that is partly overwritten
stops offering windows at once.

Pixel observations (stacks of `stacked_frames` frames on the channel axis, uint8) are stored once
per row as their newest frame, with the row's position in its episode; a sampled observation is
rebuilt from the frames of its row and the rows before it, the first frame repeated at the start
of an episode as the environment does.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tdmpc2_jax.types import Batch


class EpisodeBuffer:
    """Episodes of (obs, action, reward, terminated) rows; capacity in rows (agent steps + 1 per episode).

    A multitask buffer also keeps each episode's task index and gives it with every window.
    obs_shape is an int (state vectors) or a shape; stacked_frames > 0 stores pixel stacks once.
    """

    @staticmethod
    def rows_for(transitions: int, shortest_episode: int) -> int:
        """Rows that hold `transitions` transitions of episodes at least `shortest_episode` long
        (each episode also stores its final observation)."""
        return transitions + transitions // shortest_episode + 1

    def __init__(self, capacity: int, obs_shape: int | tuple[int, ...], action_dim: int, horizon: int,
                 multitask: bool = False, stacked_frames: int = 0):
        if capacity < horizon + 1:
            raise ValueError(f"buffer capacity {capacity} cannot hold one window of {horizon + 1} steps")
        self.capacity, self.horizon = capacity, horizon
        self.obs_shape = (obs_shape,) if isinstance(obs_shape, int) else tuple(obs_shape)
        self.stacked_frames = stacked_frames
        if stacked_frames:
            if len(self.obs_shape) != 3 or self.obs_shape[0] % stacked_frames:
                raise ValueError(f"stacked frames need observations [C, H, W] with C a multiple of {stacked_frames}, "
                                 f"got {self.obs_shape}")
            frame_shape = (self.obs_shape[0] // stacked_frames, *self.obs_shape[1:])
            self.obs = np.zeros((capacity, *frame_shape), np.uint8)  # the newest frame of each row's stack
            self.position = np.zeros((capacity,), np.int32)  # the row's step within its episode
        else:
            self.obs = np.zeros((capacity, *self.obs_shape), np.float32)
            self.position = None
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
        arrays = (self.obs, self.action, self.reward, self.terminated, self.episode, self.valid_start, self.task,
                  self.position)
        return sum(a.nbytes for a in arrays if a is not None)

    @property
    def num_windows(self) -> int:
        return len(self._starts)

    def add_episode(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray,
                    terminated: np.ndarray | None = None, task: int | None = None) -> int:
        """Stores one episode: obs [T+1, *obs_shape], action [T, A], reward [T], terminated [T], and
        the task index of a multitask buffer."""
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
        if self.stacked_frames:
            frames = self._frames_of(obs)
            self.obs[rows], self.position[rows] = frames, np.arange(steps + 1)
        else:
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
        """Windows drawn uniformly over valid starts: obs [H+1, B, *obs_shape], action [H, B, A], reward [H, B]
        (and task [B] of a multitask buffer)."""
        if not self.num_windows:
            raise ValueError("the buffer holds no complete window yet")
        starts = self._starts[rng.integers(0, self.num_windows, size=batch_size)]
        rows = (starts[None, :] + np.arange(self.horizon + 1)[:, None]) % self.capacity  # [H+1, B]
        following = rows[1:]
        return Batch(obs=self.observations(rows), action=self.action[following], reward=self.reward[following],
                     terminated=self.terminated[following], task=None if self.task is None else self.task[starts])

    def observations(self, rows: np.ndarray) -> np.ndarray:
        """The observations of `rows` [...]: [..., *obs_shape] (pixel stacks rebuilt from their frames)."""
        if not self.stacked_frames:
            return self.obs[rows]
        back = np.arange(self.stacked_frames - 1, -1, -1)  # frames before the newest, oldest first
        source = (rows[..., None] - np.minimum(self.position[rows][..., None], back)) % self.capacity
        frames = self.obs[source]  # [..., stacked_frames, c, H, W]
        return frames.reshape(*rows.shape, *self.obs_shape)

    def _frames_of(self, obs: np.ndarray) -> np.ndarray:
        """The newest frame of each stacked observation [T+1, C, H, W] -> [T+1, C / frames, H, W],
        after checking that the stacks are those of one episode (first frame repeated at reset)."""
        if obs.shape[1:] != self.obs_shape or obs.dtype != np.uint8:
            raise ValueError(f"pixel observations must be uint8 {self.obs_shape}, got {obs.dtype} {obs.shape[1:]}")
        channels = self.obs_shape[0] // self.stacked_frames
        frames = obs[:, -channels:]
        positions = np.arange(len(obs))
        back = np.arange(self.stacked_frames - 1, -1, -1)
        rebuilt = frames[positions[:, None] - np.minimum(positions[:, None], back)].reshape(obs.shape)
        if not np.array_equal(rebuilt, obs):
            raise ValueError("pixel observations are not the frame stacks of one episode (each stack: the "
                             f"last {self.stacked_frames} frames, the first repeated at reset)")
        return frames

    def _arrays(self) -> tuple[str, ...]:
        names = ("obs", "action", "reward", "terminated", "episode", "valid_start")
        names += ("task",) if self.task is not None else ()
        return names + ("position",) if self.position is not None else names

    def state_dict(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in self._arrays()},
                "counters": np.array([self.cursor, self.num_episodes, self.num_rows], np.int64)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a saved buffer: one of this capacity exactly, or a smaller one (a run resumed with a
        larger budget), whose rows move here oldest first if it had wrapped around."""
        stored = len(state["episode"])
        if stored > self.capacity:
            raise ValueError(f"the checkpoint's buffer holds {stored:,} rows, more than the {self.capacity:,} "
                             "of this run: resume with at least the budget it was made with")
        cursor, num_episodes, num_rows = (int(x) for x in np.asarray(state["counters"]))
        wrapped = num_rows == stored and stored < self.capacity
        order = (cursor + np.arange(stored)) % stored if wrapped else np.arange(stored)
        for name in self._arrays():
            value, mine = np.asarray(state[name]), getattr(self, name)
            if value.shape[1:] != mine.shape[1:]:
                raise ValueError(f"buffer {name} has rows of shape {value.shape[1:]} in the checkpoint, "
                                 f"{mine.shape[1:]} here")
            mine[:stored] = value[order]
        self.cursor = stored % self.capacity if wrapped else cursor
        self.num_episodes, self.num_rows = num_episodes, num_rows
        self._starts = np.flatnonzero(self.valid_start)
