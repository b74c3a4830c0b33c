"""The flattened Adam against optax's Adam, and ravel / unravel round trips."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from tdmpc2_jax import optim


def tree(key):
    k = jax.random.split(key, 4)
    return {"dynamics": {"kernel": jax.random.normal(k[0], (3, 4)), "bias": jax.random.normal(k[1], (4,))},
            "encoder": {"kernel": jax.random.normal(k[2], (2, 3))},
            "qs": {"kernel": jax.random.normal(k[3], (2, 4, 1))}}


def test_ravel_and_unravel_round_trip_in_tree_order(key):
    params = tree(key)
    flat = optim.ravel(params)
    chex.assert_shape(flat, (12 + 4 + 6 + 8,))
    np.testing.assert_array_equal(flat[:4], params["dynamics"]["bias"])  # leaves in jax.tree order
    chex.assert_trees_all_equal(optim.unravel(flat, params), params)


def test_steps_equal_optax_adam_with_a_scaled_encoder_rate_and_clipping(key):
    params = tree(key)
    ours = optim.Adam(eps=1e-8, lr_scale={"encoder": 0.3})
    label = lambda p: {k: jax.tree.map(lambda _: "encoder" if k == "encoder" else "rest", v) for k, v in p.items()}
    reference = optax.multi_transform({"encoder": optax.adam(3e-4 * 0.3, eps=1e-8), "rest": optax.adam(3e-4, eps=1e-8)},
                                      label)
    state, ref_state, ref_params = ours.init(params, 3e-4), reference.init(params), params
    for step in range(3):
        grads = jax.tree.map(lambda x: 10.0 * jnp.sin(x * (step + 1)), ref_params)
        params, state, norm, clip = ours.clipped_step(params, grads, state, 20.0)
        np.testing.assert_allclose(norm, optax.global_norm(grads), rtol=1e-6)
        assert float(clip) < 1.0  # the clipping binds
        updates, ref_state = reference.update(jax.tree.map(lambda g: g * clip, grads), ref_state)
        ref_params = optax.apply_updates(ref_params, updates)
        chex.assert_trees_all_close(params, ref_params, rtol=1e-6, atol=1e-9)
    assert int(state.count) == 3


def test_the_learning_rate_is_a_state_value(key):
    params = tree(key)
    adam = optim.Adam(eps=1e-5)
    grads = optim.ravel(jax.tree.map(jnp.ones_like, params))
    slow, _ = adam.step(params, grads, adam.init(params, 1e-4))
    fast, _ = adam.step(params, grads, adam.init(params, 1e-2))
    # the first Adam step moves every parameter by about lr (g / |g|)
    np.testing.assert_allclose(optim.ravel(params) - optim.ravel(slow), 1e-4, rtol=0, atol=5e-7)
    np.testing.assert_allclose(optim.ravel(params) - optim.ravel(fast), 1e-2, rtol=0, atol=5e-7)
