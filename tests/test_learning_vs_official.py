"""experiments/learning_vs_official.py: the committed plan decides which runs are made and reported;
a filed run counts only if it was made under the plan's settings and evaluated on its grid."""
import json
import subprocess
import sys

import pytest

from experiments import learning_vs_official as lvo
from experiments.learning_vs_official import Run
from helpers import ROOT

PLAN = json.loads(lvo.DEFAULT_PLAN.read_text())


def write_plan(tmp_path, **changes):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(PLAN | changes))
    return path


def file_run(out, run: Run, steps, overrides=None, num_envs=16, env_steps=20000):
    """Files a run as the sweep does: run.json and eval.csv (agent steps = env steps / 2, DMControl)."""
    dest = run.results(out)
    dest.mkdir(parents=True)
    command = ["python", "-m", "tdmpc2_jax.train"] + ([f"--config.num_envs={num_envs}"] if "mjx" in run.impl else [])
    (dest / "run.json").write_text(json.dumps(dict(
        impl=run.impl, task=run.task, seed=run.seed, env_steps=env_steps, overrides=overrides or PLAN["overrides"],
        command=command, wall_clock_s=60.0, machine="test machine")))
    rows = "".join(f"{s},{s // 2},{100 + s / 100}\n" for s in steps)
    (dest / "eval.csv").write_text("env_step,agent_step,episode_reward\n" + rows)


GRID = [0, 4000, 8000, 12000, 16000, 20000]


def test_the_committed_plan_is_read_with_its_runs_grid_and_comparisons():
    plan = lvo.load_plan(lvo.DEFAULT_PLAN)
    runs = plan.runs()
    assert len(runs) == len(set(runs)) == len(PLAN["seeds"]) * sum(len(t["impls"]) for t in PLAN["tasks"].values())
    assert plan.spacing("cartpole-swingup") == 2 * int(PLAN["overrides"]["eval_freq"])  # action repeat 2
    assert plan.spacing("mujoco-walker") == int(PLAN["overrides"]["eval_freq"])  # Gymnasium: repeat 1
    assert ("tdmpc2_jax_mjx", "official") in plan.comparisons_of("cartpole-swingup")
    assert plan.comparisons_of("reacher-easy") == [("tdmpc2_jax", "official")]


def test_a_plan_the_report_cannot_carry_out_is_refused(tmp_path):
    tasks = PLAN["tasks"] | {"walker-walk": {"env_steps": 20000, "impls": ["official", "brax"]}}
    with pytest.raises(SystemExit, match="unknown implementation"):
        lvo.load_plan(write_plan(tmp_path, tasks=tasks))
    statistics = PLAN["statistics"] | {"verdicts": {"agree": "", "disagree": ""}}
    with pytest.raises(SystemExit, match="verdicts must be"):
        lvo.load_plan(write_plan(tmp_path, statistics=statistics))
    with pytest.raises(SystemExit, match="cannot read the plan"):
        lvo.load_plan(tmp_path / "missing.json")


def test_runs_outside_the_plan_are_refused():
    plan = lvo.load_plan(lvo.DEFAULT_PLAN)
    with pytest.raises(SystemExit, match="seed 6 is not in the plan"):
        lvo.select(plan, [], [], [6])
    with pytest.raises(SystemExit, match="task cheetah-run is not in the plan"):
        lvo.select(plan, [], ["cheetah-run"], [])
    with pytest.raises(SystemExit, match="has no run of tdmpc2_jax_mjx on reacher-easy"):
        lvo.select(plan, ["tdmpc2_jax_mjx"], ["reacher-easy"], [])
    assert lvo.select(plan, ["tdmpc2_jax_mjx"], [], [2]) == [Run("tdmpc2_jax_mjx", "cartpole-swingup", 2)]


def test_evaluations_are_on_the_grid_once_in_each_stretch_from_zero():
    assert not lvo.off_grid(GRID, 4000)
    assert not lvo.off_grid([0, 2013, 4050, 6100, 8051], 2000)  # episode ends after each multiple
    assert lvo.off_grid([0, 9024, 13024, 17024, 20000], 4000)   # the MJX loop's schedule before the plan
    assert lvo.off_grid([0, 0, 4000, 8000], 4000)               # a repeated step-0 row
    assert lvo.off_grid([], 4000)


