"""Keep freed memory in the process, so that compiled CPU programs do not page-fault on every call.

An XLA:CPU program allocates its temporary buffer on every call (over a hundred megabytes for one
5M-preset update). glibc serves such a request with a fresh `mmap` and unmaps it on free, so every
call touches tens of thousands of new pages (the README gives the kernel time this costs). Here
glibc never maps or trims (large blocks come from the main heap and stay there), and CPU programs
run on the calling thread, whose heap that is (a worker thread's heap is capped, and glibc maps
anything larger).

Set TDMPC2_JAX_MALLOC=system to keep glibc's and JAX's defaults.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import jax

# mallopt parameters from glibc's malloc.h.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def reuse_freed_memory() -> bool:
    """Configure glibc malloc and JAX as above; False where that is not possible (not glibc) or opted out."""
    if os.environ.get("TDMPC2_JAX_MALLOC") == "system" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    if not (mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1):
        return False
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    return True
