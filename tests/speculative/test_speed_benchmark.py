"""benchmarks/speculative_speed.py on a tiny agent and host cartpole: the modes it times, their planner
calls per step, the JSON, and its errors (timings are not checked)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT, SMALL, tiny_agent


def speed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.speculative_speed",
                           f"--config={ROOT / 'tdmpc2_jax' / 'configs' / 'dmc.py'}:cartpole-balance", *args, *SMALL],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)


@pytest.mark.slow
def test_modes_alternate_and_fallback_modes_need_the_calibration(tmp_path):
    from tdmpc2_jax.speculative.calibration import write_calibration

    agent = tiny_agent(tmp_path / "agent")
    write_calibration(agent, "cartpole-balance", "host", 2, "policy", np.array([np.inf, 0.5]), 0.95, 1, 0)
    out = speed(f"--checkpoint={agent}", "--k=2", "--steps=4", "--rounds=2", "--modes=naive-2,mlp-2,fallback-2:policy",
                f"--out={tmp_path / 'speed.json'}")
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads((tmp_path / "speed.json").read_text())
    rows = {r["mode"]: r for r in result["rows"]}
    assert list(rows) == ["full", "naive-2", "mlp-2", "fallback-2:policy"]  # full always, for the speed-ups
    assert rows["full"]["calls_per_step"] == 1.0 and rows["full"]["speedup"] == 1.0
    assert rows["naive-2"]["calls_per_step"] == rows["mlp-2"]["calls_per_step"] == 0.5
    assert rows["fallback-2:policy"]["calls_per_step"] >= 0.5
    assert all(r["ms_min"] <= r["ms_per_step"] <= r["ms_max"] for r in rows.values())
    assert result["rounds"] == 2 and result["steps"] == 4 and not result["trained_correctors"]

    # fallback with the latent mismatch has no tau for K=2 here: not a mode this run can time
    out = speed(f"--checkpoint={agent}", "--k=2", "--modes=fallback-2")
    assert out.returncode == 2 and "unknown modes ['fallback-2']" in out.stderr
