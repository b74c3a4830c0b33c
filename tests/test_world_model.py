import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdmpc2_jax.config import make_config
from tdmpc2_jax.world_model import WorldModel, count_params, sample_pair

# obs 24 / act 6, learnable parameters of the official model (encoder, dynamics, reward, policy,
# Q heads; target and detached Q copies excluded), hand-derived from the layer sizes.
OFFICIAL_COUNTS = {1: 1_214_651, 5: 4_960_618, 19: 18_062_442, 48: 47_208_298, 317: 312_595_417}


@pytest.mark.parametrize("size", sorted(OFFICIAL_COUNTS))
def test_every_preset_has_the_official_parameter_count(size):
    cfg = make_config(dict(model_size=size, obs_dim=24, action_dim=6))
    shapes = jax.eval_shape(WorldModel(cfg).init, jax.random.key(0))  # no memory used
    assert count_params(shapes) == OFFICIAL_COUNTS[size]
    chex.assert_shape(shapes["qs"]["layers_0"]["linear"]["kernel"], (cfg.num_q, cfg.latent_dim + 6, cfg.mlp_dim))


@pytest.mark.slow
def test_component_shapes_and_dtypes(tiny_cfg, key):
    cfg, m = tiny_cfg, WorldModel(tiny_cfg)
    params = m.init(key)
    obs = jnp.ones((7, cfg.obs_dim))
    a = jnp.zeros((7, cfg.action_dim))
    z = m.encode(params, obs)
    chex.assert_shape(z, (7, cfg.latent_dim))
    chex.assert_type(z, jnp.float32)
    chex.assert_shape(m.next(params, z, a), (7, cfg.latent_dim))
    chex.assert_shape(m.reward(params, z, a), (7, cfg.num_bins))
    chex.assert_shape(m.q_logits(params["qs"], z, a), (cfg.num_q, 7, cfg.num_bins))
    chex.assert_shape(m.q_pair(params["qs"], z, a, jnp.array([0, 2]), reduce="min"), (7,))
    policy = m.pi(params, z, jnp.zeros((7, cfg.action_dim)))
    chex.assert_shape([policy.action, policy.mean, policy.log_std], (7, cfg.action_dim))
    chex.assert_shape([policy.log_prob, policy.scaled_entropy], (7,))
    # SimNorm latents: every group of simnorm_dim sums to one.
    np.testing.assert_allclose(z.reshape(7, -1, cfg.simnorm_dim).sum(-1), 1.0, rtol=1e-5)


def test_reward_and_q_heads_start_at_exactly_zero(tiny_cfg, key):
    m = WorldModel(tiny_cfg)
    params = m.init(key)
    z = jax.random.normal(key, (5, tiny_cfg.latent_dim))
    a = jnp.ones((5, tiny_cfg.action_dim))
    assert float(jnp.max(jnp.abs(m.to_value(m.reward(params, z, a))))) == 0.0
    assert float(jnp.max(jnp.abs(m.q_values(params["qs"], z, a)))) == 0.0


@pytest.mark.slow
def test_weights_follow_the_official_init(key):
    cfg = make_config(dict(model_size=1, obs_dim=24, action_dim=6))
    params = WorldModel(cfg).init(key)
    kernel = params["dynamics"]["layers_1"]["linear"]["kernel"]
    assert abs(float(jnp.std(kernel)) - 0.02) < 1e-3
    assert float(jnp.max(jnp.abs(params["dynamics"]["layers_1"]["linear"]["bias"]))) == 0.0
    heads = params["qs"]["layers_0"]["linear"]["kernel"]
    assert not np.allclose(heads[0], heads[1])  # independently initialised heads


def test_step_shared_equals_step_on_a_broadcast_latent(tiny_cfg, key):
    m = WorldModel(tiny_cfg)
    params = m.init(key)
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(key, p.shape), params)  # non-zero heads
    z = m.encode(params, jnp.ones((tiny_cfg.obs_dim,)))
    a = jax.random.uniform(key, (9, tiny_cfg.action_dim), minval=-1, maxval=1)
    r1, z1 = m.step_shared(params, z, a)
    r2, z2 = m.step(params, jnp.broadcast_to(z, (9, z.shape[0])), a)
    np.testing.assert_allclose(r1, r2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z1, z2, rtol=1e-5, atol=1e-6)


