"""experiments/mjx_transfer.py: dm_control's walker height from an MJX state, the falls, the summary
statistics, the docs table, and a stopped run that resumes where it stopped."""
import csv

import numpy as np
import pytest

from experiments import mjx_transfer as mt


@pytest.fixture(scope="module")
def walker_pair():
    """(host dm_control walker after 30 random agent steps, Playground's walker model)."""
    import mujoco
    from dm_control import suite
    from mujoco_playground._src.dm_control_suite import walker

    host = suite.load("walker", "walk", task_kwargs={"random": 3})
    host.reset()
    spec, rng = host.action_spec(), np.random.default_rng(3)
    for _ in range(60):
        host.step(rng.uniform(spec.minimum, spec.maximum))
    model = mujoco.MjModel.from_xml_string(walker._XML_PATH.read_text(), walker.common.get_assets())
    return host, model


def copied_data(host, model):
    """An MJX state of `model` holding the host's joint positions, its kinematics not yet computed
    (as after mjx.step, whose kinematics are those of the positions before the step)."""
    import jax.numpy as jnp
    from mujoco import mjx

    data = mjx.make_data(mjx.put_model(model))
    return data.replace(qpos=jnp.asarray(host.physics.data.qpos, jnp.float32))


def test_torso_height_is_dm_controls_walker_height_on_a_copied_state(walker_pair):
    import jax
    from mujoco import mjx

    host, model = walker_pair
    torso = model.body("torso").id
    height = float(jax.jit(mt.torso_height, static_argnums=1)(mjx.put_model(model), torso, copied_data(host, model)))
    assert height == pytest.approx(float(host.physics.torso_height()), abs=1e-5)
    assert height == pytest.approx(float(host.task.get_observation(host.physics)["height"]), abs=1e-5)
    assert abs(height - 1.0) > 0.05  # the state is not one whose height is trivially at rest


class StandIn:
    """Playground's interface over one fixed state: its observation 0..23."""

    def __init__(self, model, data):
        from mujoco import mjx
        from mujoco_playground._src.mjx_env import State

        self.mj_model, self.mjx_model = model, mjx.put_model(model)
        self.observation_size, self.action_size = 24, 6
        self.state = State(data, np.arange(24, dtype=np.float32), np.float32(0), np.float32(0), {}, {})

    def reset(self, key):
        return self.state

    def step(self, state, ctrl):
        return self.state


def test_height_observation_replaces_entry_14_alone_with_the_torso_height(walker_pair):
    import jax

    host, model = walker_pair
    env = mt.HeightObservation(StandIn(model, copied_data(host, model)))
    for state in (jax.jit(env.reset)(None), jax.jit(env.step)(None, np.zeros(6))):
        obs = np.asarray(state.obs)
        expected = np.arange(24, dtype=np.float32)
        keep = np.arange(24) != mt.HEIGHT_ENTRY
        np.testing.assert_array_equal(obs[keep], expected[keep])
        assert obs[mt.HEIGHT_ENTRY] == pytest.approx(float(host.physics.torso_height()), abs=1e-5)


def test_dm_controls_solver_options_go_into_playgrounds_model(walker_pair):
    _, model = walker_pair

    class Env:
        mj_model = model

    env = Env()
    changed = mt.use_dm_control_solver(env, "walker")
    assert (model.opt.iterations, model.opt.ls_iterations, model.opt.disableflags) == (100, 50, 0)
    assert {c.split(":")[0] for c in changed} == {"iterations", "ls_iterations", "disableflags"}
    assert int(env._mjx_model.opt.iterations) == 100


def test_a_fall_is_the_first_step_below_half_the_stand_height_after_standing():
    n = mt.STOOD_STEPS
    start_drop = [1.3, 1.25, 0.9, 0.3]  # every episode starts with the torso above the ground, falling
    standing = [1.3] * n
    assert mt.fall_step(np.array(start_drop + [0.3] * 10)) is None  # never stood
    assert mt.fall_step(np.array(start_drop + standing + [1.1, 0.7, 0.5, 1.3])) == len(start_drop) + n + 2
    assert mt.fall_step(np.array(start_drop + standing + [0.9, 1.3])) is None  # stood, never fell
    assert mt.fall_step(np.array(start_drop + [1.3] * (n - 1) + [0.5])) is None  # not long enough to count


def episode(agent, variant, e, ret, fall=""):
    return dict(agent=agent, task="walker-walk", trained_on="host", evaluated_on="mjx", variant=variant, seed=0,
                episode=e, **{"return": ret}, length=500, fall_step=fall)


