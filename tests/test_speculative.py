"""Speculative execution: plan buffer, K=1 equals the planner, naive-K, calibrated fallback,
correctors (identity at init), the scan rollout and the batched step; the protocol on host MuJoCo."""
import csv
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdmpc2_jax import xla
from tdmpc2_jax.config import make_config
from tdmpc2_jax.envs.mjx import MJXEnv
from tdmpc2_jax.planner import init_plan_state, plan
from tdmpc2_jax.speculative import plan_buffer
from tdmpc2_jax.speculative.controller import SpecSettings, Speculator, calibrate_tau
from tdmpc2_jax.speculative.correctors import Corrector, CorrectorSpec, empty_history
from tdmpc2_jax.speculative.rollout import episode, episodes_batch
from tdmpc2_jax.world_model import WorldModel

from helpers import ROOT, SMALL, speculative_cli, tiny_agent
from toy_env import PointMass

CFG = dict(obs_dim=5, action_dim=1, enc_dim=16, mlp_dim=16, latent_dim=16, num_q=2, horizon=3, num_samples=16,
           num_pi_trajs=2, num_elites=4, iterations=2)


@pytest.fixture(scope="module")
def model():
    return WorldModel(make_config(CFG))


@pytest.fixture(scope="module")
def params(model):
    return model.init(jax.random.key(0))


def observations(n, seed=1):
    return jax.random.normal(jax.random.key(seed), (n, 5))


def run_steps(speculator, params, obs, t0, corrector_params=None, seed=2):
    """A Python loop of the jitted step over given observations: actions [T, A] and infos."""
    step = xla.jit(speculator.step)
    state, actions, infos = speculator.init_state(), [], []
    for t, key in enumerate(jax.random.split(jax.random.key(seed), len(obs))):
        action, state, info = step(params, corrector_params, state, obs[t], key, jnp.asarray(t0[t]))
        actions.append(action)
        infos.append(info)
    return jnp.stack(actions), jax.tree.map(lambda *x: jnp.stack(x), *infos)


@pytest.mark.parametrize("eval_mode", [True, False])
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


def test_watching_full_replanning_measures_each_plans_prediction_error(model, params):
    obs = observations(8, seed=9)
    t0 = [True, False, False, False, True, False, False, False]  # a new episode at step 4
    plain, _ = run_steps(Speculator(model, SpecSettings(horizon_k=1)), params, obs, t0)
    speculator = Speculator(model, SpecSettings(horizon_k=3))
    watch, state = xla.jit(speculator.calibration_step), speculator.init_calibration_state()
    actions, ks, errors, predicted = [], [], [], []
    for t, key in enumerate(jax.random.split(jax.random.key(2), 8)):  # run_steps' keys
        action, state, checks = watch(params, state, obs[t], key, jnp.asarray(t0[t]))
        actions.append(action)
        ks.append(checks.k)
        errors.append(checks.mismatch)
        predicted.append(state.predictions[0])  # [K, L] of the plan made at t
    np.testing.assert_allclose(np.stack(actions), plain, atol=1e-5)  # the full planner's actions
    ks, errors = np.stack(ks), np.stack(errors)
    np.testing.assert_array_equal(ks, [[-1, -1], [1, -1], [1, 2], [1, 2], [-1, -1], [1, -1], [1, 2], [1, 2]])
    z = np.asarray(jax.vmap(lambda o: model.encode(params, o))(obs))
    for t, j in zip(*np.nonzero(ks > 0)):
        k = j + 1
        np.testing.assert_allclose(errors[t, j], np.linalg.norm(z[t] - np.asarray(predicted[t - k][k])), rtol=1e-5)
    tau = calibrate_tau(ks, errors, 3, quantile=1.0)
    np.testing.assert_allclose(tau[1:], [errors[ks == 1].max(), errors[ks == 2].max()], rtol=1e-6)


