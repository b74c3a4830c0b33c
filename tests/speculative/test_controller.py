"""The speculative controller: K=1 equals the planner, naive-K, the calibrated fallback, the
corrector cap, the batched step, and clear errors for bad settings."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdmpc2_jax import xla
from tdmpc2_jax.planner import init_plan_state, plan
from tdmpc2_jax.speculative.controller import SpecSettings, Speculator, calibrate_tau
from tdmpc2_jax.speculative.correctors import Corrector, CorrectorSpec

from speculative_helpers import observations, run_steps


@pytest.mark.parametrize("eval_mode", [True, False])
@pytest.mark.slow
def test_k1_reproduces_the_planner_actions_exactly(model, params, eval_mode):
    obs = observations(6)
    t0 = [True, False, False, True, False, False]
    planner = xla.jit(lambda p, o, s, k, t: plan(model, p, o, s, k, t, eval_mode=eval_mode))
    state, expected = init_plan_state(3, 1), []
    for t, key in enumerate(jax.random.split(jax.random.key(2), 6)):
        result, state = planner(params, obs[t], state, key, jnp.asarray(t0[t]))
        expected.append(result.action)
    speculator = Speculator(model, SpecSettings(horizon_k=1), eval_mode=eval_mode)
    actions, infos = run_steps(speculator, params, obs, t0)
    chex.assert_trees_all_equal(actions, jnp.stack(expected))
    assert bool(jnp.all(infos.replanned))


@pytest.mark.slow
def test_naive_k_calls_the_planner_once_every_k_steps_and_executes_the_plan(model, params):
    obs = observations(8)
    t0 = [True] + [False] * 7
    speculator = Speculator(model, SpecSettings(horizon_k=3))
    actions, infos = run_steps(speculator, params, obs, t0)
    np.testing.assert_array_equal(np.asarray(infos.replanned), [1, 0, 0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(np.asarray(infos.k), [3, 1, 2, 3, 1, 2, 3, 1])
    assert int(infos.replanned.sum()) == 3  # planner calls
    # the reused actions are the plan's mean for steps 1 and 2
    result, _ = plan(model, params, obs[0], init_plan_state(3, 1), jax.random.split(jax.random.key(2), 8)[0],
                     jnp.asarray(True), eval_mode=True)
    np.testing.assert_allclose(np.asarray(actions[1:3]), np.asarray(result.mean[1:3]), rtol=1e-6)
    # a new episode replans at once
    t0 = [True, False, True, False, False, False, False, False]
    _, infos = run_steps(speculator, params, obs, t0)
    np.testing.assert_array_equal(np.asarray(infos.replanned), [1, 0, 1, 0, 0, 1, 0, 0])


@pytest.mark.slow
def test_the_fallback_fires_exactly_when_the_mismatch_exceeds_tau(model, params):
    obs = observations(30, seed=5)
    t0 = [True] + [False] * 29
    _, naive = run_steps(Speculator(model, SpecSettings(horizon_k=4)), params, obs, t0)
    tau = calibrate_tau(naive.k, naive.mismatch, 4, quantile=0.5)
    assert np.isinf(tau[0]) and np.all(np.isfinite(tau[1:]))
    _, infos = run_steps(Speculator(model, SpecSettings(horizon_k=4, fallback=True), tau=tau), params, obs, t0)
    k, e = np.asarray(infos.k), np.asarray(infos.mismatch)
    inside = (k >= 1) & (k < 4)
    expected_fallback = inside & (e > np.asarray(tau)[np.minimum(k, 3)])
    np.testing.assert_array_equal(np.asarray(infos.fallback), expected_fallback)
    np.testing.assert_array_equal(np.asarray(infos.replanned), expected_fallback | ~inside)
    assert expected_fallback.any() and (inside & ~expected_fallback).any()


@pytest.mark.slow
def test_a_corrector_cap_replans_when_the_correction_is_too_large(model, params):
    spec = CorrectorSpec(kind="mlp", latent_dim=16, action_dim=1, max_k=3, hidden=8)
    corrector = Corrector(spec)
    moved = jax.tree.map(lambda p: p + 1.0, corrector.init(jax.random.key(0)))
    obs, t0 = observations(6), [True] + [False] * 5
    settings = SpecSettings(horizon_k=3, corrector=True, delta_cap=1e-3)
    _, infos = run_steps(Speculator(model, settings, corrector=corrector), params, obs, t0, moved)
    assert bool(jnp.all(infos.replanned))  # every correction is above the cap
    identity = corrector.init(jax.random.key(0))
    _, infos = run_steps(Speculator(model, settings, corrector=corrector), params, obs, t0, identity)
    np.testing.assert_array_equal(np.asarray(infos.replanned), [1, 0, 0, 1, 0, 0])


@pytest.mark.slow
def test_the_critic_check_takes_a_correction_only_where_the_critic_prefers_it(model, params):
    spec = CorrectorSpec(kind="mlp", latent_dim=16, action_dim=1, max_k=3, hidden=8)
    corrector = Corrector(spec)
    moved = jax.tree.map(lambda p: p + 0.3, corrector.init(jax.random.key(0)))
    obs, t0 = observations(9), [True] + [False] * 8
    run = lambda settings: run_steps(Speculator(model, settings, corrector=corrector), params, obs, t0, moved)
    stale, _ = run(SpecSettings(horizon_k=3))
    corrected, _ = run(SpecSettings(horizon_k=3, corrector=True))
    checked, infos = run(SpecSettings(horizon_k=3, corrector=True, critic_check=True))
    np.testing.assert_array_equal(np.asarray(infos.replanned), [1, 0, 0] * 3)  # the same plans in all three runs
    value = lambda o, a: float(jnp.mean(model.q_values(params["qs"], model.encode(params, o), a, params=params)))
    reused = [t for t in range(9) if t % 3]
    for t in reused:
        prefers = value(obs[t], corrected[t]) >= value(obs[t], stale[t])
        np.testing.assert_array_equal(checked[t], corrected[t] if prefers else stale[t])
    assert all(not np.allclose(corrected[t], stale[t]) for t in reused)  # every reused step has a choice to make


@pytest.mark.slow
def test_a_batch_solve_gives_every_env_a_fresh_plan_unless_refresh_is_off(model, params):
    obs, keys = observations(2, seed=7), jax.random.split(jax.random.key(8), 2)
    actions, ks = {}, {}
    for refresh in (True, False):
        speculator = Speculator(model, SpecSettings(horizon_k=3, batch_refresh=refresh))
        step = xla.jit(speculator.step_batch)
        states = jax.tree.map(lambda x: jnp.stack([x, x]), speculator.init_state())
        _, states, first = step(params, None, states, obs, keys, jnp.asarray([True, True]))
        # env 0 starts a new episode (it must plan); env 1 is one step into its plan
        action, states, info = step(params, None, states, obs + 0.1, keys, jnp.asarray([True, False]))
        np.testing.assert_array_equal(np.asarray(first.replanned), [True, True])
        np.testing.assert_array_equal(np.asarray(info.replanned), [True, refresh])
        actions[refresh], ks[refresh] = np.asarray(action), np.asarray(states.buffer.k)
    np.testing.assert_array_equal(ks[True], [1, 1])
    np.testing.assert_array_equal(ks[False], [1, 2])
    np.testing.assert_array_equal(actions[True][0], actions[False][0])
    assert not np.allclose(actions[True][1], actions[False][1])


def test_bad_settings_get_clear_messages(model):
    with pytest.raises(ValueError, match="K=6 is larger than the planning horizon H=3"):
        Speculator(model, SpecSettings(horizon_k=6, extension="none"))
    with pytest.raises(ValueError, match="run calibrate first"):
        Speculator(model, SpecSettings(horizon_k=3, fallback=True))
    other = Corrector(CorrectorSpec(latent_dim=32, action_dim=1, max_k=5))
    with pytest.raises(ValueError, match="corrector is for latent 32"):
        Speculator(model, SpecSettings(horizon_k=3, corrector=True), corrector=other)
    Speculator(model, SpecSettings(horizon_k=6, extension="plan"))  # plans with horizon 6


@pytest.mark.slow
def test_the_policy_mismatch_compares_the_priors_action_with_the_planned_one(model, params):
    obs = observations(12, seed=5)
    t0 = [True] + [False] * 11
    _, naive = run_steps(Speculator(model, SpecSettings(horizon_k=4, mismatch="policy")), params, obs, t0)
    tau = calibrate_tau(naive.k, naive.mismatch, 4, quantile=0.5)
    speculator = Speculator(model, SpecSettings(horizon_k=4, fallback=True, mismatch="policy"), tau=tau)
    step, state = xla.jit(speculator.step), speculator.init_state()
    fired = []
    for t, key in enumerate(jax.random.split(jax.random.key(2), 12)):
        before = state.buffer
        _, state, info = step(params, None, state, obs[t], key, jnp.asarray(t0[t]))
        k = int(info.k)
        if 1 <= k < 4:
            prior = model.pi(params, model.encode(params, obs[t]), jnp.zeros(1)).action
            expected = float(jnp.linalg.norm(prior - before.actions[k]))
            np.testing.assert_allclose(float(info.mismatch), expected, rtol=1e-5, atol=1e-7)
            assert bool(info.fallback) == (expected > float(tau[k]))
            fired.append(bool(info.fallback))
    assert any(fired) and not all(fired)  # tau is the median of the naive run's mismatches
    with pytest.raises(ValueError, match="mismatch must be one of"):
        Speculator(model, SpecSettings(horizon_k=2, mismatch="value"))
