"""experiments/report.py: the committed generated blocks equal what the command writes, and the
command fills, checks and names stale blocks."""
import json

import pytest

from experiments import report
from experiments.report import END, Block, begin


def test_committed_generated_blocks_equal_the_commands_output():
    stale = report.regenerate(report.ROOT, report.BLOCKS)
    assert stale == {}, f"stale generated blocks in {sorted(stale)}: run python -m experiments.report"


def test_every_block_sits_between_its_markers_in_its_file():
    for name, block in report.BLOCKS.items():
        text = (report.ROOT / block.path).read_text()
        assert text.count(begin(name)) == 1 and END in text[text.index(begin(name)):]


def test_fill_replaces_only_the_text_between_the_markers():
    text = f"# Title\nprose\n{begin('t')}\nold table\nmore old\n{END}\nafter\n"
    assert report.fill(text, "t", "| a |\n") == f"# Title\nprose\n{begin('t')}\n| a |\n{END}\nafter\n"
    assert report.fill(f"{begin('t')}\n{END}\n", "t", "x") == f"{begin('t')}\nx\n{END}\n"


def test_fill_refuses_a_file_without_exactly_one_block():
    with pytest.raises(ValueError, match="expected one line"):
        report.fill("no markers\n", "t", "x")
    with pytest.raises(ValueError, match="expected one line"):
        report.fill(f"{begin('t')}\n{END}\n{begin('t')}\n{END}\n", "t", "x")
    with pytest.raises(ValueError, match="no closing"):
        report.fill(f"{begin('t')}\nopen\n", "t", "x")


def test_check_exits_1_naming_the_stale_file_and_a_rewrite_makes_it_current(tmp_path, monkeypatch, capsys):
    (tmp_path / "doc.md").write_text(f"intro\n{begin('figures')}\n| 1 |\n{END}\n")
    (tmp_path / "other.md").write_text(f"{begin('same')}\nkept\n{END}\n")
    monkeypatch.setattr(report, "ROOT", tmp_path)
    monkeypatch.setattr(report, "BLOCKS", {"figures": Block("doc.md", lambda: "| 2 |"),
                                           "same": Block("other.md", lambda: "kept")})
    assert report.write_blocks(check=True) == 1
    assert capsys.readouterr().out == "stale: doc.md (run python -m experiments.report)\n"
    assert (tmp_path / "doc.md").read_text() == f"intro\n{begin('figures')}\n| 1 |\n{END}\n"  # --check writes nothing
    assert report.write_blocks() == 0
    assert capsys.readouterr().out == "wrote doc.md\n"
    assert (tmp_path / "doc.md").read_text() == f"intro\n{begin('figures')}\n| 2 |\n{END}\n"
    assert report.write_blocks(check=True) == 0


def test_a_missing_marker_is_an_error_naming_the_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "doc.md").write_text("no block here\n")
    monkeypatch.setattr(report, "ROOT", tmp_path)
    monkeypatch.setattr(report, "BLOCKS", {"figures": Block("doc.md", lambda: "x")})
    assert report.write_blocks(check=True) == 2
    assert capsys.readouterr().err.startswith("error: doc.md: expected one line")


def test_the_readme_first_command_is_the_command_whose_result_it_quotes():
    machine = json.loads((report.RESULTS / "readme" / "first_command" / "machine.json").read_text())
    readme = (report.ROOT / "README.md").read_text().splitlines()
    first = readme[readme.index("```bash") + 1]
    assert first.endswith(machine["command"].replace("python -m", ".venv/bin/python -m", 1))


def test_first_command_quotes_each_evaluation_and_the_machine(tmp_path, monkeypatch):
    run = tmp_path / "readme" / "first_command"
    run.mkdir(parents=True)
    (run / "eval.csv").write_text("step,agent_step,episode_reward\n0,0,251.9\n2000,1000,271.5\n4000,2000,337.2\n")
    (run / "machine.json").write_text(json.dumps({"machine": "a CPU", "date": "2026-01-02", "wall_clock_s": 600}))
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    assert report.first_command() == ("returns 252, 272, 337 at 0, 1k, 2k agent steps on a CPU (2026-01-02, 10 min; "
                                      "[eval.csv](experiments/results/readme/first_command/eval.csv))")


SPECULATIVE = "mode,K,return_mean,return_std,of_full,median_of_full,calls_per_step,speedup,tau_seed\n"


def write_protocol(root, name, rows, bench=None):
    (root / "speculative" / name).mkdir(parents=True)
    (root / "speculative" / name / "results.csv").write_text(SPECULATIVE + "".join(rows))
    if bench:
        rows = [dict(mode=m, ms_per_step=ms, calls_per_step=c) for m, ms, c in bench]
        (root / "speculative" / name / "speed.json").write_text(json.dumps(dict(rows=rows)))


