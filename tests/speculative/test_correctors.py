"""Correctors: an untrained one is the identity."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdmpc2_jax.speculative.correctors import Corrector, CorrectorSpec, empty_history


@pytest.mark.parametrize("kind, history", [("mlp", 1), ("transformer", 4)])
@pytest.mark.slow
def test_an_untrained_corrector_is_the_identity(kind, history):
    spec = CorrectorSpec(kind=kind, latent_dim=16, action_dim=3, max_k=5, history=history, hidden=32, use_std=True)
    corrector = Corrector(spec)
    params = corrector.init(jax.random.key(0))
    x = jax.tree.map(lambda v: jax.random.uniform(jax.random.key(1), v.shape, minval=-1, maxval=1).astype(v.dtype)
                     if v.dtype == jnp.float32 else v, empty_history(history, 16, 3))
    x = x._replace(k=jnp.arange(history) % 5, valid=jnp.arange(history) >= history // 2)
    action, delta = corrector.correct(params, x)
    chex.assert_shape((action, delta), ((3,), (3,)))
    chex.assert_trees_all_equal(action, jnp.clip(x.a_plan[-1], -1, 1))
    np.testing.assert_array_equal(np.asarray(delta), 0.0)
    # a trained (non-zero) last layer changes the action but keeps it in [-1, 1]
    params = jax.tree.map(lambda p: p + 3.0, params)
    action, delta = corrector.correct(params, x)
    assert np.any(np.asarray(delta) != 0) and np.all(np.abs(np.asarray(action)) <= 1.0)
