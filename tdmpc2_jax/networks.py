"""Flax modules of the TD-MPC2 world model.

Parameter names mirror the official state dict: an mlp's layers are `layers_0`, `layers_1`, ...
(official `0`, `1`, ...), each NormedLinear holds `linear` (kernel [in, out], bias) and `ln`
(scale, bias). The Q ensemble is one head module whose parameters are stacked on a leading
`num_q` axis and applied with `jax.vmap` (see world_model.py).
"""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from tdmpc2_jax import ops

# Official init: trunc_normal_(std=0.02) truncates at +-2 in absolute units (100 std), which never
# binds, so it is a plain normal; biases are zero.
weight_init = nn.initializers.normal(stddev=0.02)


class LayerNorm(nn.Module):
    """torch.nn.LayerNorm(features) (eps 1e-5) with a hand-written backward pass (ops.layer_norm)."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.initializers.ones, (self.features,))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return ops.layer_norm(x, scale, bias, 1e-5)


def _mix32(x: jax.Array) -> jax.Array:
    """A bijective 32-bit integer hash with full avalanche (MurmurHash3's finalizer)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


class Dropout(nn.Module):
    """Inverted dropout (torch.nn.Dropout semantics: zero with probability `rate`, scale the rest by
    1 / (1 - rate)) whose uniform draws are a counter hash seeded from the layer's PRNG key.

    Drawing one threefry value per element was the largest elementwise cost of an update on CPU
    (three million draws per 5M update); here the key is used once, for two 32-bit seeds, and every
    element's draw is the hash of its index under them.
    """

    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        if deterministic or self.rate == 0.0:
            return x
        seed = jax.random.bits(self.make_rng("dropout"), (2,), jnp.uint32)
        index = jax.lax.iota(jnp.uint32, x.size).reshape(x.shape)
        draws = _mix32(_mix32(index ^ seed[0]) + seed[1])
        keep = draws >= jnp.uint32(min(round(self.rate * 2.0**32), 2**32 - 1))
        return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x))


class NormedLinear(nn.Module):
    """Linear -> (Dropout) -> LayerNorm -> activation."""

    features: int
    activation: Callable[[jax.Array], jax.Array] = ops.mish
    dropout_rate: float = 0.0

    def setup(self):
        self.linear = nn.Dense(self.features, kernel_init=weight_init, bias_init=nn.initializers.zeros)
        self.ln = LayerNorm(self.features)
        if self.dropout_rate > 0:
            self.drop = Dropout(self.dropout_rate)

    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        return self.after_linear(self.linear(x), deterministic)

    def after_linear(self, h: jax.Array, deterministic: bool = True) -> jax.Array:
        """Everything after the Linear: lets a caller supply the Linear's output itself."""
        if self.dropout_rate > 0:
            h = self.drop(h, deterministic=deterministic)
        return self.activation(self.ln(h))


class MLP(nn.Module):
    """NormedLinear hidden layers and a head: plain Linear, or NormedLinear + SimNorm for latents.

    Dropout (if any) sits in the first layer only, as in the official mlp.
    """

    hidden_dims: Sequence[int]
    out_dim: int
    simnorm_dim: int = 0  # > 0: the head is NormedLinear with SimNorm (latent output)
    dropout_rate: float = 0.0
    zero_head: bool = False  # official reward / Q heads start at exactly zero

    def setup(self):
        layers = [
            NormedLinear(dim, dropout_rate=self.dropout_rate if i == 0 else 0.0)
            for i, dim in enumerate(self.hidden_dims)
        ]
        if self.simnorm_dim:
            layers.append(NormedLinear(self.out_dim, activation=lambda x: ops.simnorm(x, self.simnorm_dim)))
        else:
            init = nn.initializers.zeros if self.zero_head else weight_init
            layers.append(nn.Dense(self.out_dim, kernel_init=init, bias_init=nn.initializers.zeros))
        self.layers = layers

    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        return self.after_first_linear(self.layers[0].linear(x), deterministic)

    def after_first_linear(self, h: jax.Array, deterministic: bool = True) -> jax.Array:
        """The mlp from the first Linear's output on (planning computes that product itself)."""
        x = self.layers[0].after_linear(h, deterministic)
        for layer in self.layers[1:-1]:
            x = layer(x, deterministic)
        head = self.layers[-1]
        return head(x, deterministic) if isinstance(head, NormedLinear) else head(x)


def dense(params: dict, x: jax.Array) -> jax.Array:
    """x @ kernel + bias for the parameters of an nn.Dense."""
    return x @ params["kernel"] + params["bias"]


def split_first_linear(mlp_params: dict, split: int) -> tuple[dict, dict]:
    """Splits the first Linear of an mlp by input rows: (rows [:split] + bias, rows [split:] no bias).

    For an input [u, v] with u of width `split`, Linear([u, v]) = dense(a, u) + v @ b['kernel'].
    """
    first = mlp_params["layers_0"]["linear"]
    kernel = first["kernel"]
    return {"kernel": kernel[:split], "bias": first["bias"]}, {"kernel": kernel[split:]}


def _torch_conv_init(scale_of_fan_in):
    """torch.nn.Conv2d's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kernels HWIO)."""
    def init(key, shape, dtype=jnp.float32):
        fan_in = scale_of_fan_in(shape)
        bound = 1.0 / jnp.sqrt(fan_in)
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return init


class ConvEncoder(nn.Module):
    """The official pixel encoder after its shift augmentation: images [B, C, 64, 64] in 0..255 ->
    x / 255 - 0.5 -> conv 7x7/2, 5x5/2, 3x3/2, 3x3/1 (`channels` each, ReLU between) -> flattened
    channel-major like torch ([B, channels * 16]) -> SimNorm. Layers `layers_0..3` (official
    `_encoder.rgb.2`, `.4`, `.6`, `.8`)."""

    channels: int
    simnorm_dim: int

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        x = jnp.moveaxis(images / 255.0 - 0.5, -3, -1)  # NHWC
        for i, (size, stride) in enumerate(((7, 2), (5, 2), (3, 2), (3, 1))):
            fan_in = lambda shape: shape[0] * shape[1] * shape[2]
            in_channels = x.shape[-1]
            x = nn.Conv(self.channels, (size, size), strides=(stride, stride), padding="VALID", name=f"layers_{i}",
                        kernel_init=_torch_conv_init(fan_in),
                        bias_init=_torch_conv_init(lambda _, c=in_channels, k=size: c * k * k))(x)
            if i < 3:
                x = jax.nn.relu(x)
        x = jnp.moveaxis(x, -1, -3).reshape(*x.shape[:-3], -1)
        return ops.simnorm(x, self.simnorm_dim)
