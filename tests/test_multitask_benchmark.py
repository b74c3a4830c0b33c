"""benchmarks/multitask.py --quick: the table's rows and the JSON it writes (figures are not checked)."""
import json
import subprocess
import sys

from tiny import ROOT

LABELS = ("update", "plan", "memory")


def test_quick_run_prints_every_row_and_writes_the_json(tmp_path):
    out = tmp_path / "results.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.multitask", "--quick", "--out", str(out)],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines()
            if line.split()[:1] and line.split()[0] in LABELS and not line.split()[1].endswith(":")]
    assert [r[:2] for r in rows] == [["update", "tiny"], ["plan", "tiny"], ["memory", "mt30"], ["memory", "mt80"]]
    assert [len(r) for r in rows] == [9, 9, 8, 8]
    assert [r[3:5] for r in rows[2:]] == [["6", "132"], ["6", "192"]]  # bytes per row: obs, action, reward, task
    assert "shared machine" in result.stdout
    results = json.loads(out.read_text())
    assert [r["size"] for r in results["update"]] == ["tiny"] and [r["size"] for r in results["plan"]] == ["tiny"]
    assert [r["set"] for r in results["memory"]] == ["mt30", "mt80"]
    assert len(results["plan"][0]["per_task"]) == 2
    assert results["settings"]["dataset"]["episodes"] == 30 and results["settings"]["tasks"] == 30
