import chex
import jax.test_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdmpc2_jax import ops

BINS = (101, -10.0, 10.0)


def test_symexp_inverts_symlog():
    x = jnp.array([-1e3, -3.0, -1e-3, 0.0, 0.5, 7.0, 1e3])
    np.testing.assert_allclose(ops.symexp(ops.symlog(x)), x, rtol=1e-5, atol=1e-6)


def test_two_hot_is_a_distribution_that_decodes_to_its_input():
    x = jnp.array([-100.0, -2.5, 0.0, 0.3, 12.0, 4000.0])
    target = ops.two_hot(x, *BINS)
    chex.assert_shape(target, (6, 101))
    np.testing.assert_allclose(target.sum(-1), 1.0, rtol=1e-6)
    assert int(jnp.max(jnp.sum(target > 0, axis=-1))) <= 2
    # Logits = log(two-hot) decode back to x (two_hot_inv is linear in the symlog domain).
    decoded = ops.two_hot_inv(jnp.log(target + 1e-30), *BINS)
    np.testing.assert_allclose(decoded, x, rtol=1e-4, atol=1e-6)


def test_soft_ce_is_minimal_at_the_target():
    target = jnp.array([1.7])
    good = jnp.log(ops.two_hot(target, *BINS) + 1e-12)
    bad = jnp.zeros((1, 101))
    assert ops.soft_ce(good, target, *BINS)[0] < ops.soft_ce(bad, target, *BINS)[0]


def test_bins_match_the_official_linspace_values():
    b = ops.bins(*BINS)
    chex.assert_shape(b, (101,))
    assert b[0] == -10.0 and b[-1] == 10.0 and bool(jnp.all(jnp.diff(b) > 0))
    # torch.linspace fills the upper half back from vmax: its centre bin is 10 - 50 * 0.2f, not 0.
    assert float(b[50]) == float(np.float32(10.0 - 50 * np.float64(np.float32(0.2))))


def test_exact_divide_is_correctly_rounded():
    x = jnp.asarray(np.random.RandomState(0).uniform(0, 20, 10_000).astype(np.float32))
    np.testing.assert_array_equal(jax.jit(lambda v: ops.exact_divide(v, 0.2))(x), np.asarray(x) / np.float32(0.2))


def test_simnorm_normalises_each_group():
    x = jax.random.normal(jax.random.key(0), (3, 16))
    y = ops.simnorm(x, 8).reshape(3, 2, 8)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("x", [-30.0, -5.0, -0.3, 0.0, 0.7, 4.0, 19.9, 25.0, 80.0])
def test_mish_matches_its_definition(x):
    ref = x * np.tanh(np.log1p(np.exp(np.float64(x))))
    np.testing.assert_allclose(ops.mish(jnp.float32(x)), ref, rtol=2e-6, atol=1e-12)


def test_squashed_gaussian_shapes_bounds_and_entropy_term():
    mean = jnp.zeros((4, 3))
    log_std = jnp.full((4, 3), -1.0)
    eps = jax.random.normal(jax.random.key(1), (4, 3))
    out = ops.squashed_gaussian(mean, log_std, eps, 3)
    chex.assert_shape([out.action, out.mean, out.log_std], (4, 3))
    chex.assert_shape([out.log_prob, out.scaled_entropy], (4,))
    assert bool(jnp.all(jnp.abs(out.action) < 1))
    # Official entropy term: -action_dims * pre-squash Gaussian log-prob (up to the 1e-8).
    np.testing.assert_allclose(out.scaled_entropy, -3 * ops.gaussian_logprob(eps, log_std), rtol=1e-5)


def test_percentiles_match_numpy_linear_interpolation():
    x = jax.random.normal(jax.random.key(2), (37, 1))
    np.testing.assert_allclose(ops.percentiles_5_95(x)[:, 0], np.percentile(np.asarray(x)[:, 0], [5, 95]), rtol=1e-6)


def test_running_scale_never_drops_below_one_and_moves_by_tau():
    assert float(ops.update_scale(jnp.float32(1.0), jnp.zeros((8,)), 0.01)) == 1.0
    x = jnp.linspace(0.0, 100.0, 101)
    assert float(ops.update_scale(jnp.float32(1.0), x, 0.01)) == pytest.approx(1.0 + 0.01 * (90.0 - 1.0), rel=1e-6)


def test_hand_written_layer_norm_and_mish_gradients_are_right():
    with jax.enable_x64(True):
        x = 3.0 * jax.random.normal(jax.random.key(0), (4, 7), jnp.float64)
        scale = jax.random.normal(jax.random.key(1), (7,), jnp.float64)
        bias = jax.random.normal(jax.random.key(2), (7,), jnp.float64)
        jax.test_util.check_grads(lambda x, s, b: ops.layer_norm(x, s, b, 1e-5), (x, scale, bias), order=1,
                                  modes=["rev"])
        jax.test_util.check_grads(ops.mish, (jnp.linspace(-30.0, 30.0, 101, dtype=jnp.float64),), order=1)


def test_layer_norm_matches_the_textbook_formula():
    x = jax.random.normal(jax.random.key(3), (5, 16)) * 4 + 2
    scale, bias = jnp.linspace(0.5, 1.5, 16), jnp.linspace(-1, 1, 16)
    ref = (x - x.mean(-1, keepdims=True)) / jnp.sqrt(x.var(-1, keepdims=True) + 1e-5) * scale + bias
    np.testing.assert_allclose(ops.layer_norm(x, scale, bias, 1e-5), ref, rtol=1e-5, atol=1e-5)
