"""The sweep command: a population of seeds x learning rates trained as one program, summarized per
learning rate over its seeds. The MJX physics is toy_env's point mass (cartpole's sizes), so that
the sweep's own code runs without minutes of compiling physics."""
import csv

import pytest

import tiny
from helpers import rows
from toy_env import point_mass_physics

from tdmpc2_jax import sweep
from tdmpc2_jax.envs.mjx import MJXEnv


@pytest.mark.slow
def test_a_sweep_writes_mean_std_and_count_over_seeds_per_learning_rate_and_step(tmp_path, monkeypatch):
    monkeypatch.setattr(MJXEnv, "__init__", point_mass_physics(MJXEnv.__init__))
    config = tiny.run_config("mjx.py", "cartpole-balance", tmp_path)
    summary, work_dir = sweep.sweep(config, [1, 2], [1e-3, 3e-4])

    assert work_dir == str(tmp_path)
    with open(tmp_path / "sweep.csv") as f:
        assert list(csv.DictReader(f)) == [{k: str(v) for k, v in r.items()} for r in summary]
    assert (tmp_path / "sweep.png").stat().st_size > 0
    for lr in (1e-3, 3e-4):
        members = [rows(tmp_path / f"lr{lr:g}" / f"seed{seed}" / "eval.csv") for seed in (1, 2)]
        mine = [r for r in summary if r["lr"] == lr]
        assert [r["step"] for r in mine] == [int(r["step"]) for r in members[0]]
        for r, first, second in zip(mine, *members):
            returns = [float(first["episode_reward"]), float(second["episode_reward"])]
            assert r["seeds"] == 2 and r["mean"] == pytest.approx(sum(returns) / 2)
            assert r["std"] == pytest.approx(abs(returns[0] - returns[1]) / 2)


def test_seeds_and_learning_rates_are_numbers_that_do_not_repeat():
    assert sweep.population_of(["1", "2"], None, 3e-4) == ([1, 2], [3e-4])
    assert sweep.population_of(["3"], ["1e-3", "3e-4"], 3e-4) == ([3], [1e-3, 3e-4])
    with pytest.raises(ValueError, match="must not repeat"):
        sweep.population_of(["1", "1"], None, 3e-4)
    with pytest.raises(ValueError, match="--seeds takes integers"):
        sweep.population_of(["one"], None, 3e-4)
