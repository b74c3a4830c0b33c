"""benchmarks/pixels.py --quick: every row of the table and the JSON (figures are not checked)."""
import json
import subprocess
import sys

from tiny import ROOT


def test_quick_run_prints_every_row_and_writes_the_json(tmp_path):
    out = tmp_path / "results.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.pixels", "--quick", "--out", str(out)],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert sum(line.startswith("render egl") for line in lines) == 1
    assert sum(line.startswith("render osmesa") for line in lines) == 1
    assert any(line.startswith("encoder fwd+bwd 2ch B=8") for line in lines)
    assert any(line.startswith("update tiny (2ch) B=8") for line in lines)
    results = json.loads(out.read_text())
    assert [r["layout"] for r in results["memory"]] == ["frames once", "whole stacks"]
    once, whole = (r["bytes_per_transition"] for r in results["memory"])
    assert whole - once == 2 * 3 * 64 * 64  # two more frames of 3 x 64 x 64 bytes per row
    assert results["update"][0]["median_s"] > 0 and results["encoder"]["channels"] == 2