def test_summary_has_the_mean_the_population_std_a_bootstrap_interval_and_the_falls():
    rows = [episode("a", "playground", e, r, f) for e, (r, f) in enumerate(
        [(1.0, "none"), (2.0, 40), (3.0, "none"), (4.0, "none"), (5.0, 12)])]
    rows += [episode("a", "exact", e, 7.0) for e in range(3)]
    first, second = mt.summary_rows(rows)
    assert (first["variant"], first["episodes"], first["mean"]) == ("playground", 5, 3.0)
    assert first["std"] == pytest.approx(np.sqrt(2.0))
    assert 1.0 <= first["ci_low"] < 3.0 < first["ci_high"] <= 5.0
    assert first["falls"] == "2/5"
    assert (second["mean"], second["std"], second["ci_low"], second["ci_high"], second["falls"]) == (7.0, 0.0, 7.0,
                                                                                                     7.0, "")
    assert mt.summary_rows(rows)[0] == first  # the bootstrap is seeded


def test_bootstrap_interval_is_scipys_percentile_interval_with_the_fixed_seed():
    from scipy import stats

    returns = np.array([955.0, 930.0, 990.0, 870.0, 960.0])
    theirs = stats.bootstrap((returns,), np.mean, n_resamples=10_000, method="percentile",
                             random_state=np.random.default_rng(0)).confidence_interval
    assert mt.mean_interval(returns) == (pytest.approx(theirs.low), pytest.approx(theirs.high))


def test_table_from_a_small_summary_csv(tmp_path):
    rows = [dict(agent="walker-walk-1M", task="walker-walk", trained_on="host", evaluated_on="mjx",
                 variant="playground-height", episodes=5, mean=801.25, std=120.04, ci_low=700.0, ci_high=890.55,
                 falls="1/5"),
            dict(agent="walker-walk-1M", task="walker-walk", trained_on="host", evaluated_on="host", variant="host",
                 episodes=5, mean=722.25, std=28.0, ci_low=700.0, ci_high=750.0, falls="0/5"),
            dict(agent="cheetah-run-1M", task="cheetah-run", trained_on="host", evaluated_on="mjx",
                 variant="playground", episodes=5, mean=383.0, std=14.0, ci_low=370.0, ci_high=395.0, falls="")]
    mt.write_csv(tmp_path / "summary.csv", rows, mt.SUMMARY_COLUMNS)
    assert mt.table(mt.read_csv(tmp_path / "summary.csv")) == [
        "| agent | trained on | evaluated on | variant | episodes | return mean +- std | 95% CI of the mean | vs host "
        "| falls |",
        "|---|---|---|---|---|---|---|---|---|",
        "| walker-walk-1M | host | mjx | playground-height | 5 | 801.2 +- 120.0 | [700.0, 890.5] | +79.0 | 1/5 |",
        "| walker-walk-1M | host | host | host | 5 | 722.2 +- 28.0 | [700.0, 750.0] | - | 0/5 |",
        "| cheetah-run-1M | host | mjx | playground | 5 | 383.0 +- 14.0 | [370.0, 395.0] | - | - |"]


def test_a_stopped_run_run_again_evaluates_only_the_variants_not_yet_written(tmp_path):
    agents = [mt.Agent("w", "walker-walk", "host", "unused", ("playground", "host")),
              mt.Agent("c", "cheetah-run", "host", "unused", ("exact",))]
    calls = []

    def evaluate(agent, variant, episodes, seed):
        calls.append((agent.name, variant))
        if len(calls) == 2 and stop:
            raise KeyboardInterrupt
        heights = np.full((episodes, 4), 1.3) if agent.task.startswith("walker") else None
        return mt.Episodes(np.arange(episodes, dtype=float) + len(calls), np.full(episodes, 500), heights)

    stop = True
    with pytest.raises(KeyboardInterrupt):
        mt.run(agents, None, 2, tmp_path, "python -m experiments.mjx_transfer --episodes=2", evaluate)
    with open(tmp_path / "episodes.csv") as f:
        assert [(r["agent"], r["variant"]) for r in csv.DictReader(f)] == [("w", "playground")] * 2
    stop, calls[:] = False, []
    summary = mt.run(agents, None, 2, tmp_path, "python -m experiments.mjx_transfer --episodes=2", evaluate)
    assert calls == [("w", "host"), ("c", "exact")]
    assert [(r["agent"], r["variant"], r["episodes"]) for r in summary] == [("w", "playground", 2), ("w", "host", 2),
                                                                           ("c", "exact", 2)]
    assert [r["falls"] for r in summary] == ["0/2", "0/2", ""]
    assert (tmp_path / "README.md").read_text().count("python -m experiments.mjx_transfer --episodes=2") == 1
