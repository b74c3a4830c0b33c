"""benchmarks/multitask.py --quick: the JSON it writes holds every figure of the table (their values are
not checked, only that they are measured), and a bad size is one line."""
import json
import subprocess
import sys

import pytest

from tiny import ROOT

from benchmarks.multitask import PLAN_TASKS
from tdmpc2_jax.envs.task_sets import TASK_SETS


def run(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.multitask", *flags], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)


@pytest.mark.slow
def test_quick_run_writes_every_figure_to_the_json(tmp_path):
    out = tmp_path / "results.json"
    result = run("--quick", f"--out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    [update], [plan] = results["update"], results["plan"]
    assert update["size"] == plan["size"] == "tiny"
    assert update["first_call_s"] > 0 and update["updates_per_s"] > 0
    assert all(update[part]["median_s"] > 0 for part in ("sample", "update", "end_to_end"))
    assert list(plan["per_task"]) == [TASK_SETS["mt30"][i] for i in PLAN_TASKS[:2]]
    assert all(task["median_s"] > 0 for task in plan["per_task"].values())
    # bytes per row: obs 24 (mt30) or 39 (mt80) float32, action 6 float32, reward float32, task int64
    assert [(r["set"], r["action_dim"], r["bytes_per_transition"]) for r in results["memory"]] == \
        [("mt30", 6, 132), ("mt80", 6, 192)]
    assert results["settings"]["dataset"]["episodes"] == 30 and results["settings"]["tasks"] == 30


@pytest.mark.slow
def test_a_size_that_is_not_a_preset_is_one_line():
    result = run("--sizes=3")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == \
        ["error: model sizes [3] are not presets [1, 5, 19, 48, 317]"]
