"""One place that decides how this project's programs are compiled."""
from __future__ import annotations

from typing import Any, Callable

import jax


def compiler_options() -> dict[str, Any] | None:
    """XLA options per backend.

    On CPU, LLVM optimisation level 1 instead of 3 cuts compile time by 40-45% with the same or
    better run time (5M update: 11.2 s -> 6.5 s first call; plan: 5.8 s -> 3.2 s).
    """
    if jax.default_backend() == "cpu":
        return {"xla_backend_optimization_level": 1}
    return None


def jit(fn: Callable, **kwargs: Any) -> Callable:
    """jax.jit with the project's compiler options."""
    return jax.jit(fn, compiler_options=compiler_options(), **kwargs)