def test_the_speculative_summary_names_the_best_mode_that_meets_the_goal_else_the_closest(tmp_path, monkeypatch):
    # the host benchmark: naive-3 puts a planner call at (100 - 39) / (2 / 3) = 91.5 ms
    bench = [("full", 100.0, 1.0), ("naive-3", 39.0, 1 / 3), ("mlp-3", 38.0, 1 / 3), ("fallback-3", 37.0, 0.3)]
    write_protocol(tmp_path, "walker-walk-host", ["full,1,900,20,1,1,1,1,\n", "naive-3,3,880,30,0.978,0.99,0.334,2.9,\n",
                                                  "mlp-3,3,890,25,0.989,1.0,0.334,2.8,\n", "naive-2,2,900,20,1,1,0.5,2,\n",
                                                  "fallback-3,3,895,20,0.994,1.0,0.3,2.6,7919\n"], bench)
    write_protocol(tmp_path, "walker-walk", ["full,1,700,200,1,1,1,1,\n", "mlp-3,3,690,200,0.986,1.0,0.334,1.0,\n",
                                             "naive-4,4,600,200,0.857,1.0,0.25,3.5,\n",
                                             "fallback-3,3,650,200,0.929,1.0,0.5,1.0,\n"])
    write_protocol(tmp_path, "cheetah-run", ["full,1,400,10,1,1,1,1,\n", "naive-3,3,360,30,0.9,0.92,0.334,3.0,\n"])
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    lines = report.speculative_summary().splitlines()
    assert lines[2] == ("| [cheetah-run (MJX)](../experiments/results/speculative/cheetah-run/results.md) | 400 +- 10 | "
                        "0 of 1 | none; closest naive-3: 0.334 calls per step, 90.0% of the return (median 92.0%), "
                        "3.00x, misses 90.0% of the return | - | the protocol's own timing |")
    # the MJX walker's speed-ups come from the host benchmark of the same agent, at its own calls per step
    assert lines[3].endswith("| 700 +- 200 | 1 of 3 | mlp-3: 0.334 calls per step, 98.6% of the return (median 100.0%), "
                             "2.63x (benchmark: 0.333 calls, 2.63x) | the evaluated episodes (calibrated before seeds "
                             "were kept apart) | the host protocol's speed benchmark at this protocol's calls per step |")
    assert "| 900 +- 20 | 3 of 4 | fallback-3: 0.300 calls per step, 99.4% of the return (median 100.0%), 2.70x " \
           "(benchmark: 0.300 calls, 2.70x) | seed 7919, apart from the evaluation's | this protocol's" in lines[4]
    modes = report.speculative_modes()
    assert "| naive-2 |" not in modes  # over the goal's planner calls
    assert "| mlp-3 | 0.334 | 890 (98.9%) | 100.0% | 2.63x (benchmark: 0.333 calls, 2.63x) | met |" in modes
    assert "| naive-4 | 0.250 | 600 (85.7%) | 100.0% | not timed | 85.7% of the return, no speed figure |" in modes
    rows, _ = report.protocol_rows(tmp_path / "speculative" / "walker-walk")
    fallback = next(r for r in rows if r["mode"] == "fallback-3")  # 0.2 calls per step more than in the benchmark
    assert report.speedup_words(fallback) == "1.81x (benchmark: 0.300 calls, 2.70x)"  # 37 + 0.2 x 91.5 ms


def test_learning_runs_give_first_last_and_best_return_per_committed_run(tmp_path, monkeypatch):
    (tmp_path / "learning" / "mw-reach").mkdir(parents=True)
    (tmp_path / "learning" / "mw-reach" / "eval.csv").write_text(
        "step,agent_step,episode_reward,episode_success\n0,0,103.2,0\n2000,1000,1900.5,0.6\n4000,2000,1851.8,0.8\n")
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    assert report.learning_runs().splitlines()[2] == (
        "| [mw-reach](../experiments/results/learning/mw-reach/eval.csv) | host | 4,000 | 3 | 103.2, 1,851.8, 1,900.5 | 0.8 |")


def test_a_trace_names_the_episodes_past_the_vertical_and_the_saturation_of_planned_and_reused_steps(
        tmp_path, monkeypatch):
    trace = tmp_path / "speculative" / "cheetah-run-host" / "trace-mlp-3"
    trace.mkdir(parents=True)
    (trace / "summary.json").write_text(json.dumps(dict(
        task="cheetah-run", mode="mlp-3", seed=0, watch=1, saturated_at=0.99, returns=[430.0, 29.6, 410.0],
        watched_max_abs=[0.6, 3.4, 1.2], saturated_planned=[0.14, 0.05], saturated_reused=[0.34, 0.12], machine="a CPU")))
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    lines = report.speculative_traces().splitlines()
    assert "3 episodes of seed 0 (a CPU;" in lines[0] and "returns 29.6 to 430.0 (median 410.0)" in lines[0]
    assert lines[0].endswith("observation entry 1 past pi/2 in 1 of them (episode 1: return 29.6).")
    assert lines[-2:] == ["| planned: share at a bound (abs >= 0.99) | 14% | 5% |", "| reused: share at a bound | 34% | 12% |"]
