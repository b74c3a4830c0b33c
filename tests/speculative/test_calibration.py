"""Calibration: full replanning measures each plan's prediction error, and tau_k is its per-k quantile."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdmpc2_jax import xla
from tdmpc2_jax.speculative.controller import SpecSettings, Speculator, calibrate_tau

from speculative_helpers import observations, run_steps


@pytest.mark.slow
def test_watching_full_replanning_measures_each_plans_prediction_error(model, params):
    obs = observations(8, seed=9)
    t0 = [True, False, False, False, True, False, False, False]  # a new episode at step 4
    plain, _ = run_steps(Speculator(model, SpecSettings(horizon_k=1)), params, obs, t0)
    speculator = Speculator(model, SpecSettings(horizon_k=3))
    watch, state = xla.jit(speculator.calibration_step), speculator.init_calibration_state()
    actions, ks, errors, policy_errors, predicted, planned = [], [], [], [], [], []
    for t, key in enumerate(jax.random.split(jax.random.key(2), 8)):  # run_steps' keys
        action, state, checks = watch(params, state, obs[t], key, jnp.asarray(t0[t]))
        actions.append(action)
        ks.append(checks.k)
        errors.append(checks.mismatch)
        policy_errors.append(checks.policy_mismatch)
        predicted.append(state.predictions[0])  # [K, L] of the plan made at t
        planned.append(state.planned[0])  # [K, A]
    np.testing.assert_allclose(np.stack(actions), plain, atol=1e-5)  # the full planner's actions
    ks, errors = np.stack(ks), np.stack(errors)
    np.testing.assert_array_equal(ks, [[-1, -1], [1, -1], [1, 2], [1, 2], [-1, -1], [1, -1], [1, 2], [1, 2]])
    z = np.asarray(jax.vmap(lambda o: model.encode(params, o))(obs))
    for t, j in zip(*np.nonzero(ks > 0)):
        k = j + 1
        np.testing.assert_allclose(errors[t, j], np.linalg.norm(z[t] - np.asarray(predicted[t - k][k])), rtol=1e-5)
        prior = np.asarray(model.pi(params, z[t], jnp.zeros(1)).action)
        np.testing.assert_allclose(policy_errors[t][j], np.linalg.norm(prior - np.asarray(planned[t - k][k])),
                                   rtol=1e-5, atol=1e-7)
    tau = calibrate_tau(ks, errors, 3, quantile=1.0)
    np.testing.assert_allclose(tau[1:], [errors[ks == 1].max(), errors[ks == 2].max()], rtol=1e-6)


def test_calibrated_tau_is_the_per_k_quantile():
    k = jnp.asarray([1, 2, 1, 2, 1, 0, 3])
    e = jnp.asarray([1.0, 10.0, 2.0, 20.0, 3.0, 99.0, 5.0])
    tau = calibrate_tau(k, e, 4, quantile=0.5)
    np.testing.assert_allclose(np.asarray(tau), [np.inf, 2.0, 15.0, 5.0])
    assert np.isinf(calibrate_tau(k, e, 5)[4])  # never observed: never falls back


def test_thresholds_are_saved_per_task_backend_k_and_mismatch(tmp_path):
    from tdmpc2_jax.speculative.calibration import read_calibration, write_calibration

    (tmp_path / "checkpoints").mkdir()
    checkpoint = str(tmp_path / "checkpoints")
    write_calibration(checkpoint, "walker-walk", "host", 3, "latent", np.asarray([np.inf, 0.1, 0.2]), 0.95, 16, 7919)
    write_calibration(checkpoint, "walker-walk", "host", 3, "policy", np.asarray([np.inf, 0.3, 0.4]), 0.95, 16, 7919)
    write_calibration(checkpoint, "walker-walk", "mjx", 3, "latent", np.asarray([np.inf, 0.7, 0.8]), 0.95, 16, 7919)
    write_calibration(checkpoint, "cheetah-run", "host", 2, "latent", np.asarray([np.inf, 0.5]), 0.9, 4, 7919)
    assert read_calibration(checkpoint, "walker-walk", "host") == {(3, "latent"): [np.inf, 0.1, 0.2],
                                                                   (3, "policy"): [np.inf, 0.3, 0.4]}
    assert read_calibration(checkpoint, "walker-walk", "mjx") == {(3, "latent"): [np.inf, 0.7, 0.8]}
    assert read_calibration(checkpoint, "cheetah-run", "host") == {(2, "latent"): [np.inf, 0.5]}
    assert read_calibration(checkpoint, "cheetah-run", "mjx") == {}
    assert read_calibration(checkpoint, "hopper-hop", "host") == {}
    with pytest.raises(ValueError, match="backend host or mjx"):
        read_calibration(checkpoint, "walker-walk", "gpu")
    with open(tmp_path / "checkpoints" / "speculative_calibration.json") as f:
        assert set(json.load(f)["walker-walk@host"]) == {"3", "3:policy"}


def test_calibration_episodes_start_from_other_states_than_the_evaluation_s():
    import tiny
    from tdmpc2_jax.environments import make_env
    from tdmpc2_jax.run_record import eval_seed, resolve
    from tdmpc2_jax.speculative.protocol import calibration_seed

    run = resolve(tiny.load_config("dmc.py", "cartpole-balance"))
    evaluation, calibration = make_env(run, eval_seed(0)), make_env(run, eval_seed(calibration_seed(0)))
    starts = lambda env: [env.reset() for _ in range(4)]
    assert not any(np.allclose(a, b) for a in starts(evaluation) for b in starts(calibration))


def test_an_evaluation_uses_only_thresholds_from_its_own_calibration_seed(tmp_path):
    from tdmpc2_jax.speculative.calibration import calibration_path, read_calibration, read_entries, write_calibration
    from tdmpc2_jax.speculative.modes import protocol_modes
    from tdmpc2_jax.speculative.protocol import calibration_seed, finished_modes, stale_words

    checkpoint = str(tmp_path)
    write_calibration(checkpoint, "walker-walk", "host", 2, "latent", np.asarray([np.inf, 0.1]), 0.95, 16, 7919)
    write_calibration(checkpoint, "walker-walk", "host", 3, "latent", np.asarray([np.inf, 0.1, 0.2]), 0.95, 16, 7920)
    table = json.loads(open(calibration_path(checkpoint)).read())
    del table["walker-walk@host"]["3"]["seed"]  # as written before the seed was recorded
    table["walker-walk@host"]["4"] = dict(tau=[np.inf, 0.1, 0.2, 0.3], quantile=0.95, episodes=16, seed=0)
    open(calibration_path(checkpoint), "w").write(json.dumps(table))
    assert read_calibration(checkpoint, "walker-walk", "host", calibration_seed(0)) == {(2, "latent"): [np.inf, 0.1]}
    assert set(read_calibration(checkpoint, "walker-walk", "host")) == {(2, "latent"), (3, "latent"), (4, "latent")}
    entries = read_entries(checkpoint, "walker-walk", "host")
    assert "records no seed" in stale_words(entries[3, "latent"])
    assert stale_words(entries[4, "latent"]) == " (the one on file was made on seed 0)" and stale_words(None) == ""
    # --resume keeps every row but the fallback rows calibrated elsewhere (or before seeds were recorded)
    modes = protocol_modes([2], ["mlp"], ("latent",))
    rows = [dict(mode="full"), dict(mode="naive-2"), dict(mode="fallback-2", tau_seed="7919"),
            dict(mode="mlp-2"), dict(mode="mlp-2+fallback")]
    assert finished_modes(rows, modes, 7919) == {"full", "naive-2", "fallback-2", "mlp-2"}
    assert finished_modes(rows, modes, 7920) == {"full", "naive-2", "mlp-2"}
