"""The MJX-against-host measuring instrument (experiments/mjx_fidelity.py): model comparison, the
observation layout by value, the dynamic check from a copied state."""
import copy
import math

import numpy as np
import pytest

from experiments import mjx_fidelity as fidelity


@pytest.fixture(scope="module")
def cartpole():
    return fidelity.load_pair("cartpole-balance")


def test_every_playground_dm_control_task_is_listed_under_its_dash_name():
    tasks = fidelity.dm_control_tasks()
    assert len(tasks) == 25 and len(set(tasks)) == 25
    assert {"walker-walk", "cheetah-run", "cartpole-balance", "cup-catch", "pointmass-easy"} <= set(tasks)
    assert not any(t.split("-")[0] in ("dog", "quadruped", "manipulator") for t in tasks)


def test_a_model_compared_with_itself_has_no_differences_and_a_changed_parameter_is_reported(cartpole):
    _, mjx = cartpole
    model = mjx.playground_env.mj_model
    assert fidelity.compare_models(model, model, "src", "ts") == []
    changed = copy.copy(model)
    hinge = changed.joint("hinge_1").dofadr[0]
    changed.dof_damping[hinge] += 0.5
    changed.opt.timestep = 0.004
    found = {d.what: d for d in fidelity.compare_models(model, changed, "src", "ts")}
    assert set(found) == {"dof_damping", "opt.timestep"}
    assert found["dof_damping"].size == pytest.approx(0.5) and found["dof_damping"].host.startswith("hinge_1/0:")
    assert found["opt.timestep"].size == pytest.approx(0.006) and found["opt.timestep"].source == "ts"


def test_cartpole_protocol_reads_both_timesteps_and_the_integrators_differ(cartpole):
    host, mjx = cartpole
    figures = fidelity.protocol(host, mjx)
    assert figures["host_timestep"] == host._env.physics.timestep() == 0.01
    assert figures["mjx_timestep"] == mjx.playground_env.sim_dt == 0.01
    assert figures["host_physics_steps"] == figures["mjx_physics_steps"] == 2
    options = {d.what: d for d in fidelity.compare_options(fidelity.host_model(host), mjx.playground_env.mj_model, "")}
    assert (options["opt.integrator"].host, options["opt.integrator"].mjx) == ("mjINT_RK4", "mjINT_EULER")


