"""Elementwise and distributional math of TD-MPC2 (jax only, no parameters).

Scalars per sample carry no trailing singleton axis here: a value of a batch is `[B]`, not `[B, 1]`.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# 0.5 * log(2 pi), as written in the official code.
HALF_LOG_2PI = 0.9189385175704956


def symlog(x: jax.Array) -> jax.Array:
    """sign(x) log(1 + |x|)."""
    return jnp.sign(x) * jnp.log(1.0 + jnp.abs(x))


def symexp(x: jax.Array) -> jax.Array:
    """sign(x) (exp(|x|) - 1), the inverse of symlog."""
    return jnp.sign(x) * (jnp.exp(jnp.abs(x)) - 1.0)


def bins(num_bins: int, vmin: float, vmax: float) -> jax.Array:
    """Bin centres on the symlog scale: [num_bins].

    Bit-identical to torch.linspace in float32 (first half fused-multiply-added from vmin, second
    half back from vmax); jnp.linspace differs by up to 1e-6, which value targets would inherit.
    """
    step = np.float64(np.float32((np.float32(vmax) - np.float32(vmin)) / np.float32(num_bins - 1)))
    index = np.arange(num_bins, dtype=np.float64)
    values = np.where(index < num_bins // 2, vmin + step * index, vmax - step * (num_bins - 1 - index))
    return jnp.asarray(values.astype(np.float32))


def exact_divide(x: jax.Array, divisor: float) -> jax.Array:
    """x / divisor, correctly rounded.

    XLA turns a division by a broadcast scalar into a multiplication by its reciprocal, which is off
    by an ulp; a divisor that depends on x (NaN stays NaN either way) keeps the true division.
    """
    return x / jnp.where(jnp.isnan(x), 1.0, jnp.float32(divisor))


def two_hot(x: jax.Array, num_bins: int, vmin: float, vmax: float) -> jax.Array:
    """Scalars [...] -> soft two-hot targets [..., num_bins] on the symlog scale.

    The mass is split between floor and floor+1 of the bin position; like the official code the upper
    index wraps modulo num_bins (x at vmax puts weight 0 on bin 0).
    """
    bin_size = (vmax - vmin) / (num_bins - 1)
    x = jnp.clip(symlog(x), vmin, vmax)
    position = exact_divide(x - vmin, bin_size)
    lower = jnp.floor(position)
    offset = position - lower
    lower = lower.astype(jnp.int32)
    upper = (lower + 1) % num_bins
    index = jnp.arange(num_bins)
    return (index == lower[..., None]) * (1.0 - offset)[..., None] + (index == upper[..., None]) * offset[..., None]


def two_hot_inv(logits: jax.Array, num_bins: int, vmin: float, vmax: float) -> jax.Array:
    """Logits [..., num_bins] -> scalars [...]: symexp of the softmax-weighted bin centre."""
    probs = jax.nn.softmax(logits, axis=-1)
    return symexp(jnp.sum(probs * bins(num_bins, vmin, vmax), axis=-1))


def soft_ce(logits: jax.Array, target: jax.Array, num_bins: int, vmin: float, vmax: float) -> jax.Array:
    """Cross-entropy of logits [..., num_bins] against two-hot(target [...]): [...]."""
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(two_hot(target, num_bins, vmin, vmax) * log_probs, axis=-1)


def simnorm(x: jax.Array, group_size: int) -> jax.Array:
    """Softmax within consecutive groups of `group_size` along the last axis."""
    shape = x.shape
    x = x.reshape(*shape[:-1], shape[-1] // group_size, group_size)
    return jax.nn.softmax(x, axis=-1).reshape(shape)


def random_shift(images: jax.Array, shift: jax.Array, pad: int) -> jax.Array:
    """The official shift augmentation: images [B, C, H, W] padded by repeating their edge `pad`
    pixels, then cropped back to [B, C, H, W] at offsets shift [B, 2] = (column, row), integers in
    [0, 2 pad]. Returns float32 (what the official grid_sample gives up to its float rounding)."""
    padded = jnp.pad(images.astype(jnp.float32), [(0, 0), (0, 0), (pad, pad), (pad, pad)], mode="edge")
    height, width = images.shape[-2:]

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (0, offset[1], offset[0]), (image.shape[0], height, width))

    return jax.vmap(crop)(padded, shift.astype(jnp.int32))


@jax.custom_jvp
def mish(x: jax.Array) -> jax.Array:
    """x tanh(softplus(x)) with a single exp: tanh(log(1 + e^x)) = n / (n + 2), n = e^x (e^x + 2)."""
    e = jnp.exp(jnp.minimum(x, 20.0))
    n = e * (e + 2.0)
    return jnp.where(x > 20.0, x, x * n / (n + 2.0))


@mish.defjvp
def _mish_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    e = jnp.exp(jnp.minimum(x, 20.0))
    n = e * (e + 2.0)
    d = n + 2.0
    y = jnp.where(x > 20.0, x, x * n / d)
    slope = jnp.where(x > 20.0, 1.0, n / d + x * 4.0 * e * (e + 1.0) / (d * d))
    return y, slope * dx


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float) -> jax.Array:
    """LayerNorm over the last axis (biased variance, two-pass), with a hand-written backward pass.

    Same forward arithmetic as flax's LayerNorm(use_fast_variance=False); the explicit VJP
    dx = (g - mean(g) - x_hat mean(g x_hat)) / sigma, g = dy * scale, replaces the many passes
    autodiff makes through the mean and variance.
    """
    return _layer_norm_forward(x, scale, bias, eps)[0]


def _layer_norm_forward(x, scale, bias, eps):
    mean = jnp.mean(x, axis=-1, keepdims=True)
    centred = x - mean
    inv_std = jax.lax.rsqrt(jnp.mean(jnp.square(centred), axis=-1, keepdims=True) + eps)
    return centred * (inv_std * scale) + bias, (centred * inv_std, inv_std, scale)


def _layer_norm_backward(eps, residuals, dy):
    x_hat, inv_std, scale = residuals
    g = dy * scale
    dx = inv_std * (g - jnp.mean(g, axis=-1, keepdims=True) - x_hat * jnp.mean(g * x_hat, axis=-1, keepdims=True))
    batch_axes = tuple(range(dy.ndim - 1))
    return dx, jnp.sum(dy * x_hat, axis=batch_axes), jnp.sum(dy, axis=batch_axes)


layer_norm.defvjp(_layer_norm_forward, _layer_norm_backward)


def log_std(raw: jax.Array, low: float, dif: float) -> jax.Array:
    """Raw head output -> log std in [low, low + dif]."""
    return low + 0.5 * dif * (jnp.tanh(raw) + 1.0)


def gaussian_logprob(eps: jax.Array, log_std_: jax.Array) -> jax.Array:
    """log N(eps; 0, 1) in the reparameterised form, summed over the last axis: [...]."""
    return jnp.sum(-0.5 * jnp.square(eps) - log_std_ - HALF_LOG_2PI, axis=-1)


class SquashedGaussian(NamedTuple):
    """A tanh-squashed Gaussian policy sample and the official statistics of it (shapes [..., A] / [...])."""

    action: jax.Array  # tanh(mean + eps * std)
    mean: jax.Array  # tanh(mean)
    log_std: jax.Array
    log_prob: jax.Array  # after the tanh correction
    scaled_entropy: jax.Array  # the entropy term of the policy loss

    @property
    def entropy(self) -> jax.Array:
        return -self.log_prob


def squashed_gaussian(mean: jax.Array, log_std_: jax.Array, eps: jax.Array, action_dims: jax.Array | int) -> SquashedGaussian:
    """Reparameterised sample of tanh(N(mean, exp(log_std))) and its official entropy term.

    `action_dims` counts the used action dimensions (a scalar, or [...] per sample in multitask).
    The entropy term is -log_prob * (log_prob_pre * action_dims) / (log_prob + 1e-8), exactly as the
    official code computes it: equal to -action_dims * (pre-squash Gaussian log-prob) up to 1e-8.
    """
    log_prob_pre = gaussian_logprob(eps, log_std_)
    scaled_log_prob = log_prob_pre * action_dims
    sample = jnp.tanh(mean + eps * jnp.exp(log_std_))
    correction = jnp.sum(jnp.log(jax.nn.relu(1.0 - jnp.square(sample)) + 1e-6), axis=-1)
    log_prob = log_prob_pre - correction
    entropy_scale = scaled_log_prob / (log_prob + 1e-8)
    return SquashedGaussian(sample, jnp.tanh(mean), log_std_, log_prob, -log_prob * entropy_scale)


def percentiles_5_95(x: jax.Array) -> jax.Array:
    """The 5th and 95th percentile over the leading axis with linear interpolation: [2, ...]."""
    n = x.shape[0]  # static: the positions are computed on the host, in float32 like torch
    positions = np.array([5.0, 95.0], np.float32) * np.float32(n - 1) / np.float32(100)
    lower = np.floor(positions)
    upper = np.minimum(lower + 1, n - 1)
    weight_upper = (positions - lower).astype(np.float32)
    ordered = jnp.sort(x, axis=0)
    expand = (slice(None),) + (None,) * (x.ndim - 1)
    return (ordered[lower.astype(np.int32)] * (np.float32(1.0) - weight_upper)[expand]
            + ordered[upper.astype(np.int32)] * weight_upper[expand])


def update_scale(scale: jax.Array, x: jax.Array, tau: float) -> jax.Array:
    """Running scale: lerp(scale, max(P95(x) - P5(x), 1), tau), percentiles over x's leading axis."""
    p = percentiles_5_95(x)
    return lerp(scale, jnp.maximum(p[1] - p[0], 1.0), tau)


def lerp(start: jax.Array, end: jax.Array, weight: float) -> jax.Array:
    """Linear interpolation with torch.lerp's two formulas (exact at both ends)."""
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)