def test_sample_pair_draws_two_distinct_heads(key):
    pairs = jax.vmap(lambda k: sample_pair(k, 5))(jax.random.split(key, 200))
    chex.assert_shape(pairs, (200, 2))
    assert bool(jnp.all(pairs[:, 0] != pairs[:, 1])) and int(pairs.max()) == 4 and int(pairs.min()) == 0


def test_multitask_masks_unused_action_dims_and_conditions_on_task(tiny_multitask_cfg, key):
    cfg, m = tiny_multitask_cfg, WorldModel(tiny_multitask_cfg)
    params = m.init(key)
    chex.assert_shape(params["task_emb"], (2, cfg.task_dim))
    z = jax.random.uniform(key, (4, cfg.latent_dim))
    task = jnp.array([0, 1, 1, 0])
    policy = m.pi(params, z, jax.random.normal(key, (4, cfg.action_dim)), task)
    np.testing.assert_array_equal(policy.action[1:3, 1:], 0.0)  # task 1 uses 1 of 3 action dims
    assert bool(jnp.all(policy.action[0] != 0.0))
    obs = jnp.ones((2, cfg.obs_dim))
    z0, z1 = m.encode(params, obs, jnp.array([0, 1]))
    assert not np.allclose(z0, z1)  # the task embedding reaches the encoder
    np.testing.assert_allclose(m.discount(task), [0.99, 0.95, 0.95, 0.99], rtol=1e-6)


def test_task_embedding_rows_are_renormalised_to_unit_norm(tiny_multitask_cfg, key):
    m = WorldModel(tiny_multitask_cfg)
    params = m.init(key)
    params["task_emb"] = params["task_emb"].at[1].set(3.0)
    np.testing.assert_allclose(jnp.linalg.norm(m.task_embedding(params, jnp.array(1))), 1.0, rtol=1e-5)
    small = m.task_embedding(params, jnp.array(0))
    np.testing.assert_array_equal(small, params["task_emb"][0])


def test_wrong_shapes_are_clear_errors(tiny_cfg, key):
    m = WorldModel(tiny_cfg)
    params = m.init(key)
    with pytest.raises(ValueError, match=r"obs must have last axis 5, got shape \(3, 4\)"):
        m.encode(params, jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="action must have last axis 2"):
        m.next(params, jnp.ones((3, tiny_cfg.latent_dim)), jnp.ones((3, 3)))


def test_multitask_model_refuses_a_missing_task(tiny_multitask_cfg, key):
    m = WorldModel(tiny_multitask_cfg)
    with pytest.raises(ValueError, match="task index"):
        m.encode(m.init(key), jnp.ones((2, tiny_multitask_cfg.obs_dim)))


def test_dropout_drops_at_its_rate_independently_and_stays_unbiased():
    from tdmpc2_jax.networks import Dropout

    layer, x = Dropout(0.1), jnp.ones((400, 500))
    apply = lambda k: layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(k)})
    a, b = np.asarray(apply(0)), np.asarray(apply(1))
    dropped_a, dropped_b = a == 0, b == 0
    # 200k draws: the standard error of a rate is about 0.0007
    assert abs(dropped_a.mean() - 0.1) < 0.004 and abs(dropped_b.mean() - 0.1) < 0.004
    np.testing.assert_allclose(a[~dropped_a], 1 / 0.9, rtol=1e-6)
    assert abs(a.mean() - 1.0) < 0.005
    # masks of different keys and of neighbouring elements are independent
    assert abs((dropped_a & dropped_b).mean() - 0.01) < 0.002
    assert abs((dropped_a[:, 1:] & dropped_a[:, :-1]).mean() - 0.01) < 0.002
    assert abs((dropped_a[1:] & dropped_a[:-1]).mean() - 0.01) < 0.002
    np.testing.assert_array_equal(apply(0), a)  # the same key, the same mask
    chex.assert_trees_all_equal(layer.apply({}, x, deterministic=True), x)
