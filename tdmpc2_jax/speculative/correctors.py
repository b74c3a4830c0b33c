"""Learned correctors of stale planned actions, behind one interface.

A corrector sees the last T steps of speculative execution (T = 1 for the MLP) as `CorrectorInput`
and returns delta [A]; the corrected action is clip(a_plan_k + s tanh(delta), -1, 1), s = 1 unless a
share of the correction is taken (`SpecSettings.correction_scale`). The last layer
of every corrector is zero-initialised, so an untrained corrector returns delta = 0: the identity.

- "mlp": a gated two-tower MLP. One tower reads the latents (z_real, zhat_k, z_real - zhat_k), the
  other the plan (a_plan_k, an embedding of k, optionally std_k); a learned sigmoid gate mixes them.
- "transformer": a small pre-LayerNorm transformer over the recent history (one token per step,
  learned position embeddings, masked where the history is shorter than T); the last token's
  output gives delta.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from tdmpc2_jax import ops

KINDS = ("mlp", "transformer")


class CorrectorInput(NamedTuple):
    """The last T steps, oldest first (the current step is index -1)."""

    z_real: jax.Array  # [T, L] encoded observation
    z_pred: jax.Array  # [T, L] the plan buffer's predicted latent zhat_k
    a_plan: jax.Array  # [T, A] the planned action a_plan_k
    k: jax.Array  # [T] int32 steps since the plan
    std: jax.Array  # [T, A] the plan's std at step k
    valid: jax.Array  # [T] bool: the history is shorter than T at the start of an episode


@dataclasses.dataclass(frozen=True)
class CorrectorSpec:
    """Everything that fixes a corrector's parameters and inputs (saved with it, checked on load)."""

    kind: str = "mlp"
    latent_dim: int = 512
    action_dim: int = 6
    max_k: int = 6  # execution horizon K the k-embedding covers
    history: int = 1  # T (1 for the MLP)
    hidden: int = 256
    use_std: bool = False
    heads: int = 4
    layers: int = 2

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"corrector kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "mlp" and self.history != 1:
            raise ValueError("the MLP corrector reads one step: history must be 1")


def _features(x: CorrectorInput, use_std: bool) -> tuple[jax.Array, jax.Array]:
    latent = jnp.concatenate([x.z_real, x.z_pred, x.z_real - x.z_pred], axis=-1)
    plan = jnp.concatenate([x.a_plan, x.std], axis=-1) if use_std else x.a_plan
    return latent, plan


class GatedTwoTower(nn.Module):
    spec: CorrectorSpec

    @nn.compact
    def __call__(self, x: CorrectorInput) -> jax.Array:
        s = self.spec
        latent, plan = _features(jax.tree.map(lambda v: v[-1], x), s.use_std)
        plan = jnp.concatenate([plan, nn.Embed(s.max_k + 1, 16, name="k_embed")(x.k[-1])], axis=-1)

        def tower(h, name):
            for i in range(2):
                h = ops.mish(nn.LayerNorm(name=f"{name}_ln{i}")(nn.Dense(s.hidden, name=f"{name}_{i}")(h)))
            return h

        h_latent, h_plan = tower(latent, "latent"), tower(plan, "plan")
        gate = nn.sigmoid(nn.Dense(s.hidden, name="gate")(jnp.concatenate([h_latent, h_plan], axis=-1)))
        h = gate * h_latent + (1.0 - gate) * h_plan
        return nn.Dense(s.action_dim, kernel_init=nn.initializers.zeros, name="out")(h)


class TemporalTransformer(nn.Module):
    spec: CorrectorSpec

    @nn.compact
    def __call__(self, x: CorrectorInput) -> jax.Array:
        s = self.spec
        latent, plan = _features(x, s.use_std)
        tokens = nn.Dense(s.hidden, name="embed")(jnp.concatenate([latent, plan], axis=-1))  # [T, D]
        tokens = tokens + nn.Embed(s.max_k + 1, s.hidden, name="k_embed")(x.k)
        tokens = tokens + self.param("position", nn.initializers.normal(0.02), (s.history, s.hidden))
        causal = jnp.tril(jnp.ones((s.history, s.history), bool))
        mask = (causal & x.valid[None, :] & x.valid[:, None])[None]  # [1, T, T]
        mask = mask | jnp.eye(s.history, dtype=bool)[None]  # every token sees itself
        for i in range(s.layers):
            h = nn.LayerNorm(name=f"ln_attn{i}")(tokens)
            tokens = tokens + nn.MultiHeadDotProductAttention(s.heads, name=f"attn{i}")(h, h, mask=mask)
            h = nn.LayerNorm(name=f"ln_mlp{i}")(tokens)
            tokens = tokens + nn.Dense(s.hidden, name=f"mlp{i}_out")(ops.mish(nn.Dense(2 * s.hidden, name=f"mlp{i}_in")(h)))
        last = nn.LayerNorm(name="ln_out")(tokens[-1])
        return nn.Dense(s.action_dim, kernel_init=nn.initializers.zeros, name="out")(last)


class Corrector:
    """init / delta / correct for one CorrectorSpec; inputs unbatched (vmap for batches)."""

    def __init__(self, spec: CorrectorSpec):
        self.spec = spec
        self.net = GatedTwoTower(spec) if spec.kind == "mlp" else TemporalTransformer(spec)

    def init(self, key: jax.Array):
        s = self.spec
        return self.net.init(key, empty_history(s.history, s.latent_dim, s.action_dim))["params"]

    def delta(self, params, x: CorrectorInput) -> jax.Array:
        """[A] raw correction."""
        return self.net.apply({"params": params}, x)

    def correct(self, params, x: CorrectorInput, scale: float = 1.0) -> tuple[jax.Array, jax.Array]:
        """(corrected action clip(a_plan + scale * tanh(delta), -1, 1) [A], delta [A]); a scale below 1
        takes that share of the correction."""
        delta = self.delta(params, x)
        return jnp.clip(x.a_plan[-1] + scale * jnp.tanh(delta), -1.0, 1.0), delta


def push(history: CorrectorInput, step: CorrectorInput) -> CorrectorInput:
    """The history with one more step (leaves [1, ...]) appended and the oldest dropped."""
    return jax.tree.map(lambda h, s: jnp.concatenate([h[1:], s], axis=0), history, step)


def empty_history(length: int, latent_dim: int, action_dim: int) -> CorrectorInput:
    """A history of `length` steps with nothing in it (valid all false)."""
    z, a = jnp.zeros((length, latent_dim)), jnp.zeros((length, action_dim))
    return CorrectorInput(z, z, a, jnp.zeros((length,), jnp.int32), a, jnp.zeros((length,), bool))
