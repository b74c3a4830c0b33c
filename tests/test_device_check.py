"""The prepared accelerator check runs end to end in its smoke mode (tiny sizes, on the CPU).

The test swaps cartpole's MJX physics for the pure-JAX point mass of toy_env (the same observation
and action sizes), so that the check's own code runs without minutes of compiling physics; the
MJX tests run the real physics."""
import pytest

from benchmarks import device_check
from tdmpc2_jax.envs.mjx import MJXEnv

from toy_env import point_mass_physics


@pytest.mark.slow
def test_device_check_smoke_measures_every_part_and_writes_its_report(tmp_path, monkeypatch):
    monkeypatch.setattr(MJXEnv, "__init__", point_mass_physics(MJXEnv.__init__))
    results = device_check.run_parts(tmp_path, device_check.SMOKE, float("inf"), smoke=True)

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
    assert "error" not in mjx, mjx
    assert mjx["transitions_per_s"] > 0 and mjx["updates_per_s"] > 0
    learning = results["learning"]["run"]
    assert "error" not in learning, learning
    # 2 envs at the official ratio (2 updates per batched step): 4 seed steps (8 seed transitions, the eval
    # due at 8 runs at the seed phase's end), then four chunks of 4 batched steps, evaluated after each
    assert learning["transitions"] == 40 and learning["env_steps"] == 80 and learning["updates_per_step"] == 2
    assert [e["env_step"] for e in learning["evals"]] == [0, 16, 32, 48, 64, 80]
    report = (tmp_path / "device_check.md").read_text()
    assert "| plan tiny x8 |" in report and "| update tiny rgb |" in report and "Learning: cartpole-balance, 2 envs" in report
