"""benchmarks/pixels.py --quick: the JSON it writes holds every figure of the table (their values are
not checked, only that they are measured)."""
import json
import subprocess
import sys

import pytest

from tiny import ROOT


@pytest.mark.slow
def test_quick_run_writes_every_figure_to_the_json(tmp_path):
    out = tmp_path / "results.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.pixels", "--quick", f"--out={out}"],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["settings"]["repeats"] == 2 and results["settings"]["batch_size"] == 8
    # each backend is timed over its frames or reports why it cannot render here
    assert [r["backend"] for r in results["render"]] == ["egl", "osmesa"]
    assert all(r.get("frames") == 5 and r["median_s"] > 0 or r.get("error") for r in results["render"])
    encoder = results["encoder"]
    assert (encoder["channels"], encoder["batch_size"]) == (2, 8)
    assert encoder["forward"]["median_s"] > 0 and encoder["forward_backward"]["median_s"] > 0
    [update] = results["update"]
    assert (update["preset"], update["num_channels"], update["batch_size"]) == ("tiny", 2, 8)
    assert update["median_s"] > 0 and update["parameters"] > 0
    assert [r["layout"] for r in results["memory"]] == ["frames once", "whole stacks"]
    once, whole = (r["bytes_per_transition"] for r in results["memory"])
    assert whole - once == 2 * 3 * 64 * 64  # two more frames of 3 x 64 x 64 bytes per row
