"""tdmpc2_jax/plot.py: learning curves of run directories, with the official curves shipped as package data."""
import json
import subprocess
import sys

import numpy as np
import pytest

from tdmpc2_jax import plot

HEADER = "step,agent_step,episode_reward,episode_reward_std,episode_reward_min,episode_length,episode_success,elapsed_time\n"


def write_run(path, task, returns, success=None, config=True):
    """A run directory with an eval.csv every 1,000 env steps (and a config.json naming `task`)."""
    path.mkdir(parents=True)
    rows = [f"{1000 * i},{500 * i},{r},1.0,{r - 1},500,{'' if success is None else success[i]},{i}.0\n"
            for i, r in enumerate(returns)]
    (path / "eval.csv").write_text(HEADER + "".join(rows))
    if config:
        (path / "config.json").write_text(json.dumps({"version": "0.1.0", "command": "train",
                                                      "config": {"task": task, "obs": "state", "seed": 1}}))
    return path


def test_two_runs_of_a_task_write_a_png_and_an_svg_beside_the_first(tmp_path):
    runs = [write_run(tmp_path / "cartpole-balance" / str(s), "cartpole-balance", [200 + s, 300, 400 + s])
            for s in (1, 2)]
    paths = plot.plot_runs(runs)
    assert paths == [tmp_path / "cartpole-balance" / "cartpole-balance-curves.png",
                     tmp_path / "cartpole-balance" / "cartpole-balance-curves.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = paths[1].read_text()
    assert "<svg" in svg and "mean of 2 seeds, band min-max" in svg
    assert "official" not in svg


def test_official_adds_the_published_curve_of_the_task(tmp_path):
    runs = [write_run(tmp_path / str(s), "walker-walk", [30, 60 * s]) for s in (1, 2)]
    out = plot.plot_runs(runs, out=tmp_path / "figure.png", official=True)
    assert out == [tmp_path / "figure.png", tmp_path / "figure.svg"]
    svg = out[1].read_text()
    assert "official TD-MPC2 (state)" in svg and "mean of 3 seeds" in svg  # walker-walk was published with 3 seeds


def test_official_results_read_the_shipped_csvs():
    walker = plot.official_results("walker-walk")
    assert walker.metric == plot.RETURN and walker.name == "tdmpc2/walker-walk.csv"
    assert walker.curves.steps[0][0] == 0 and walker.curves.values[0][0] == pytest.approx(27.9)  # seed 1 first
    assert plot.official_results("walker-walk", obs="rgb").name == "tdmpc2-pixels/walker-walk.csv"
    assert plot.official_results("mw-reach").metric == plot.SUCCESS
    assert plot.official_results("myo-key-turn").name == "tdmpc2/myo-hand-key-turn.csv"
    assert plot.official_results("mujoco-walker") is None
    assert "myo-key-turn" in plot.official_tasks() and "mw-reach" in plot.official_tasks()


def test_a_success_panel_where_the_runs_log_success(tmp_path):
    run = write_run(tmp_path / "run", "mw-reach", [100, 900, 1800], success=[0, 0.4, 1])
    svg = plot.plot_runs([run], official=True)[1].read_text()
    assert "eval success rate" in svg and "official TD-MPC2 (state)" in svg and "(1 seed)" in svg


def test_the_task_flag_names_the_task_of_runs_without_config_json(tmp_path):
    run = write_run(tmp_path / "run", None, [1, 2], config=False)
    with pytest.raises(ValueError, match="no config.json naming its task: pass --task"):
        plot.plot_runs([run])
    assert plot.plot_runs([run], task="cartpole-balance")[0].name == "cartpole-balance-curves.png"


def test_spread_interpolates_every_run_onto_the_steps_all_reach():
    curves = plot.Curves([np.array([0.0, 10, 20, 30]), np.array([0.0, 20])], [np.array([0.0, 1, 2, 3]), np.array([0.0, 4])])
    grid, values = plot.spread(curves)
    np.testing.assert_array_equal(grid, [0, 10, 20])
    np.testing.assert_array_equal(values, [[0, 1, 2], [0, 2, 4]])
    grid, _ = plot.spread(curves, until=5)
    np.testing.assert_array_equal(grid, [0, 10])


def test_a_run_without_eval_csv_or_an_unpublished_task_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no eval.csv"):
        plot.plot_runs([tmp_path / "empty"], task="walker-walk")
    run = write_run(tmp_path / "run", "mujoco-walker", [1, 2])
    with pytest.raises(ValueError, match="no official TD-MPC2 result for task 'mujoco-walker'"):
        plot.plot_runs([run], official=True)


def test_runs_of_different_tasks_are_refused(tmp_path):
    runs = [write_run(tmp_path / "a", "walker-walk", [1, 2]), write_run(tmp_path / "b", "cheetah-run", [1, 2])]
    with pytest.raises(ValueError, match="different tasks"):
        plot.plot_runs(runs)


def run_command(*args):
    """python -m tdmpc2_jax.plot ARGS: (exit status, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "tdmpc2_jax.plot", *args], capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.slow
def test_a_missing_eval_csv_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run_command(str(tmp_path / "empty"), "--task=walker-walk")
    assert code == 2 and err == f"error: {tmp_path / 'empty'} has no eval.csv\n"


@pytest.mark.slow
def test_an_unknown_task_with_official_is_one_line(tmp_path):
    run = write_run(tmp_path / "run", "walker-wlk", [1, 2])
    code, _, err = run_command(str(run), "--official")
    assert code == 2 and err == "error: no official TD-MPC2 result for task 'walker-wlk' (did you mean 'walker-walk', 'walker-run', 'walker-walk-backwards'?)\n"


@pytest.mark.slow
def test_the_command_writes_both_files(tmp_path):
    run = write_run(tmp_path / "run", "cartpole-balance", [1, 2])
    code, out, _ = run_command(str(run), f"--out={tmp_path / 'fig'}")
    assert code == 0 and out == f"wrote {tmp_path / 'fig.png'} and {tmp_path / 'fig.svg'}\n"


def test_the_task_and_observations_come_from_the_config_json_a_run_writes(tmp_path):
    from tdmpc2_jax.logs import write_run_config

    run = write_run(tmp_path / "run", None, [30, 60], config=False)
    write_run_config(str(run), {"task": "walker-walk", "obs": "rgb", "seed": 1})
    assert plot.run_task(run, None) == ("walker-walk", "rgb")
    svg = plot.plot_runs([run], official=True)[1].read_text()
    assert "official TD-MPC2 (pixels)" in svg and "tdmpc2_jax (rgb)" in svg
