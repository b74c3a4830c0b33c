import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdmpc2_jax import xla
from tdmpc2_jax.agent import Agent
from tdmpc2_jax.types import Batch


def make_batch(cfg, key, batch_size=4, task=None):
    k1, k2, k3 = jax.random.split(key, 3)
    h = cfg.horizon
    return Batch(obs=jax.random.normal(k1, (h + 1, batch_size, cfg.obs_dim)),
                 action=jax.random.uniform(k2, (h, batch_size, cfg.action_dim), minval=-1, maxval=1),
                 reward=jax.random.uniform(k3, (h, batch_size)),
                 terminated=jnp.zeros((h, batch_size)), task=task)


@pytest.mark.slow
def test_update_returns_finite_metrics_and_moves_every_part(tiny_cfg, key):
    agent = Agent(tiny_cfg)
    state = agent.init(key)
    batch = make_batch(tiny_cfg, key)
    new, metrics = xla.jit(agent.update)(state, batch, jax.random.key(1))
    for name in ("consistency_loss", "reward_loss", "value_loss", "total_loss", "grad_norm", "pi_loss",
                 "pi_grad_norm", "pi_entropy", "pi_scaled_entropy", "pi_scale"):
        chex.assert_shape(metrics[name], ())
        assert np.isfinite(float(metrics[name])), name
    assert int(new.step) == 1
    chex.assert_trees_all_equal_shapes_and_dtypes(new.params, state.params)
    for part in ("encoder", "dynamics", "reward", "pi", "qs"):
        before, after = jax.tree.leaves(state.params[part]), jax.tree.leaves(new.params[part])
        assert any(not np.allclose(b, a) for b, a in zip(before, after)), part
    # target <- target + tau (online - target), with online the updated heads
    expect = jax.tree.map(lambda t, o: t + tiny_cfg.tau * (o - t), state.target_qs, new.params["qs"])
    chex.assert_trees_all_close(new.target_qs, expect, rtol=1e-6, atol=1e-8)


@pytest.mark.slow
def test_update_is_deterministic_for_a_key_and_equals_injected_draws(tiny_cfg, key):
    agent = Agent(tiny_cfg)
    state, batch, k = agent.init(key), make_batch(tiny_cfg, key), jax.random.key(3)
    a, _ = xla.jit(agent.update)(state, batch, k)
    b, _ = xla.jit(agent.update)(state, batch, k)
    c, _, _ = xla.jit(agent.update_with_draws)(state, batch, agent.sample_draws(k, 4))
    chex.assert_trees_all_equal(a, b)
    chex.assert_trees_all_close(a, c, rtol=1e-6)


@pytest.mark.slow
def test_vmapped_update_over_seeds_equals_separate_updates(tiny_cfg):
    agent = Agent(tiny_cfg)
    keys = jax.random.split(jax.random.key(7), 2)
    states = jax.vmap(agent.init)(keys)
    batches = jax.vmap(lambda k: make_batch(tiny_cfg, k))(keys)
    update_keys = jax.random.split(jax.random.key(8), 2)
    vmapped, _ = xla.jit(jax.vmap(agent.update))(states, batches, update_keys)
    for i in range(2):
        single, _ = xla.jit(agent.update)(jax.tree.map(lambda x: x[i], states), jax.tree.map(lambda x: x[i], batches),
                                          update_keys[i])
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], vmapped), single, rtol=2e-5, atol=1e-7)


@pytest.mark.slow
def test_repeated_updates_fit_a_fixed_batch(tiny_cfg, key):
    agent = Agent(tiny_cfg.replace(lr=3e-3))
    state, batch = agent.init(key), make_batch(tiny_cfg, key)
    update = xla.jit(agent.update)

    def total(state):
        _, metrics = update(state, batch, jax.random.key(0))
        return float(metrics["reward_loss"]), float(metrics["consistency_loss"])

    first = total(state)
    for i in range(60):
        state, _ = update(state, batch, jax.random.key(i))
    last = total(state)
    assert last[0] < 0.5 * first[0] and last[1] < first[1]


@pytest.mark.slow
def test_multitask_update_runs_and_keeps_masked_policy_dims_zero(tiny_multitask_cfg, key):
    agent = Agent(tiny_multitask_cfg)
    state = agent.init(key)
    batch = make_batch(tiny_multitask_cfg, key, task=jnp.array([0, 1, 0, 1]))
    new, metrics = xla.jit(agent.update)(state, batch, jax.random.key(1))
    assert np.isfinite(float(metrics["total_loss"]))
    assert not np.allclose(new.params["task_emb"], state.params["task_emb"])


def test_bad_batch_shapes_are_named(tiny_cfg, key):
    agent = Agent(tiny_cfg)
    batch = make_batch(tiny_cfg, key)._replace(reward=jnp.zeros((tiny_cfg.horizon, 4, 1)))
    with pytest.raises(ValueError, match=r"batch.reward must have shape \(3, 4\)"):
        agent.update(agent.init(key), batch, key)
