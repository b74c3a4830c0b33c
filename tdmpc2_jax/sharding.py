"""Placing a population of on-device runs on several devices (jax.sharding).

A population carry has a leading member axis [M] (seeds x hyperparameter values). On a mesh of D
devices with one axis "data" it is split one of two ways:

- "members": every leaf is split along the member axis (M divisible by D): independent runs, no
  communication at all.
- "envs": the environment axis of the env states, plan states, observations and buffer rows is
  split (N divisible by D); the agent's state is replicated and every update is data parallel
  (the batch axis is split inside `DeviceLoop.updates`, XLA all-reduces the gradients).

`jax.jit` follows the shardings of its inputs, so placing the carry once is enough
(`loops.device.carry_shardings` gives them).
"""
from __future__ import annotations

import os
import re
import sys

import jax
import numpy as np
from jax.sharding import Mesh


def make_mesh(num_devices: int | None = None) -> Mesh | None:
    """A 1-D mesh ("data") over the first `num_devices` devices (default all); None for one device."""
    devices = jax.devices()
    count = num_devices or len(devices)
    if count > len(devices):
        raise ValueError(f"num_devices={count} but JAX sees {len(devices)} {devices[0].platform} device(s)")
    return Mesh(np.array(devices[:count]), ("data",)) if count > 1 else None


def split_mode(mesh: Mesh | None, members: int, num_envs: int) -> str | None:
    """"members" when the population divides over the devices, else "envs" (N must divide then)."""
    if mesh is None:
        return None
    devices = mesh.devices.size
    if members > 1 and members % devices == 0:
        return "members"
    if num_envs % devices:
        raise ValueError(f"num_envs={num_envs} is not divisible by the {devices} devices (and the population of "
                         f"{members} is not either): use a multiple of {devices}, or --config.num_devices")
    return "envs"


def initialize_distributed(coordinator_address: str | None, num_processes: int | None,
                           process_id: int | None) -> None:
    """jax.distributed.initialize (unset arguments come from the cluster or JAX_COORDINATOR_ADDRESS),
    then one collective over every device. CPU devices of several processes talk through gloo. The
    collectives' context between processes is made at the first collective and waits only a short
    while for the other processes; here they all arrive together, while a first collective inside a
    training program would wait for the slowest process to finish compiling it."""
    from jax.experimental import multihost_utils

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    multihost_utils.sync_global_devices("tdmpc2_jax: every process started")


# what a collective between processes reports when another process of the run has stopped
_PEER_GONE = ("Connection reset by peer", "Connection closed by peer", "Connection refused", "Socket closed",
              "heartbeat timeout", "tasks have crashed", "another task died")


def lost_a_process(err: BaseException) -> bool:
    """Whether `err` is what a process of a multi-process run sees when another process stops: its
    collective (Gloo on CPU) or the coordination service reports the other side gone."""
    return jax.process_count() > 1 and any(text in str(err) for text in _PEER_GONE)


def peer_loss_line(err: BaseException, ckpt_dir: str | None) -> str:
    """One line for `lost_a_process(err)`: which process saw it, the collective's own words (without
    their source locations), and the checkpoint every process resumes from."""
    from tdmpc2_jax import checkpoints

    hint = checkpoints.resume_hint(ckpt_dir) if ckpt_dir else "start every process again with --config.resume=True"
    words = re.sub(r"\[\S+:\d+\] ", "", checkpoints.error_summary(err, 300))
    return (f"process {jax.process_index()} of {jax.process_count()}: another process of the run stopped "
            f"({words}); {hint}")


def end_process(status: int) -> None:
    """Exits with `status`. A process of a multi-process run leaves at once (output flushed): JAX's
    own exit handler would wait at a shutdown barrier for processes that may be gone, then abort
    with a native stack trace."""
    if jax.process_count() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


def fetch(tree):
    """Host copies of (possibly multi-host sharded) arrays; every process gets the whole values."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def free_memory_bytes() -> int:
    """Free memory of this process's first device (host RAM on CPU, where JAX reports no device statistics)."""
    stats = jax.local_devices()[0].memory_stats()
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_fits(nbytes_per_device: int, what: str, fraction: float = 0.8) -> None:
    """Refuses (before anything is allocated) what would take more than `fraction` of free memory."""
    free = free_memory_bytes()
    if nbytes_per_device > fraction * free:
        raise ValueError(f"{what} needs {nbytes_per_device / 2**30:.2f} GiB per device but only "
                         f"{free / 2**30:.2f} GiB is free (at most {fraction:.0%} may be used): lower "
                         "buffer_size, num_envs or the population")
