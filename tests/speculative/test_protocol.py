"""The speculative-execution protocol on host MuJoCo, through its command line."""
import csv
import json

import numpy as np
import pytest

from tdmpc2_jax.speculative.controller import StepInfo
from tdmpc2_jax.speculative.modes import Mode, by_episode, protocol_modes, summarize
from tdmpc2_jax.speculative.protocol import calibration_seed, tuning_seed
from tdmpc2_jax.speculative.report import goal_check, goal_summary, merged_with_disk, read_results, relative_to_full, \
    write_results

from helpers import ROOT, SMALL, speculative_cli, tiny_agent


def test_every_fallback_mode_runs_once_per_mismatch():
    modes = protocol_modes([2, 3], ["mlp"], ("latent", "policy"))
    assert [m.name for m in modes if m.k == 2] == ["naive-2", "fallback-2", "mlp-2", "mlp-2+fallback",
                                                   "fallback-2:policy", "mlp-2+fallback:policy"]
    assert modes[0] == Mode("full", 1) and len(modes) == 13
    assert Mode("mlp-3+fallback:policy", 3, True, "mlp", "policy") in modes
    assert [m.name for m in protocol_modes([4], [], ("policy",))] == ["full", "naive-4", "fallback-4:policy"]


def test_the_summary_counts_fallbacks_per_k_corrections_and_reward_by_step():
    # steps of two episodes (4 and 3 steps long) with K = 3; one fallback at k = 2 in the second
    k = np.asarray([3, 1, 2, 3, 3, 1, 2, 1])
    replanned = np.asarray([1, 0, 0, 1, 1, 0, 1, 0], bool)
    fallback = np.asarray([0, 0, 0, 0, 0, 0, 1, 0], bool)
    correction = np.asarray([0, 0.5, 1.5, 0, 0, 1.0, 9.0, 2.0])
    info = StepInfo(replanned, k, np.linspace(0, 1, 8), correction, correction, fallback)
    rewards = by_episode(np.arange(7.0), [4, 3])
    np.testing.assert_array_equal(rewards, [[0, 1, 2, 3], [4, 5, 6, np.nan]])
    row = summarize(np.asarray([6.0, 15.0]), rewards, info, 0.01, horizon_k=3)
    assert row["fallback_by_k"] == "0.000/0.500" and row["calls_per_step"] == 0.5
    assert row["correction_norm"] == (0.5 + 1.5 + 1.0 + 2.0) / 4  # reused steps only
    assert row["return_median"] == 10.5 and row["ms_per_step"] == 10.0
    np.testing.assert_allclose(row["reward_by_step"], [2, 3, 4, 3])


def test_two_evaluations_of_other_modes_share_one_out(tmp_path):
    def row(mode, ret, k=1):
        steps = StepInfo(np.ones(3, bool), np.zeros(3, int), np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3, bool))
        return summarize(np.asarray([ret, ret]), np.full((2, 3), ret / 3), steps, 0.01, horizon_k=k) | dict(mode=mode, K=k)

    out = str(tmp_path)
    write_results(relative_to_full([row("full", 300.0), row("naive-2", 240.0, 2)]), out, "t")
    # meanwhile another evaluation adds naive-3 to the file
    write_results(relative_to_full([row("full", 300.0), row("naive-2", 240.0, 2), row("naive-3", 270.0, 3)]), out, "t")
    rows = merged_with_disk(out, {"naive-4": row("naive-4", 150.0, 4), "naive-2": row("naive-2", 210.0, 2)})
    write_results(relative_to_full(list(rows.values())), out, "t")
    on_disk = {r["mode"]: r for r in read_results(out)}
    assert list(on_disk) == ["full", "naive-2", "naive-3", "naive-4"]
    assert on_disk["naive-2"]["return_mean"] == 210.0 and on_disk["naive-3"]["of_full"] == 0.9  # this run's row wins
    assert on_disk["naive-4"]["reward_by_step"] == [50.0] * 3


