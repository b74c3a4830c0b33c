"""The speculative workflow end to end with a tiny agent on the MJX cartpole task, whose physics is
toy_env's point mass (toy_physics.py: the commands, not the physics, are under test here): collect,
train a corrector, run the protocol with on-the-fly calibration; and its clear errors (the protocol
on host MuJoCo: test_protocol.py)."""
import csv
import functools

import pytest

from helpers import ROOT, SMALL, tiny_agent
from helpers import speculative_cli

cli = functools.partial(speculative_cli, toy_physics=True)


@pytest.mark.slow
def test_collect_train_and_evaluate_the_protocol(tmp_path):
    agent = tiny_agent(tmp_path / "agent")
    config = f"--config={ROOT / 'tdmpc2_jax' / 'configs' / 'mjx.py'}:cartpole-balance"

    out = cli("collect", config, f"--checkpoint={agent}", "--k=3", "--envs=4", "--steps=20", f"--out={tmp_path / 'd.npz'}",
              *SMALL)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "wrote" in out.stdout
    assert out.stdout.count("  step ") == 10 and "  step 2/20 (" in out.stdout and "  step 20/20 (" in out.stdout
    out = cli("train_corrector", f"--data={tmp_path / 'd.npz'}", "--kind=mlp", f"--out={tmp_path / 'mlp'}", "--epochs=3",
              "--batch=16", "--hidden=16")
    assert out.returncode == 0, out.stderr[-2000:]

    args = [config, f"--checkpoint={agent}", "--k=3", f"--correctors=mlp={tmp_path / 'mlp'}", "--episodes=2",
            f"--out={tmp_path / 'results'}", *SMALL]
    out = cli("evaluate", *args)
    assert out.returncode == 2 and "no thresholds calibrated on seed 7919 (where evaluation seed 0 calibrates) for K=3 on cartpole-balance" in out.stderr and "--calibrate" in out.stderr
    # every mode but mlp-3, to save a compile (correctors alone: test_speculative.py)
    out = cli("evaluate", *args, "--calibrate", "--modes=full,naive-3,fallback-3,mlp-3+fallback")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("  step 10/10 (") == 5  # progress of the calibration and of each mode
    with open(tmp_path / "results" / "results.csv") as f:
        rows = {r["mode"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["full", "naive-3", "fallback-3", "mlp-3+fallback"]
    assert float(rows["full"]["calls_per_step"]) == 1.0
    assert abs(float(rows["naive-3"]["calls_per_step"]) - 0.4) < 1e-6  # steps 0, 3, 6, 9 of 10
    assert float(rows["fallback-3"]["calls_per_step"]) >= 0.4
    assert (tmp_path / "results" / "results.png").exists() and (tmp_path / "agent" / "speculative_calibration.json").exists()

    # a protocol stopped part-way (here: naive-3's row lost) goes on with --resume: only the missing
    # mode runs, the other rows are kept
    results = tmp_path / "results" / "results.csv"
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(line for line in lines if not line.startswith("naive-3,")))
    out = cli("evaluate", *args, "--resume", "--modes=full,naive-3,fallback-3,mlp-3+fallback")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "3 modes already in" in out.stdout and "running the other 1" in out.stdout
    with open(results) as f:
        again = {r["mode"]: r for r in csv.DictReader(f)}
    assert list(again) == list(rows) and again["fallback-3"] == rows["fallback-3"]
    assert again["naive-3"]["return_mean"] == rows["naive-3"]["return_mean"]  # the same seeds
    out = cli("evaluate", *args, "--modes=naive-5")
    assert out.returncode == 2 and "unknown modes ['naive-5']" in out.stderr

    # a corrector for another K is refused
    out = cli("evaluate", config, f"--checkpoint={agent}", "--k=6", f"--correctors=mlp={tmp_path / 'mlp'}",
              "--episodes=2", f"--out={tmp_path / 'r2'}", "--calibrate", *SMALL)
    assert out.returncode == 2 and "trained for K up to 3, not 6" in out.stderr
