"""One place that decides how this project's programs are compiled."""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

# CPU only. LLVM optimisation level 1 instead of 3 cuts compile time by 40-45% with the same or
# better run time (5M update: 11.2 s -> 6.5 s first call; plan: 5.8 s -> 3.2 s). Matrix products by
# XLA's own kernels and only reductions by YNNPACK: the same or faster warm calls (5M plan -6 to
# -8%, 5M update -4%, 1M plan and update -5 to -10%) and a first run 0.1-0.25 s shorter, since each
# YNNPACK call is set up on its first run.
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
