"""Numerical parity with fixtures computed by the official PyTorch code."""
import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tdmpc2_jax import parity

MULTITASK = pathlib.Path(__file__).parent / "fixtures" / "parity_multitask"
EPISODIC = pathlib.Path(__file__).parent / "fixtures" / "parity_episodic"
CLIPPED = pathlib.Path(__file__).parent / "fixtures" / "parity_clipped"


@pytest.mark.slow
def test_single_task_fixture_passes_through_the_cli(parity_dir):
    out = subprocess.run([sys.executable, "-m", "tdmpc2_jax.parity", f"--fixture={parity_dir}"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    last = out.stdout.strip().splitlines()[-1]
    passed, total = map(int, last.split()[0].split("/"))
    assert passed == total and total > 200
    for quantity in ("forward/q_avg", "value/value", "update/td_targets", "update/grad_norm",
                     "update/after/_target_Qs_params.2.weight", "update/optimizer_on_ref_grads/_encoder.state.0.weight"):
        assert quantity in out.stdout


@pytest.mark.slow
def test_multitask_fixture_passes_including_a_second_update():
    rows = parity.run(str(MULTITASK))
    bad = [r for r in rows if not r.ok]
    assert not bad, parity.format_table(bad)
    names = {r.name.split(" ")[0] for r in rows}
    assert {"update_step2/leftover_grad/_task_emb.weight", "update_step2/grad/_task_emb.weight",
            "value/discount", "task_emb_renorm/output", "forward/pi_mean_pre_tanh"} <= names


@pytest.mark.slow
def test_episodic_fixture_of_another_shape_passes():
    """Termination head, termination loss, (1 - terminated) TD targets and the termination-masked
    value estimate, on horizon 4, 4 Q heads, 3 encoder layers, obs 17 / action 5, batch 6."""
    readme = json.loads((EPISODIC / "README.json").read_text())
    assert readme["config"]["episodic"] and readme["config"]["horizon"] == 4
    terminated = np.load(EPISODIC / "update.npz")["terminated"]
    assert 0 < terminated.sum() < terminated.size
    rows = parity.run(str(EPISODIC))
    bad = [r for r in rows if not r.ok]
    assert not bad, parity.format_table(bad)
    names = {r.name.split(" ")[0] for r in rows}
    assert {"forward/termination_logits", "value/value", "update/termination_loss", "update_step2/td_targets",
            "update/grad/_termination.2.weight", "update_step2/after/_termination.2.bias"} <= names


@pytest.mark.slow
def test_fixture_with_clipped_gradients_and_unusual_settings_passes():
    """Written by `python -m tests.fixtures.make_parity --out=tests/fixtures/parity_clipped num_bins=51
    vmin=-5 vmax=5 simnorm_dim=4 num_q=2 horizon=5 rho=0.7 entropy_coef=0.001 log_std_min=-5
    log_std_max=1 grad_clip_norm=0.5 tau=0.05 enc_lr_scale=0.5 lr=0.001 batch_size=4 obs_dim=7
    action_dim=2 episode_length=200 num_enc_layers=1 mlp_dim=24 latent_dim=16 enc_dim=12`
    (+ planner sizes): the model gradient (norm ~4) is clipped to 0.5 in both updates."""
    for name in ("update.npz", "update_step2.npz"):
        assert float(np.load(CLIPPED / name)["grad_norm"]) > 4 * 0.5
    rows = parity.run(str(CLIPPED))
    bad = [r for r in rows if not r.ok]
    assert not bad, parity.format_table(bad)
    names = {r.name.split(" ")[0] for r in rows}
    assert {"update/grad_norm", "update/td_targets", "update_step2/after/_Qs.params.2.weight",
            "value/value", "forward/reward_value"} <= names


@pytest.mark.slow
def test_a_wrong_number_fails_and_is_named(parity_dir, tmp_path):
    for name in ("README.json", "weights.npz", "forward.npz"):
        shutil.copy(parity_dir / name, tmp_path / name)
    data = dict(np.load(tmp_path / "forward.npz"))
    data["z_next"] = data["z_next"] * (1 + 1e-4)
    np.savez(tmp_path / "forward.npz", **data)
    assert parity.check(str(tmp_path)) == 1
    rows = parity.run(str(tmp_path))
    assert [r.name for r in rows if not r.ok] == ["forward/z_next"]


def test_weights_of_another_config_are_refused(parity_dir, tmp_path, capsys):
    for name in ("weights.npz", "forward.npz"):
        shutil.copy(parity_dir / name, tmp_path / name)
    readme = json.loads((parity_dir / "README.json").read_text())
    readme["config"]["latent_dim"] = 32
    (tmp_path / "README.json").write_text(json.dumps(readme))
    assert parity.check(str(tmp_path)) == 2
    assert "do not fit the fixture's config" in capsys.readouterr().err


def test_not_a_fixture_directory(tmp_path, capsys):
    assert parity.check(str(tmp_path)) == 2
    assert "README.json" in capsys.readouterr().err