def test_layout_matching_finds_moved_and_missing_observation_keys():
    host = {"a": np.array([1.0, 2.0]), "b": np.array([3.0]), "c": np.array([4.0, 5.0])}
    layout = fidelity.match_layout(host, np.array([4.0, 5.0, 1.0, 2.0, 9.0]))
    assert [(e["key"], e["host"], e["mjx"]) for e in layout] == [("a", (0, 2), (2, 4)), ("b", (2, 3), None),
                                                                  ("c", (3, 5), (0, 2))]
    assert fidelity.describe_layout(layout, 5) == ("differs", ["b"], [4])
    same = fidelity.match_layout(host, np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert fidelity.describe_layout(same, 5) == ("same", [], [])


@pytest.mark.slow
def test_cartpole_static_comparison_and_a_short_dynamic_check_run_from_the_same_state(cartpole):
    host, mjx = cartpole
    static = fidelity.static_comparison(host, mjx)
    assert static["obs_layout"] == "same" and static["reward_terms"]
    assert "opt.integrator" in {d.what for d in static["differences"]}
    first = fidelity.dynamic_check(host, mjx, static["layout"], steps=3)
    second = fidelity.dynamic_check(host, mjx, static["layout"], steps=3, seed=1)
    assert set(first) == set(second) == {"steps", "first_divergent_step", "first_divergent_entry",
                                         "step1_obs_diff_max", "obs_diff_mean", "obs_diff_max", "reward_diff_mean",
                                         "reward_diff_max", "host_return", "mjx_return",
                                         "numerics_first_divergent_step", "numerics_step1_diff_max",
                                         "numerics_diff_max"}
    for result in (first, second):
        assert all(math.isfinite(v) for k, v in result.items() if k.endswith(("_mean", "_max", "_return")))
        assert result["first_divergent_step"] != 0  # the copied start state observes as the host's
        assert 0 < result["host_return"] <= 3 * 2 and 0 < result["mjx_return"] <= 3 * 2
        # MJX against MuJoCo's C library on Playground's own model: float32 noise only
        assert result["numerics_first_divergent_step"] is None and result["numerics_diff_max"] < 1e-4


def test_agent_flags_name_a_checked_task_and_an_existing_checkpoint(tmp_path):
    checkpoint = tmp_path / "model"
    checkpoint.mkdir()
    assert fidelity.parse_agents([f"walker-walk={checkpoint}"], ["walker-walk"]) == {"walker-walk": str(checkpoint)}
    with pytest.raises(ValueError, match="give TASK=CHECKPOINT"):
        fidelity.parse_agents([f"cheetah-run={checkpoint}"], ["walker-walk"])
    with pytest.raises(ValueError, match="no checkpoint at"):
        fidelity.parse_agents([f"walker-walk={tmp_path / 'missing'}"], ["walker-walk"])


def test_a_host_rollout_records_the_actions_its_policy_took_on_each_observation():
    class Host:
        def step(self, action):
            self.last = np.asarray(action)
            return type("Step", (), dict(obs=np.array([action.sum(), 1.0]), reward=float(action[0])))

    seen = []

    def policy(obs, t):
        seen.append((obs.copy(), t))
        return np.array([t, 2.0 * t], np.float32)

    obs, rewards, actions = fidelity.rollout_host(Host(), np.zeros(2), policy, 3)
    assert [t for _, t in seen] == [0, 1, 2]
    np.testing.assert_array_equal(seen[2][0], [3.0, 1.0])  # step 1's observation: 1 + 2
    np.testing.assert_array_equal(actions, [[0, 0], [1, 2], [2, 4]])
    np.testing.assert_array_equal(rewards, [0, 1, 2])
    np.testing.assert_array_equal(obs[:, 0], [0, 3, 6])


def test_differences_are_owned_by_playground_the_adapter_or_mjx():
    assert fidelity.owner_of("Playground's model (walker.xml)") == "Playground"
    assert fidelity.owner_of("the adapter (tdmpc2_jax/envs/mjx.py) over ...") == "adapter"
    assert fidelity.owner_of("MJX's support, tdmpc2_jax/envs/mjx_dmc.py load_model (cartpole.xml)") == "MJX"


def test_the_adapter_keeps_float64_physics_only_in_a_float64_process():
    import jax
    import jax.numpy as jnp

    from tdmpc2_jax.envs.mjx import _strong

    with jax.enable_x64(True):
        assert _strong({"q": jnp.zeros(2, jnp.float64)})["q"].dtype == jnp.float64
    assert _strong({"q": np.zeros(2, np.float64)})["q"].dtype == jnp.float32


def test_a_host_field_of_another_size_is_copied_only_when_it_holds_nothing():
    assert fidelity.copied("qpos", np.ones(3), (3,))
    assert not fidelity.copied("xfrc_applied", np.zeros((4, 6)), (5, 6))
    with pytest.raises(ValueError, match=r"host xfrc_applied \(4, 6\) is nonzero and does not fit MJX's \(5, 6\)"):
        fidelity.copied("xfrc_applied", np.ones((4, 6)), (5, 6))


@pytest.mark.slow
def test_one_step_from_every_host_state_of_dm_controls_cartpole_stays_within_float32_noise():
    host, mjx = fidelity.load_pair("cartpole-swingup", variant="exact")
    layout = fidelity.measure_layout(host, mjx, seed=0)[0]
    result = fidelity.dynamic_check(host, mjx, layout, steps=5, onestep=fidelity.make_onestep(mjx))
    assert result["onestep_steps_beyond"] == 0 and 0 < result["onestep_obs_diff_max"] < 1e-4
    assert result["onestep_reward_diff_max"] < 1e-5


def test_the_speed_table_lists_every_file_with_its_command_and_machine_and_both_precisions(tmp_path):
    import json

    def row(dtype, steps_per_s):
        return dict(task="walker-walk-exact", variant="exact", dtype=dtype, num_envs=16, physics_steps_per_agent_step=20,
                    solver_iterations=100, env_steps_per_s=steps_per_s, first_call_s=30.0)

    (tmp_path / "speed.json").write_text(json.dumps(dict(rows=[row("float32", 91.2)])))
    (tmp_path / "speed_x64.json").write_text(json.dumps(dict(command="python -m benchmarks.mjx_exact_speed --x64",
                                                             machine="EPYC, 2 cores", rows=[row("float64", 40.4)])))
    lines = fidelity.speed_table(sorted(tmp_path.glob("speed*.json"))).splitlines()
    assert "[speed.json]" in lines[0] and "command not recorded" in lines[0]
    assert "`python -m benchmarks.mjx_exact_speed --x64`; EPYC, 2 cores" in lines[0]
    assert lines[-4:] == ["| walker-walk | exact | float32 | 16 | 20 | 100 | 91 | 30 |",
                          "| walker-walk | exact | float64 | 16 | 20 | 100 | 40 | 30 |", "",
                          "Float64 against float32, env steps/s: walker-walk exact at 16 envs 0.44x."]


def test_the_match_table_gives_the_steps_before_the_first_divergent_one_per_precision(tmp_path):
    rows = {"f32": [("walker-walk", "random", "9"), ("cheetah-run", "random", "53")],
            "f64": [("walker-walk", "random", "119"), ("cheetah-run", "random", "")]}
    for name, summary in rows.items():
        (tmp_path / name).mkdir()
        fidelity.write_csv(tmp_path / name / "summary.csv", [
            {**{c: "" for c in fidelity.SUMMARY_COLUMNS}, "task": t, "actions": a, "steps": 500, "first_divergent_step": f}
            for t, a, f in summary], fidelity.SUMMARY_COLUMNS)
    lines = fidelity.match_table({"float32": tmp_path / "f32", "float64": tmp_path / "f64"}).splitlines()
    assert lines[2:] == ["| walker-walk | random | 8 of 500 steps | 118 of 500 steps |",
                         "| cheetah-run | random | 52 of 500 steps | all 500 steps |"]
