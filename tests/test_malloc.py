"""Compiled CPU programs reuse freed memory instead of page-faulting on every call (malloc.py; Linux, glibc)."""
import os
import subprocess
import sys

import pytest

PROGRAM = """
import resource
from tdmpc2_jax.malloc import reuse_freed_memory
reuse_freed_memory()  # what every command line does first (cli.setup_process)
import jax, jax.numpy as jnp

@jax.jit
def f(x):  # a [4096, 4096] float32 temporary (64 MB, far above glibc's mmap threshold) used twice
    outer = x[:, None] @ x[None, :]
    return jnp.tanh(outer) @ x + jnp.sin(outer) @ x

x = jnp.linspace(0.0, 1.0, 4096)
for _ in range(3):
    f(x).block_until_ready()
faults = []
for _ in range(7):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    f(x).block_until_ready()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sorted(faults)[3])  # the median call (the heap may still grow once or twice)
"""


def faults_per_call(**env) -> int:
    out = subprocess.run([sys.executable, "-c", PROGRAM], env={**os.environ, **env}, capture_output=True,
                         text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.slow
def test_a_large_temporary_is_reused_not_mapped_again_on_every_call():
    ours = faults_per_call()
    system = faults_per_call(TDMPC2_JAX_MALLOC="system")
    # glibc maps the temporary buffer afresh on each call: about 32,000 page faults here.
    assert system > 8000, system
    assert ours < system / 10, (ours, system)