def test_the_goal_allows_one_call_per_three_steps_and_names_what_a_mode_misses():
    def row(mode, calls, ret, ms):
        return dict(mode=mode, calls_per_step=calls, return_mean=ret, return_median=ret, ms_per_step=ms,
                    reward_by_step=[1.0] * 500)

    rows = relative_to_full([row("full", 1.0, 900.0, 100.0), row("naive-3", 167 / 500, 880.0, 38.0),
                             row("mlp-3", 167 / 500, 890.0, 39.0), row("naive-2", 0.5, 899.0, 50.0),
                             row("naive-6", 84 / 500, 700.0, 20.0)])
    by_mode = {r["mode"]: r for r in rows}
    assert goal_check(by_mode["naive-3"]) == [] and goal_check(by_mode["mlp-3"]) == []
    assert goal_check(by_mode["naive-2"]) == ["0.500 calls per step", "x2.00 per step"]
    assert goal_check(by_mode["naive-6"]) == ["77.8% of the return"]
    assert "met by 2 of 4 modes; best mlp-3 (0.334 calls per step, 98.9% of the return" in goal_summary(rows)
    missed = goal_summary([by_mode["full"], by_mode["naive-6"], by_mode["naive-2"]])
    assert "not met; closest naive-6" in missed and missed.endswith("misses 77.8% of the return")


def test_speed_ups_are_scaled_to_each_modes_calls_per_step_in_the_protocol():
    from tdmpc2_jax.speculative.report import at_protocol_rate, planner_call_ms

    # the benchmark: a step costs 10 ms plus 90 ms per planner call; fallback-3 fired more often there
    bench = [dict(mode="full", ms_per_step=100.0, calls_per_step=1.0),
             dict(mode="naive-2", ms_per_step=55.0, calls_per_step=0.5),
             dict(mode="naive-4", ms_per_step=32.5, calls_per_step=0.25),
             dict(mode="fallback-3", ms_per_step=48.0, calls_per_step=0.42)]
    assert planner_call_ms(bench) == pytest.approx(90.0)
    rows = [dict(mode="full", calls_per_step=1.0), dict(mode="fallback-3", calls_per_step=0.36),
            dict(mode="mlp-3", calls_per_step=1 / 3)]
    full, fallback, mlp = at_protocol_rate(rows, bench)
    assert full["speedup"] == pytest.approx(1.0)
    assert fallback["speedup"] == pytest.approx(100.0 / (48.0 - 0.06 * 90.0))  # 42.6 ms at the protocol's 0.36 calls
    assert fallback["bench_calls_per_step"] == 0.42 and fallback["bench_speedup"] == pytest.approx(100 / 48)
    assert np.isnan(mlp["speedup"])  # not timed by the benchmark
    assert "no speed figure" in goal_check(dict(mlp, of_full=1.0, reward_by_step=[0.0] * 500))
    with pytest.raises(ValueError, match="no naive mode"):
        planner_call_ms(bench[:1])


