import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdmpc2_jax import ops
from tdmpc2_jax.config import make_config
from tdmpc2_jax.planner import (estimate_value, init_plan_state, make_planner, plan, rollout, terminal_value,
                                warm_start)
from tdmpc2_jax.world_model import WorldModel

TARGETS = jnp.array([[0.5, -0.3], [-0.8, 0.2], [0.1, 0.9]])


class TrackingModel:
    """A hand-built world model: the latent counts time, reward = -5 |a - TARGETS[t]|^2, Q = 0.

    The best action sequence is TARGETS itself.
    """

    def __init__(self, cfg):
        self.cfg = cfg

    def encode(self, params, obs, task=None):
        return obs

    def encode_observation(self, params, obs, key, task=None):
        return obs

    def pi(self, params, z, eps, task=None):
        action = jnp.tanh(eps)
        return ops.SquashedGaussian(action, action, action, action[..., 0], action[..., 0])

    def next(self, params, z, a, task=None):
        return z + 1.0

    def step(self, params, z, a, task=None):
        t = jnp.clip(z[..., 0].astype(jnp.int32), 0, TARGETS.shape[0] - 1)
        return -5.0 * jnp.sum(jnp.square(a - TARGETS[t]), axis=-1), z + 1.0

    def step_shared(self, params, z, a, task=None):
        return self.step(params, jnp.broadcast_to(z, a.shape[:-1] + z.shape), a)

    def q_pair(self, qs, z, a, pair, task=None, *, reduce, params=None):
        return jnp.zeros(z.shape[:-1])

    def action_mask(self, task):
        return jnp.ones((self.cfg.action_dim,))

    def discount(self, task):
        return jnp.float32(0.99)


@pytest.fixture
def tracking():
    cfg = make_config(dict(obs_dim=1, action_dim=2, latent_dim=8, horizon=3, iterations=16, num_samples=256,
                           num_pi_trajs=16, num_elites=32, temperature=5.0))
    return TrackingModel(cfg)


def test_mppi_finds_the_known_best_action_sequence(tracking):
    result, state = jax.jit(lambda k: plan(tracking, {"qs": {}}, jnp.zeros((1,)), init_plan_state(3, 2), k,
                                           jnp.array(True), eval_mode=True))(jax.random.key(0))
    np.testing.assert_allclose(result.mean, TARGETS, atol=0.05)
    np.testing.assert_allclose(result.action, TARGETS[0], atol=0.1)
    np.testing.assert_allclose(result.sequence, TARGETS, atol=0.15)
    chex.assert_trees_all_equal(state.mean, result.mean)
    assert bool(jnp.all(result.std <= 0.5)) and bool(jnp.all(result.std >= tracking.cfg.min_std))


def test_warm_start_shifts_the_previous_mean_and_resets_at_episode_start():
    prev = jnp.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(warm_start(prev, jnp.array(False)), [[2, 3], [4, 5], [0, 0]])
    np.testing.assert_array_equal(warm_start(prev, jnp.array(True)), jnp.zeros((3, 2)))


def test_warm_start_reaches_the_solve(tracking):
    """With no iterations the plan's mean is the shifted warm start."""
    cfg = tracking.cfg.replace(iterations=0)
    model = TrackingModel(cfg)
    prev = init_plan_state(3, 2)._replace(mean=jnp.ones((3, 2)) * 0.3)
    result, _ = plan(model, {"qs": {}}, jnp.zeros((1,)), prev, jax.random.key(1), jnp.array(False), eval_mode=True)
    np.testing.assert_allclose(result.mean, [[0.3, 0.3], [0.3, 0.3], [0.0, 0.0]])


@pytest.fixture
def tiny_model(tiny_cfg):
    model = WorldModel(tiny_cfg)
    params = model.init(jax.random.key(0))
    # Perturb so reward and Q heads are not identically zero.
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    params = jax.tree.unflatten(tree, [p + 0.3 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
    return model, params


@pytest.mark.slow
def test_actions_stay_in_bounds_and_the_plan_is_deterministic(tiny_model):
    model, params = tiny_model
    cfg = model.cfg
    planner = make_planner(model, eval_mode=False)
    obs = 5.0 * jnp.ones((cfg.obs_dim,))
    state = init_plan_state(cfg.horizon, cfg.action_dim)
    actions = [planner(params, obs, state, jax.random.key(i), jnp.array(True))[0].action for i in range(10)]
    assert all(bool(jnp.all(jnp.abs(a) <= 1.0)) for a in actions)
    again = planner(params, obs, state, jax.random.key(3), jnp.array(True))[0]
    chex.assert_trees_all_equal(again.action, actions[3])
    chex.assert_shape(again.mean, (cfg.horizon, cfg.action_dim))
    chex.assert_shape(again.z, (cfg.latent_dim,))


@pytest.mark.slow
def test_vmapped_planning_equals_planning_each_observation(tiny_model):
    model, params = tiny_model
    cfg = model.cfg
    n = 3
    obs = jax.random.normal(jax.random.key(2), (n, cfg.obs_dim))
    states = init_plan_state(cfg.horizon, cfg.action_dim)._replace(
        mean=jax.random.uniform(jax.random.key(3), (n, cfg.horizon, cfg.action_dim), minval=-1, maxval=1))
    keys = jax.random.split(jax.random.key(4), n)
    t0 = jnp.array([True, False, False])
    batched, next_states = make_planner(model, eval_mode=True, batched=True)(params, obs, states, keys, t0)
    single = make_planner(model, eval_mode=True)
    for i in range(n):
        one, one_state = single(params, obs[i], jax.tree.map(lambda x: x[i], states), keys[i], t0[i])
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], batched), one, rtol=1e-5, atol=1e-6)
        chex.assert_trees_all_close(next_states.mean[i], one_state.mean, rtol=1e-5, atol=1e-6)