def test_calibrated_tau_is_the_per_k_quantile():
    k = jnp.asarray([1, 2, 1, 2, 1, 0, 3])
    e = jnp.asarray([1.0, 10.0, 2.0, 20.0, 3.0, 99.0, 5.0])
    tau = calibrate_tau(k, e, 4, quantile=0.5)
    np.testing.assert_allclose(np.asarray(tau), [np.inf, 2.0, 15.0, 5.0])
    assert np.isinf(calibrate_tau(k, e, 5)[4])  # never observed: never falls back


def test_the_buffer_beyond_the_horizon_follows_the_prior_and_the_dynamics(model, params):
    result, _ = plan(model, params, observations(1)[0], init_plan_state(3, 1), jax.random.key(3), jnp.asarray(True),
                     eval_mode=False)
    buf = plan_buffer.build(model, params, result, 6, source="elite")
    chex.assert_shape((buf.actions, buf.latents, buf.std), ((6, 1), (6, 16), (6, 1)))
    np.testing.assert_array_equal(np.asarray(buf.actions[0]), np.asarray(result.action))
    np.testing.assert_allclose(np.asarray(buf.actions[1:3]), np.asarray(result.sequence[1:3]))
    prior = model.pi(params, buf.latents[3:], jnp.zeros((3, 1))).action
    np.testing.assert_allclose(np.asarray(buf.actions[3:]), np.asarray(prior), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(buf.latents[1:]), np.asarray(model.next(params, buf.latents[:-1], buf.actions[:-1])),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(buf.latents[0]), np.asarray(result.z))
    assert int(buf.k) == 1


@pytest.mark.parametrize("kind, history", [("mlp", 1), ("transformer", 4)])
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


def test_the_scan_rollout_equals_a_python_loop_and_the_batch_equals_each_env(model, params):
    env = MJXEnv("toy", episode_length=5, playground_env=PointMass())
    speculator = Speculator(model, SpecSettings(horizon_k=2))
    trace = xla.jit(lambda k: episode(env, speculator, params, None, k, 8))(jax.random.key(4))

    k_reset, k_steps = jax.random.split(jax.random.key(4))
    env_state, state, step = env.reset(k_reset), speculator.init_state(), xla.jit(speculator.step)
    rewards, replanned = [], []
    for k in jax.random.split(k_steps, 8):
        action, state, info = step(params, None, state, env_state.inner.obs, k, env_state.t == 0)
        env_state, out = env.step(env_state, action)
        rewards.append(out.reward)
        replanned.append(info.replanned)
    np.testing.assert_allclose(np.asarray(trace.reward), np.asarray(rewards), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(trace.info.replanned), np.asarray(replanned))
    np.testing.assert_array_equal(np.asarray(trace.info.replanned), [1, 0, 1, 0, 1, 1, 0, 1])  # reset after 5

    batch = xla.jit(lambda k: episodes_batch(env, speculator, params, None, k, 3, 8))(jax.random.key(5))
    chex.assert_shape(batch.reward, (8, 3))
    assert int(batch.info.replanned.sum()) == 3 * 5


def test_speculative_returns_on_a_terminating_task_stop_at_each_episode_end(model, params):
    from tdmpc2_jax.speculative.modes import run_mjx

    # starts are uniform in [-1, 1]: most episodes end at once, the rest within a few steps or never
    env = MJXEnv("toy", episode_length=8, playground_env=PointMass(terminates=True, limit=0.5))
    speculator = Speculator(model, SpecSettings(horizon_k=2))
    key = jax.random.key(9)
    result = run_mjx(env, speculator, params, None, key, episodes=6)
    rollout = xla.jit(lambda k: episodes_batch(env, speculator, params, None, k, 6, 8))(key)
    reward, ended = np.asarray(rollout.reward), np.asarray(rollout.ended)
    first_end = np.where(ended.any(0), ended.argmax(0), 7)
    expected = np.asarray([reward[: first_end[n] + 1, n].sum() for n in range(6)])
    np.testing.assert_allclose(result["returns"], expected, rtol=1e-6)
    assert (first_end < 7).sum() >= 3  # several episodes ended early; their later rewards are not counted
    assert np.all(reward.sum(0)[first_end < 7] > expected[first_end < 7])


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


