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


def test_a_scale_takes_that_share_of_the_correction():
    from tdmpc2_jax.speculative.modes import parse_variant, settings_of

    spec = CorrectorSpec(kind="mlp", latent_dim=8, action_dim=2, max_k=3, hidden=16)
    corrector = Corrector(spec)
    params = jax.tree.map(lambda p: p + 0.1, corrector.init(jax.random.key(0)))
    x = empty_history(1, 8, 2)._replace(a_plan=jnp.asarray([[0.2, -0.1]]), valid=jnp.ones((1,), bool))
    full, delta = corrector.correct(params, x)
    half, _ = corrector.correct(params, x, 0.5)
    none, _ = corrector.correct(params, x, 0.0)
    np.testing.assert_allclose(half, jnp.clip(x.a_plan[-1] + 0.5 * jnp.tanh(delta), -1, 1), rtol=1e-6)
    np.testing.assert_array_equal(none, x.a_plan[-1])  # no share: the stale plan, as naive-K
    assert not np.allclose(full, half)
    mode = parse_variant("mlp-3@0.25", ["mlp"])
    assert (mode.name, mode.k, mode.corrector, mode.scale, mode.fallback) == ("mlp-3@0.25", 3, "mlp", 0.25, False)
    assert settings_of(mode).correction_scale == 0.25 and settings_of(mode).corrector
    assert settings_of(parse_variant("mlp-4@0.5+critic", ["mlp"])).critic_check
    assert parse_variant("mlp-3", ["mlp"]).name == "mlp-3" and parse_variant("mlp-3@1+critic", ["mlp"]).name == "mlp-3+critic"
    for bad, words in (("mlp3", "CORRECTOR-K"), ("tf-3@0.5", "no corrector 'tf'"), ("mlp-3@1.5", "from 0 to 1")):
        with pytest.raises(ValueError, match=words):
            parse_variant(bad, ["mlp"])