@pytest.mark.slow
def test_the_protocol_runs_on_host_mujoco(tmp_path):
    agent = tiny_agent(tmp_path / "agent")
    out = speculative_cli("evaluate", f"--config={ROOT / 'tdmpc2_jax' / 'configs' / 'dmc.py'}:cartpole-balance",
                          f"--checkpoint={agent}", "--k=2", "--episodes=1", f"--out={tmp_path / 'results'}",
                          "--calibrate", "--mismatch=latent,policy", *SMALL)
    assert out.returncode == 0, out.stderr[-2000:]
    # one progress line per host episode: the calibration's and each of the 4 modes'
    assert out.stdout.count("episode 1/1: return ") == 5
    assert "host MuJoCo" in (tmp_path / "results" / "results.md").read_text()
    assert "goal: at most one planner call per 3 steps" in (tmp_path / "results" / "results.md").read_text()
    with open(tmp_path / "results" / "results.csv") as f:
        rows = {r["mode"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["full", "naive-2", "fallback-2", "fallback-2:policy"]
    assert float(rows["naive-2"]["calls_per_step"]) == 0.5  # 10 steps, a plan every 2
    assert float(rows["fallback-2"]["calls_per_step"]) >= 0.5
    assert rows["naive-2"]["fallback_by_k"] == "0.000" and float(rows["naive-2"]["correction_norm"]) == 0.0
    assert float(rows["full"]["median_of_full"]) == 1.0 and float(rows["full"]["return_median"]) > 0
    with open(tmp_path / "agent" / "speculative_calibration.json") as f:
        table = json.load(f)["cartpole-balance@host"]
    for key in ("2", "2:policy"):  # both from one 10-step episode of full replanning, on seeds no evaluation uses
        assert table[key]["tau"][0] == float("inf") and 0 < table[key]["tau"][1] < float("inf")
        assert table[key]["seed"] == calibration_seed(0) != 0
    with open(tmp_path / "results" / "by_step.csv") as f:
        by_step = list(csv.DictReader(f))
    assert len(by_step) == 10 and list(by_step[0]) == ["step", *rows]


@pytest.mark.slow
def test_a_corrector_mode_chosen_on_its_own_episodes_is_then_evaluated(tmp_path):
    import jax
    import tiny
    from tdmpc2_jax.speculative import fitting
    from tdmpc2_jax.speculative.correctors import Corrector, CorrectorSpec

    agent = tiny_agent(tmp_path / "agent")
    config = f"--config={ROOT / 'tdmpc2_jax' / 'configs' / 'dmc.py'}:cartpole-balance"
    # a corrector whose corrections are not zero (training one: test_command_lines.py)
    spec = CorrectorSpec(kind="mlp", latent_dim=tiny.agent_config().latent_dim, action_dim=1, max_k=5, hidden=16)
    moved = jax.tree.map(lambda p: p + 0.1, Corrector(spec).init(jax.random.key(0)))
    fitting.save(str(tmp_path / "mlp"), moved, spec, {"task": "cartpole-balance"})
    tune = [config, f"--checkpoint={agent}", f"--correctors=mlp={tmp_path / 'mlp'}", "--episodes=1",
            f"--out={tmp_path / 'tuning'}", *SMALL]
    out = speculative_cli("tune", *tune, "--candidates=mlp-3@0,transformer-3")
    assert out.returncode == 2 and "no corrector 'transformer'" in out.stderr
    out = speculative_cli("tune", *tune, "--candidates=mlp-3@0,mlp-3@0.5,mlp-3+critic")
    assert out.returncode == 0, out.stderr[-2000:]
    with open(tmp_path / "tuning" / "results.csv") as f:
        tuned = list(csv.DictReader(f))
    assert [r["mode"] for r in tuned] == ["mlp-3@0", "mlp-3@0.5", "mlp-3+critic"]
    assert {r["seed"] for r in tuned} == {str(tuning_seed(0))} and tuning_seed(0) not in (0, calibration_seed(0))
    chosen = max(tuned, key=lambda r: float(r["return_mean"]))["mode"]
    assert (tmp_path / "tuning" / "chosen.txt").read_text().strip() == chosen
    assert float(tuned[0]["calls_per_step"]) == 0.4  # 10 steps, a plan every 3
    # started again after a stop, it keeps the candidates already run and runs the others
    results = tmp_path / "tuning" / "results.csv"
    results.write_text("".join(results.read_text().splitlines(keepends=True)[:3]))
    out = speculative_cli("tune", *tune, "--candidates=mlp-3@0,mlp-3@0.5,mlp-3+critic")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "mlp-3@0.5" in out.stdout and "(in " in out.stdout and out.stdout.count("(in ") == 2
    with open(results) as f:
        assert list(csv.DictReader(f)) == tuned
    evaluate = [config, f"--checkpoint={agent}", "--k=3", f"--correctors=mlp={tmp_path / 'mlp'}", "--episodes=1", *SMALL]
    out = speculative_cli("evaluate", *evaluate, f"--out={tmp_path / 'results'}", f"--variants={chosen}",
                          f"--modes=full,{chosen}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert [r["mode"] for r in read_results(str(tmp_path / "results"))] == ["full", chosen]
    out = speculative_cli("evaluate", *evaluate, f"--out={tmp_path / 'r2'}", "--variants=mlp-4@0.5")
    assert out.returncode == 2 and "K=4 is not among --k [3]" in out.stderr
