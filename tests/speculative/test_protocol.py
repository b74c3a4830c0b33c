"""The speculative-execution protocol on host MuJoCo, through its command line."""
import csv
import json



from helpers import ROOT, SMALL, speculative_cli, tiny_agent

def test_the_protocol_runs_on_host_mujoco(tmp_path):
    agent = tiny_agent(tmp_path / "agent")
    out = speculative_cli("evaluate", f"--config={ROOT / 'configs' / 'dmc.py'}:cartpole-balance",
                          f"--checkpoint={agent}", "--k=2", "--episodes=1", f"--out={tmp_path / 'results'}",
                          "--calibrate", *SMALL)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "host MuJoCo" in (tmp_path / "results" / "results.md").read_text()
    with open(tmp_path / "results" / "results.csv") as f:
        rows = {r["mode"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["full", "naive-2", "fallback-2"]
    assert float(rows["naive-2"]["calls_per_step"]) == 0.5  # 10 steps, a plan every 2
    assert float(rows["fallback-2"]["calls_per_step"]) >= 0.5
    with open(tmp_path / "agent" / "speculative_calibration.json") as f:
        tau = json.load(f)["cartpole-balance"]["2"]["tau"]
    assert tau[0] == float("inf") and 0 < tau[1] < float("inf")  # from one 10-step episode of full replanning
