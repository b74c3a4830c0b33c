"""One place that decides how this project's programs are compiled."""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

# CPU only. LLVM optimisation level 1 instead of 3: much less compile time for the same run time.
# Matrix products by XLA's own kernels and only reductions by YNNPACK: the same or faster warm calls
# and a shorter first run, since each YNNPACK call is set up on its first run. (Measured gains: the
# README's Benchmarks section.)
_CPU_OPTIONS = {
    "xla_backend_optimization_level": 1,
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE",
}


@functools.cache
def _cpu_options() -> dict[str, Any]:
    """_CPU_OPTIONS less those this jaxlib does not know (experimental options come and go)."""
    options = {}
    for name, value in _CPU_OPTIONS.items():
        try:
            jax.jit(lambda x: x + 1, compiler_options={name: value}).lower(jnp.zeros(())).compile()
        except jax.errors.JaxRuntimeError:
            continue
        options[name] = value
    return options


def compiler_options() -> dict[str, Any] | None:
    """XLA options for the default backend (None: XLA's defaults)."""
    if jax.default_backend() == "cpu":
        return _cpu_options()
    return None


def jit(fn: Callable, **kwargs: Any) -> Callable:
    """jax.jit with the project's compiler options."""
    return jax.jit(fn, compiler_options=compiler_options(), **kwargs)