def test_shared_start_rollout_gives_the_official_value_estimate(tiny_model):
    model, params = tiny_model
    cfg = model.cfg
    z = model.encode(params, jnp.ones((cfg.obs_dim,)))
    actions = jax.random.uniform(jax.random.key(5), (cfg.horizon, 16, cfg.action_dim), minval=-1, maxval=1)
    eps, pair = jax.random.normal(jax.random.key(6), (16, cfg.action_dim)), jnp.array([2, 0])
    official = estimate_value(model, params, jnp.broadcast_to(z, (16, z.shape[0])), actions, eps, pair)
    returns, z_h, discount, alive = rollout(model, params, z, actions, shared_start=True)
    ours = returns + discount * alive * terminal_value(model, params, z_h, eps, pair)
    np.testing.assert_allclose(ours, official, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(discount, 0.99 ** cfg.horizon, rtol=1e-6)


@pytest.mark.slow
def test_multitask_plans_leave_unused_action_dims_at_zero(tiny_multitask_cfg):
    model = WorldModel(tiny_multitask_cfg)
    params = model.init(jax.random.key(0))
    planner = make_planner(model, eval_mode=False)
    state = init_plan_state(tiny_multitask_cfg.horizon, tiny_multitask_cfg.action_dim)
    result, _ = planner(params, jnp.ones((6,)), state, jax.random.key(1), jnp.array(True), jnp.array(1))
    np.testing.assert_array_equal(result.action[1:], 0.0)
    np.testing.assert_array_equal(result.mean[:, 1:], 0.0)


def test_program_size_does_not_grow_with_iterations_or_horizon(tiny_cfg):
    def size(**changes):
        cfg = tiny_cfg.replace(**changes)
        model = WorldModel(cfg)
        params = jax.eval_shape(model.init, jax.random.key(0))
        state = init_plan_state(cfg.horizon, cfg.action_dim)
        jaxpr = jax.make_jaxpr(lambda p, k: plan(model, p, jnp.zeros((cfg.obs_dim,)), state, k, jnp.array(False),
                                                 eval_mode=True))(params, jax.random.key(0))
        return len(str(jaxpr))

    # equal up to the digits of the constants themselves
    assert abs(size(iterations=2) - size(iterations=12)) < 10
    assert abs(size(horizon=3) - size(horizon=9)) < 10


def test_a_batch_given_to_the_single_planner_is_a_clear_error(tiny_model):
    model, params = tiny_model
    state = init_plan_state(model.cfg.horizon, model.cfg.action_dim)
    with pytest.raises(ValueError, match="plan_batch plans for a batch"):
        plan(model, params, jnp.ones((4, model.cfg.obs_dim)), state, jax.random.key(0), jnp.array(True),
             eval_mode=True)


def test_a_warm_start_of_another_horizon_is_a_clear_error(tiny_model):
    model, params = tiny_model
    state = init_plan_state(model.cfg.horizon + 1, model.cfg.action_dim)
    with pytest.raises(ValueError, match=r"mean must have shape \(horizon, action_dim\)"):
        plan(model, params, jnp.ones((model.cfg.obs_dim,)), state, jax.random.key(0), jnp.array(True),
             eval_mode=True)


def test_without_mpc_the_policy_prior_acts(tiny_cfg):
    """mpc=False (the official switch): the prior's sample when training, its mean in eval mode."""
    model = WorldModel(tiny_cfg.replace(mpc=False))
    params = model.init(jax.random.key(0))
    obs = jnp.linspace(-1.0, 1.0, tiny_cfg.obs_dim)
    state = init_plan_state(tiny_cfg.horizon, tiny_cfg.action_dim)._replace(mean=jnp.full((3, 2), 0.5))
    z = model.encode(params, obs)
    result, new_state = plan(model, params, obs, state, jax.random.key(1), jnp.asarray(False), eval_mode=True)
    np.testing.assert_allclose(np.asarray(result.action), np.asarray(model.pi(params, z, jnp.zeros(2)).mean),
                               rtol=1e-6)
    chex.assert_trees_all_equal(new_state, state)  # the warm start is untouched
    sampled, _ = plan(model, params, obs, state, jax.random.key(1), jnp.asarray(False), eval_mode=False)
    eps = jax.random.normal(jax.random.key(1), (2,))
    np.testing.assert_allclose(np.asarray(sampled.action), np.asarray(model.pi(params, z, eps).action), rtol=1e-6)
