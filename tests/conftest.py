"""Shared fixtures: tiny configs so the whole suite runs in minutes on a 2-core CPU."""
from __future__ import annotations

import collections
import os
import pathlib

import jax
import pytest

import tiny
from tdmpc2_jax.config import Config

# the official single-task fixture, made by the official PyTorch code (its README.json says how)
PARITY_DIR = pathlib.Path(__file__).resolve().parent / "fixtures" / "parity_official"
# the model tests' agent: two actions, three Q heads and dropout, so that every path of the update runs
MODEL = dict(action_dim=2, num_q=3, dropout=0.01)


@pytest.fixture
def tiny_cfg() -> Config:
    return tiny.agent_config(**MODEL)


@pytest.fixture
def tiny_multitask_cfg() -> Config:
    return tiny.agent_config(**dict(MODEL, obs_dim=6, action_dim=3, multitask=True, tasks=["a", "b"],
                                    action_dims=[3, 1], episode_lengths=[500, 100], task_dim=4))


@pytest.fixture(scope="session")
def parity_dir() -> pathlib.Path:
    return PARITY_DIR


@pytest.fixture
def key() -> jax.Array:
    return jax.random.key(0)


os.environ.setdefault("MUJOCO_GL", "egl")
# One persistent compilation cache for the session and the CLI subprocesses it starts.
_CACHE = pathlib.Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with the most `slow` tests first, each file's tests in their order: xdist deals whole
    files out in collection order (see setup.cfg), so the two CI workers do not end on one long file
    while the other idles."""
    slow = collections.Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])
