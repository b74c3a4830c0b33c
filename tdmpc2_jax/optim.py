"""torch.optim.Adam and torch's clip_grad_norm_ over flattened parameter groups.

The gradients of a group are concatenated into one vector [N] and the Adam moments are [N]
vectors, so clipping and the Adam step are a few operations on the whole group instead of a dozen
per parameter array: a smaller program to trace and compile.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp

Tree = Any


class AdamState(NamedTuple):
    mu: jax.Array  # [N] first moment of the flattened group
    nu: jax.Array  # [N] second moment
    count: jax.Array  # [] int32 steps taken
    learning_rate: jax.Array  # [] float32 base rate (a per-agent value, so a population may differ)


def ravel(tree: Tree) -> jax.Array:
    """Every leaf of `tree`, flattened in tree order and concatenated: [N]."""
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


def unravel(flat: jax.Array, like: Tree) -> Tree:
    """The inverse of `ravel` for a tree with the structure and shapes of `like`."""
    leaves, treedef = jax.tree.flatten(like)
    out, start = [], 0
    for leaf in leaves:
        out.append(flat[start:start + leaf.size].reshape(leaf.shape))
        start += leaf.size
    return jax.tree.unflatten(treedef, out)


def global_norm(flat_grads: jax.Array) -> jax.Array:
    """The 2-norm of all gradients of a group: []."""
    return jnp.sqrt(jnp.sum(jnp.square(flat_grads)))


def clip_coefficient(norm: jax.Array, max_norm: float) -> jax.Array:
    """torch.nn.utils.clip_grad_norm_'s factor on the gradients: min(1, max_norm / (norm + 1e-6))."""
    return jnp.minimum(max_norm / (norm + 1e-6), 1.0)


@dataclasses.dataclass(frozen=True)
class Adam:
    """Adam with torch's defaults (betas 0.9 and 0.999, no weight decay) and a given eps.

    `lr_scale` multiplies the learning rate of top-level groups of a dict of parameters, e.g.
    {"encoder": 0.3}.
    """

    eps: float
    lr_scale: Mapping[str, float] = dataclasses.field(default_factory=dict)
    b1: float = 0.9
    b2: float = 0.999

    def init(self, params: Tree, learning_rate: float | jax.Array) -> AdamState:
        zeros = jnp.zeros((sum(x.size for x in jax.tree.leaves(params)),), jnp.float32)
        return AdamState(zeros, zeros, jnp.zeros((), jnp.int32), jnp.asarray(learning_rate, jnp.float32))

    def step(self, params: Tree, flat_grads: jax.Array, state: AdamState,
             grad_scale: jax.Array | float = 1.0) -> tuple[Tree, AdamState]:
        """One Adam step on `flat_grads` * grad_scale ([N], in `ravel(params)` order): (params, state)."""
        g = flat_grads * grad_scale
        count = state.count + 1
        mu = (1 - self.b1) * g + self.b1 * state.mu
        nu = (1 - self.b2) * jnp.square(g) + self.b2 * state.nu
        mu_hat = mu / (1 - self.b1 ** count).astype(jnp.float32)
        nu_hat = nu / (1 - self.b2 ** count).astype(jnp.float32)
        step = (mu_hat / (jnp.sqrt(nu_hat) + self.eps)) * -self._learning_rates(params, state.learning_rate)
        params = jax.tree.map(lambda p, u: p + u, params, unravel(step, params))
        return params, AdamState(mu, nu, count, state.learning_rate)

    def clipped_step(self, params: Tree, grads: Tree, state: AdamState, max_norm: float
                     ) -> tuple[Tree, AdamState, jax.Array, jax.Array]:
        """clip_grad_norm_(max_norm) then one step: (params, state, pre-clip norm [], clip factor [])."""
        flat_grads = ravel(grads)
        norm = global_norm(flat_grads)
        clip = clip_coefficient(norm, max_norm)
        params, state = self.step(params, flat_grads, state, clip)
        return params, state, norm, clip

    def _learning_rates(self, params: Tree, learning_rate: jax.Array) -> jax.Array:
        """The rate of every element: [N] from one index range per scaled group (never stored), or
        [] when no group is scaled."""
        if not self.lr_scale:
            return learning_rate
        ranges, start = [], 0  # (first, end, scale) of runs of leaves with one scale
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
            scale = self.lr_scale.get(path[0].key, 1.0)
            if ranges and ranges[-1][2] == scale:
                ranges[-1] = (ranges[-1][0], start + leaf.size, scale)
            else:
                ranges.append((start, start + leaf.size, scale))
            start += leaf.size
        index = jax.lax.iota(jnp.int32, start)
        rates = jnp.broadcast_to(learning_rate, (start,))
        for first, end, scale in ranges:
            if scale != 1.0:
                rates = jnp.where((index >= first) & (index < end), learning_rate * scale, rates)
        return rates
