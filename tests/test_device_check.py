"""The prepared accelerator check runs end to end in its smoke mode (tiny sizes, on the CPU)."""
import json
import subprocess
import sys

from helpers import ROOT


def test_device_check_smoke_measures_every_part_and_writes_its_report(tmp_path):
    out = subprocess.run([sys.executable, "-m", "benchmarks.device_check", "--smoke", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "device_check.json").read_text())
    assert results["smoke"] and results["backend"] == "cpu" and results["skipped"] == []
    assert set(results["core"]) == {"plan tiny", "update tiny", "plan tiny x8", "update tiny rgb"}
    for name, figures in results["core"].items():
        assert "error" not in figures, (name, figures)
        assert figures["gflop"] > 0 and figures["median_ms"] > 0 and figures["tflops"] > 0
    # eight observations planned at once multiply eight times the FLOPs of one
    single, batched = results["core"]["plan tiny"], results["core"]["plan tiny x8"]
    assert abs(batched["gflop"] / single["gflop"] - 8) < 1e-6
    # the pixel update counts its convolutions: far more FLOPs than the state update of the same widths
    assert results["core"]["update tiny rgb"]["gflop"] > 10 * results["core"]["update tiny"]["gflop"]
    mjx = results["mjx"]["2"]
    assert mjx["transitions_per_s"] > 0 and mjx["updates_per_s"] > 0
    learning = results["learning"]["run"]
    # 20 batched steps of 2 envs at the official ratio (2 updates per batched step); evals every 10 transitions
    assert learning["transitions"] == 40 and learning["env_steps"] == 80 and learning["updates_per_step"] == 2
    assert [e["env_step"] for e in learning["evals"]][0] == 0 and learning["evals"][-1]["env_step"] == 80
    report = (tmp_path / "device_check.md").read_text()
    assert "| plan tiny x8 |" in report and "| update tiny rgb |" in report and "Learning: cartpole-balance, 2 envs" in report