def test_collected_tuples_train_a_corrector_that_moves_toward_the_teacher(model, params, tmp_path):
    from tdmpc2_jax.speculative import data, training

    env = MJXEnv("toy", episode_length=6, playground_env=PointMass())
    speculator = Speculator(model, SpecSettings(horizon_k=3), history=2)
    dataset = data.collect(env, speculator, params, None, jax.random.key(6), num_envs=4, steps=12)
    # per env: replans at steps 0, 3, 6 (new episode), 9 -> 8 reuse steps each
    chex.assert_shape((dataset.label, dataset.inputs.z_real, dataset.inputs.k), ((32, 1), (32, 2, 16), (32, 2)))
    assert set(np.asarray(dataset.inputs.k)[:, -1].tolist()) == {1, 2}
    data.save(str(tmp_path / "d.npz"), dataset, dict(task="toy", K=3))
    loaded, meta = data.load(str(tmp_path / "d.npz"))
    chex.assert_trees_all_equal(loaded, dataset)
    assert meta == dict(task="toy", K=3)

    newest = data.trim(loaded, 1)  # what an MLP corrector reads
    chex.assert_trees_all_equal(newest.inputs.z_real[:, 0], loaded.inputs.z_real[:, -1])
    chex.assert_shape(newest.inputs.k, (32, 1))
    with pytest.raises(ValueError, match="holds 2 steps of history per tuple, fewer than 3"):
        data.trim(loaded, 3)

    spec = CorrectorSpec(kind="transformer", latent_dim=16, action_dim=1, max_k=2, history=2, hidden=16, heads=2,
                         layers=1)
    corrector = Corrector(spec)
    result = training.fit(corrector, loaded, jax.random.key(7), epochs=40, batch_size=8, lr=3e-3, val_fraction=0.25,
                          patience=40, log=lambda _: None)
    assert result.train_loss[-1] < 0.5 * result.train_loss[0]
    training.save(str(tmp_path / "corrector"), result.params, spec, dict(task="toy", K=3))
    again, restored, _ = training.load(str(tmp_path / "corrector"), task="toy", latent_dim=16, horizon_k=3)
    chex.assert_trees_all_equal(restored, result.params)
    with pytest.raises(ValueError, match="trained for task 'toy', not 'cheetah-run'"):
        training.load(str(tmp_path / "corrector"), task="cheetah-run")
    with pytest.raises(ValueError, match="K up to 3, not 6"):
        training.load(str(tmp_path / "corrector"), horizon_k=6)


def test_the_protocol_runs_on_host_mujoco(tmp_path):
    agent = tiny_agent(tmp_path / "agent")
    out = speculative_cli("evaluate", f"--config={ROOT / 'configs' / 'dmc.py'}:cartpole-balance",
                          f"--checkpoint={agent}", "--k=2", "--episodes=1", f"--out={tmp_path / 'results'}",
                          "--calibrate", *SMALL)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "host MuJoCo" in (tmp_path / "results" / "results.md").read_text()
    with open(tmp_path / "results" / "results.csv") as f:
        rows = {r["mode"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["full", "naive-2", "fallback-2"]
    assert float(rows["naive-2"]["calls_per_step"]) == 0.5  # 10 steps, a plan every 2
    assert float(rows["fallback-2"]["calls_per_step"]) >= 0.5
    with open(tmp_path / "agent" / "speculative_calibration.json") as f:
        tau = json.load(f)["cartpole-balance"]["2"]["tau"]
    assert tau[0] == float("inf") and 0 < tau[1] < float("inf")  # from one 10-step episode of full replanning