def test_filed_runs_count_only_when_planned_on_the_grid_and_under_the_plans_settings(tmp_path):
    plan = lvo.load_plan(write_plan(tmp_path, seeds=[1, 2]))
    out = tmp_path / "results"
    file_run(out, Run("official", "cartpole-swingup", 1), GRID)
    file_run(out, Run("tdmpc2_jax", "cartpole-swingup", 1), GRID)
    file_run(out, Run("tdmpc2_jax", "cartpole-swingup", 9), GRID)
    file_run(out, Run("tdmpc2_jax_mjx", "cartpole-swingup", 1), [0, 9024, 13024, 17024, 20000])
    file_run(out, Run("tdmpc2_jax_mjx", "cartpole-swingup", 2), GRID, num_envs=64)
    file_run(out, Run("official", "cartpole-swingup", 2), GRID, overrides=PLAN["overrides"] | {"mlp_dim": "512"})
    file_run(out, Run("official", "walker-walk", 1), GRID[:3])
    results = lvo.sort_results(plan, out)
    assert set(results.counted) == {Run("official", "cartpole-swingup", 1), Run("tdmpc2_jax", "cartpole-swingup", 1)}
    why = results.left_out
    assert why[Run("tdmpc2_jax", "cartpole-swingup", 9)] == "not in the plan"
    assert "off the plan's grid" in why[Run("tdmpc2_jax_mjx", "cartpole-swingup", 1)]
    assert "made on 64 environments" in why[Run("tdmpc2_jax_mjx", "cartpole-swingup", 2)]
    assert "other than the plan's" in why[Run("official", "cartpole-swingup", 2)]
    assert "short of the budget" in why[Run("official", "walker-walk", 1)]
    assert len(why) == 5
    assert len(results.missing) == len(plan.runs()) - 2


def test_the_summary_lists_planned_runs_not_yet_run_and_filed_runs_that_do_not_count(tmp_path):
    plan_path = write_plan(tmp_path, seeds=[1, 2])
    out = tmp_path / "results"
    for seed in (1, 2):
        file_run(out, Run("official", "cartpole-swingup", seed), GRID)
        file_run(out, Run("tdmpc2_jax", "cartpole-swingup", seed), GRID)
    file_run(out, Run("tdmpc2_jax_mjx", "cartpole-swingup", 1), [0, 9024, 13024, 17024, 20000])
    text = lvo.markdown(plan_path, out)
    # identical curves on both sides: the ratio is 1 with no spread
    assert ("| cartpole-swingup | tdmpc2_jax / official | 2 / 2 of 2 | 0-20,000 every 4,000 | "
            "1.000 [1.000, 1.000] | [1.000, 1.000] | 0.000 | equivalent within the margin |") in text
    assert "| cartpole-swingup | tdmpc2_jax_mjx / official | 0 / 2 of 2 | | | | | planned, not run yet |" in text
    assert "- cartpole-swingup, tdmpc2_jax_mjx: seeds 1, 2" in text
    assert "- reacher-easy, official: seeds 1, 2" in text
    assert "- tdmpc2_jax_mjx cartpole-swingup seed 1: evaluated at 0, 9,024," in text
    assert "- test machine: official 2, tdmpc2_jax 2 runs" in text
    assert "Welch" not in text


@pytest.mark.slow
def test_the_command_line_refuses_settings_and_seeds_outside_the_plan():
    def run(*args):
        return subprocess.run([sys.executable, "-m", "experiments.learning_vs_official", *args], capture_output=True,
                              text=True, cwd=ROOT, timeout=120)

    out = run("--config.mlp_dim=512")
    assert out.returncode == 2 and "the settings are the plan's" in out.stderr
    out = run("--seeds", "7")
    assert out.returncode == 1 and out.stderr.strip().endswith(f"seed 7 is not in the plan {lvo.DEFAULT_PLAN}")
