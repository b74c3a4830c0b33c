"""The pixel encoder against the official one (tests/fixtures/parity_rgb, made by the official
code): the shift augmentation as an integer crop of the edge-padded images, and the conv stack."""
import chex
import jax
import jax.numpy as jnp
import numpy as np

from tiny import ROOT

from tdmpc2_jax import ops
from tdmpc2_jax.networks import ConvEncoder

FIXTURE = ROOT / "tests" / "fixtures" / "parity_rgb"


def official_conv_params(weights) -> dict:
    """`_encoder.rgb.{2,4,6,8}` (torch [out, in, kh, kw]) as the encoder's layers (kernels [kh, kw, in, out])."""
    return {f"layers_{i}": {"kernel": jnp.asarray(np.transpose(weights[f"_encoder.rgb.{2 + 2 * i}.weight"], (2, 3, 1, 0))),
                            "bias": jnp.asarray(weights[f"_encoder.rgb.{2 + 2 * i}.bias"])} for i in range(4)}


def test_the_shift_is_the_official_one():
    forward = np.load(FIXTURE / "forward.npz")
    shift = forward["shift"].reshape(-1, 2)
    shifted = ops.random_shift(jnp.asarray(forward["obs"]), jnp.asarray(shift), pad=3)
    chex.assert_shape(shifted, (4, 9, 64, 64))
    # the official grid_sample weighs in neighbours by a few millionths at sharp edges
    np.testing.assert_allclose(np.asarray(shifted) / 255, forward["enc_shifted"] / 255, atol=1e-5)
    # (column, row) order matters: the recorded shifts are not symmetric, so swapping them misses
    swapped = ops.random_shift(jnp.asarray(forward["obs"]), jnp.asarray(shift[:, ::-1]), pad=3)
    assert np.abs(np.asarray(swapped) - forward["enc_shifted"]).max() > 1.0


def test_the_conv_encoder_is_the_official_one():
    forward, weights = np.load(FIXTURE / "forward.npz"), np.load(FIXTURE / "weights.npz")
    encoder = ConvEncoder(channels=8, simnorm_dim=8)
    init = encoder.init(jax.random.key(0), jnp.zeros((1, 9, 64, 64)))["params"]
    params = official_conv_params(weights)
    chex.assert_trees_all_equal_shapes(init, params)
    z = encoder.apply({"params": params}, jnp.asarray(forward["enc_shifted"]))
    chex.assert_shape(z, (4, 128))
    np.testing.assert_allclose(np.asarray(z), forward["z"], rtol=1e-5, atol=1e-6)
    # the same from the raw observations and the recorded shifts
    shifted = ops.random_shift(jnp.asarray(forward["obs"]), jnp.asarray(forward["shift"].reshape(-1, 2)), pad=3)
    np.testing.assert_allclose(np.asarray(encoder.apply({"params": params}, shifted)), forward["z"], rtol=1e-5, atol=1e-6)
