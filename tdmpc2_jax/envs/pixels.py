"""Pixel observations (`obs=rgb`) of a host task, as the official code makes them: after every
reset and agent step the task's camera renders a 64x64 RGB frame, and the observation is the last
3 frames stacked on the channel axis, uint8 [9, 64, 64] (a reset fills the stack with its frame).

Rendering is headless, with the MUJOCO_GL backend chosen before MuJoCo's renderer loads:
`select_renderer` keeps a backend set in the environment, else takes the first of egl and osmesa
that renders a frame in a child process.
"""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections import deque

import numpy as np

FRAMES = 3  # stacked frames
SIZE = 64  # pixels per side
BACKENDS = ("egl", "osmesa")
# set (to "1") by a command line that put MUJOCO_GL=egl in the environment itself: the backend is
# then its default, not the user's choice, and select_renderer may pick another
DEFAULTED = "TDMPC2_JAX_MUJOCO_GL_DEFAULTED"
_probed: set[str] = set()  # backends that rendered a frame in this process's probes
_PROBE = ("from dm_control import suite; env = suite.load('cartpole', 'balance'); env.reset(); "
          "assert env.physics.render(8, 8, camera_id=0).shape == (8, 8, 3)")


class RendererUnavailable(RuntimeError):
    """No headless MuJoCo renderer works in this process."""


def _renders(backend: str) -> str | None:
    """None if a child process renders a frame with MUJOCO_GL=backend, else its last error line."""
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    try:
        with warnings.catch_warnings():  # the child execs at once, so JAX's threads do not matter to it
            warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
            out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "timed out"
    if out.returncode == 0:
        return None
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {out.returncode}"


def select_renderer() -> str:
    """The MUJOCO_GL backend for pixel observations, set in os.environ; a clear error if none works.

    A backend the user set (MUJOCO_GL in the environment) is the only one tried.
    """
    chosen = None if os.environ.get(DEFAULTED) == "1" else os.environ.get("MUJOCO_GL")
    if chosen in _probed:
        return chosen
    failures = {}
    for backend in (chosen,) if chosen else BACKENDS:
        error = _renders(backend)
        if error is None:
            if "dm_control._render" in sys.modules and os.environ.get("MUJOCO_GL") != backend:
                raise RendererUnavailable(f"obs=rgb renders with MUJOCO_GL={backend}, but MuJoCo's renderer already "
                                   f"loaded {os.environ.get('MUJOCO_GL')}: set MUJOCO_GL={backend} and start again")
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            os.environ.pop(DEFAULTED, None)  # settled: later calls keep it
            _probed.add(backend)
            return backend
        failures[backend] = error
    tried = "; ".join(f"MUJOCO_GL={b}: {e}" for b, e in failures.items())
    raise RendererUnavailable(f"obs=rgb needs headless rendering and none works here ({tried}); install EGL "
                       "(libegl1 with an NVIDIA driver or Mesa) or OSMesa (libosmesa6), or set MUJOCO_GL")


class PixelEnv:
    """A host environment observed through its camera: observations uint8 [3 * FRAMES, SIZE, SIZE].

    Everything else (action_dim, episode_length, action_repeat, random_action, render, the random
    state of checkpoints, ...) is the wrapped environment's.
    """

    def __init__(self, env, frames: int = FRAMES, size: int = SIZE):
        if not hasattr(env, "render"):
            raise ValueError(f"obs=rgb: task {getattr(env, 'task', env)!r} cannot render frames")
        self.env = env
        self.frames, self.size = frames, size
        self.obs_shape = (3 * frames, size, size)
        self.obs_dim = 0
        self._stack: deque[np.ndarray] = deque(maxlen=frames)

    def __getattr__(self, name):
        return getattr(self.env, name)

    def _frame(self) -> np.ndarray:
        """The camera's current view, [3, SIZE, SIZE] uint8."""
        frame = np.asarray(self.env.render(width=self.size, height=self.size), np.uint8)
        return np.ascontiguousarray(frame.transpose(2, 0, 1))

    def _observation(self) -> np.ndarray:
        return np.concatenate(self._stack, axis=0)

    def reset(self, *args) -> np.ndarray:
        self.env.reset(*args)
        frame = self._frame()
        self._stack.extend([frame] * self.frames)
        return self._observation()

    def step(self, action: np.ndarray):
        result = self.env.step(action)
        if result.physics_error:  # nothing to render: the loop drops this step
            return result._replace(obs=np.zeros(self.obs_shape, np.uint8))
        self._stack.append(self._frame())
        return result._replace(obs=self._observation())
