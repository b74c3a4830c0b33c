"""Matrix-product and convolution FLOPs of a traced program, loops counted as many times as they run.

XLA's own cost analysis counts the body of a loop once, and the planner's iterations and horizon are
loops; here every `dot_general` counts 2 x (batch x free x free x contracted), every convolution
2 x output entries x (kernel window x input channels), and a `scan` body counts
`length` times. A `while` whose trip count is not static counts once; `cond` counts its most
expensive branch. Elementwise work (LayerNorm, Mish, softmax) is left out: it is a few percent of
the products' FLOPs in these models.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import jax
from jax.extend import core


def _dot_flops(eqn: core.JaxprEqn) -> int:
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval.shape
    # the output holds batch x lhs free x rhs free entries, each a sum of `contracted` products
    return 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)


def _conv_flops(eqn: core.JaxprEqn) -> int:
    """2 x output entries x products per entry (the kernel's entries per output feature); the
    input-dilated convolutions of a strided layer's gradient count only their non-zero taps."""
    rhs = eqn.invars[1].aval.shape
    out_features = rhs[eqn.params["dimension_numbers"].rhs_spec[0]]
    groups = eqn.params.get("batch_group_count", 1)
    dilation = math.prod(eqn.params.get("lhs_dilation") or (1,))
    return 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(rhs) // out_features // groups // dilation


def _sub_jaxprs(value: Any) -> list[core.Jaxpr]:
    if isinstance(value, core.ClosedJaxpr):
        return [value.jaxpr]
    if isinstance(value, core.Jaxpr):
        return [value]
    if isinstance(value, (tuple, list)):
        return [j for v in value for j in _sub_jaxprs(v)]
    return []


def jaxpr_flops(jaxpr: core.Jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "conv_general_dilated":
            total += _conv_flops(eqn)
        elif name == "cond":
            total += max(jaxpr_flops(b) for b in _sub_jaxprs(eqn.params["branches"]))
        else:
            inner = sum(jaxpr_flops(j) for v in eqn.params.values() for j in _sub_jaxprs(v))
            total += inner * (eqn.params["length"] if name == "scan" else 1)
    return total


def flops(fn: Callable, *args: Any) -> int:
    """Matrix-product FLOPs of one call of fn(*args)."""
    return jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)
