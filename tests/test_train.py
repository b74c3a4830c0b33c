"""Host training end to end: logs, checkpoints, exact resume after kill -9, evaluation, error paths."""
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from tdmpc2_jax import checkpoints
from tdmpc2_jax.envs.dmc import DMCEnv
from tdmpc2_jax.loops import host
from tdmpc2_jax.loops.schedule import NonFiniteLoss
from tdmpc2_jax.run_record import resolve

import tiny
from helpers import ROOT, kill_9_once, rows


def tiny_config(work_dir, task="cartpole-balance", **changes):
    return tiny.run_config("dmc.py", task, work_dir, **changes)


def cli(module, task, work_dir, **changes):
    args = [sys.executable, "-m", f"tdmpc2_jax.{module}", f"--config={ROOT / 'tdmpc2_jax' / 'configs' / 'dmc.py'}:{task}"]
    return args + tiny.flags(tiny.AGENT, tiny.HOST_RUN, work_dir=work_dir, **changes)


@pytest.mark.slow
def test_tiny_run_trains_end_to_end_and_writes_logs_and_checkpoints(tmp_path):
    result = host.train(resolve(tiny_config(tmp_path)))
    evals = rows(tmp_path / "eval.csv")
    assert [int(r["agent_step"]) for r in evals] == [0, 150, 300]
    assert [int(r["step"]) for r in evals] == [0, 300, 600]  # env steps, like the official CSVs
    train = rows(tmp_path / "train.csv")
    assert len(train) == 6 and train[-1]["total_loss"] and np.isfinite(float(train[-1]["total_loss"]))
    assert result["episode_length"] == 50 and result["agent_step"] == 300
    assert checkpoints.latest_step(str(tmp_path / "checkpoints")) == 301
    cfg, params, _ = checkpoints.load_model(str(tmp_path / "checkpoints"))
    assert cfg.latent_dim == tiny.AGENT["latent_dim"] and params["qs"]["layers_0"]["linear"]["kernel"].shape[0] == 2
    assert (tmp_path / "tb").is_dir()


@pytest.mark.slow
def test_official_save_keys_turn_off_csvs_and_checkpoints_and_record_eval_videos(tmp_path):
    host.train(resolve(tiny_config(tmp_path, steps=150, save_csv=False, save_agent=False, save_video=True, tensorboard=False)))
    assert not (tmp_path / "eval.csv").exists() and not (tmp_path / "train.csv").exists()
    assert not (tmp_path / "checkpoints").exists()
    videos = sorted(p.name for p in (tmp_path / "eval_video").iterdir())
    assert videos == ["0.mp4", "300.mp4"]  # named by env step, one per evaluation
    assert all((tmp_path / "eval_video" / v).stat().st_size > 1000 for v in videos)
    with pytest.raises(ValueError, match="resume=True needs the checkpoints that save_agent=False turns off"):
        host.train(resolve(tiny_config(tmp_path, resume=True, save_agent=False)))
    mjx = tiny.load_config("mjx.py", "cartpole-balance")
    mjx.update(dict(save_video=True, work_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="save_video records evaluation episodes rendered on host MuJoCo"):
        resolve(mjx)


@pytest.mark.slow
def test_weights_and_biases_logs_the_run_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    host.train(resolve(tiny_config(tmp_path, steps=150, enable_wandb=True, wandb_project="tdmpc2-jax-test", wandb_silent=True,
                           tensorboard=False)))
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    logged = b"".join(p.read_bytes() for p in runs[0].glob("*.wandb"))
    for key in (b"eval/episode_reward", b"train/total_loss", b"tdmpc2-jax-test"):
        assert key in logged, key
    with pytest.raises(ValueError, match="enable_wandb=True needs --config.wandb_project"):
        host.train(resolve(tiny_config(tmp_path / "other", enable_wandb=True)))


def final_params(work_dir):
    _, params, target = checkpoints.load_model(str(pathlib.Path(work_dir) / "checkpoints"))
    return params, target


@pytest.mark.slow
def test_kill_9_then_resume_ends_with_the_same_parameters(tmp_path):
    """The killed and the resumed run load the programs the first run compiled (compilation_cache)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cache = tmp_path / "xla"
    straight = tmp_path / "straight"
    subprocess.run(cli("train", "cartpole-balance", straight, compilation_cache=cache), check=True, env=env,
                   capture_output=True)
    assert list(cache.glob("*/jit_update-*-cache")), "the update program is kept for later runs"

    killed = tmp_path / "killed"
    kill_9_once(cli("train", "cartpole-balance", killed, compilation_cache=cache), killed / "checkpoints" / "100", env)
    survived = checkpoints.latest_step(str(killed / "checkpoints"))
    assert survived is not None and survived < 301, "the run must be killed mid-way"
    subprocess.run(cli("train", "cartpole-balance", killed, resume=True, compilation_cache=cache), check=True, env=env,
                   capture_output=True)

    jax.tree.map(np.testing.assert_array_equal, final_params(straight), final_params(killed))
    assert [r["agent_step"] for r in rows(killed / "eval.csv")] == [r["agent_step"] for r in rows(straight / "eval.csv")]


@pytest.mark.slow
def test_resume_refuses_another_runs_checkpoint(tmp_path):
    host.train(resolve(tiny_config(tmp_path, steps=120)))
    with pytest.raises(ValueError, match="cannot resume.*latent_dim: model has 64, checkpoint has 16"):
        host.train(resolve(tiny_config(tmp_path, steps=120, latent_dim=64, resume=True)))


@pytest.mark.slow
def test_init_from_starts_a_new_run_from_a_checkpoint_s_weights(tmp_path):
    host.train(resolve(tiny_config(tmp_path / "first", steps=150)))
    first = final_params(tmp_path / "first")
    # the second run holds the first one's weights until its first update (after 120 seed steps), then trains
    host.train(resolve(tiny_config(tmp_path / "second", steps=150, seed_steps=120, checkpoint_every=50,
                           init_from=str(tmp_path / "first/checkpoints"))))
    _, *before_updates = checkpoints.load_model(str(tmp_path / "second" / "checkpoints"), step=100)
    jax.tree.map(np.testing.assert_array_equal, tuple(before_updates), first)
    trained, _ = final_params(tmp_path / "second")
    assert not np.array_equal(trained["pi"]["layers_0"]["linear"]["kernel"], first[0]["pi"]["layers_0"]["linear"]["kernel"])
    with pytest.raises(ValueError, match="init_from=.* does not fit this run: latent_dim: model has 64, checkpoint has 16"):
        host.train(resolve(tiny_config(tmp_path / "third", latent_dim=64, init_from=str(tmp_path / "first/checkpoints"))))
    with pytest.raises(FileNotFoundError, match="init_from=.*nowhere: no such checkpoint"):
        host.train(resolve(tiny_config(tmp_path / "third", init_from=str(tmp_path / "nowhere"))))


@pytest.mark.slow
def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    original = host.Agent.update

    def poisoned(self, state, batch, key):
        state, metrics = original(self, state, batch, key)
        return state, dict(metrics, total_loss=metrics["total_loss"] * np.nan)

    monkeypatch.setattr(host.Agent, "update", poisoned)
    with pytest.raises(NonFiniteLoss, match="non-finite total_loss at agent step 100"):
        host.train(resolve(tiny_config(tmp_path, seed_steps=100, checkpoint_every=50)))
    assert checkpoints.latest_step(str(tmp_path / "checkpoints")) == 100


@pytest.mark.slow
def test_physics_instability_ends_the_episode():
    from dm_control.rl.control import PhysicsError

    env = DMCEnv("cartpole-balance", 0)
    env.reset()

    def unstable(action):
        raise PhysicsError("diverged")

    env._env.step = unstable
    result = env.step(np.zeros(env.action_dim))
    assert result.done and result.physics_error


@pytest.mark.slow
def test_cli_errors_are_one_clear_line(tmp_path):
    out = subprocess.run(cli("train", "cartpol-balance", tmp_path), capture_output=True, text=True)
    assert out.returncode == 2 and "did you mean 'cartpole-balance'" in out.stderr
    out = subprocess.run(cli("train", "cartpole-balance", tmp_path) + ["--config.horizn=4"], capture_output=True,
                         text=True)
    assert out.returncode == 2 and 'Did you mean "horizon"' in out.stderr
    evaluate = [sys.executable, "-m", "tdmpc2_jax.evaluate", f"--config={ROOT / 'tdmpc2_jax' / 'configs' / 'dmc.py'}:cartpole-balance",
                "--checkpoint", str(tmp_path / "nothing"), "--episodes", "1"]
    out = subprocess.run(evaluate, capture_output=True, text=True)
    assert out.returncode == 2 and "no checkpoint directory" in out.stderr
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage")
    out = subprocess.run(evaluate[:-4] + ["--checkpoint", str(corrupt), "--episodes", "1"], capture_output=True,
                         text=True)
    assert out.returncode == 2 and "cannot read" in out.stderr


@pytest.mark.slow
def test_evaluate_cli_reports_returns_and_writes_a_video(tmp_path):
    host.train(resolve(tiny_config(tmp_path, steps=120)))
    video = tmp_path / "eval.mp4"
    args = [sys.executable, "-m", "tdmpc2_jax.evaluate", f"--config={ROOT / 'tdmpc2_jax' / 'configs' / 'dmc.py'}:cartpole-balance",
            *tiny.flags(tiny.PLANNER, episode_length=50), "--checkpoint", str(tmp_path / "checkpoints"),
            "--episodes", "2", "--video", str(video)]
    out = subprocess.run(args, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2 episodes, return mean" in out.stdout and "episode lengths [50]" in out.stdout
    assert video.stat().st_size > 1000
    other = subprocess.run(args[:3] + [f"--config={ROOT / 'tdmpc2_jax' / 'configs' / 'dmc.py'}:walker-walk"] + args[4:-2],
                           capture_output=True, text=True)
    assert other.returncode == 2 and "task walker-walk has obs 24 / action 6" in other.stderr


@pytest.mark.slow
def test_evaluate_runs_an_official_pt_checkpoint(parity_dir):
    """The parity weights are an official walker-run model (obs 24, action 6): evaluate converts them on the fly."""
    args = [sys.executable, "-m", "tdmpc2_jax.evaluate", f"--config={ROOT / 'tdmpc2_jax' / 'configs' / 'dmc.py'}:walker-run",
            *tiny.flags(tiny.PLANNER, episode_length=30), "--checkpoint", str(parity_dir / "model_state.pt"),
            "--episodes", "2"]
    out = subprocess.run(args, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "walker-run: 2 episodes, return mean" in out.stdout and "episode lengths [30]" in out.stdout


@pytest.mark.slow
def test_a_finished_run_resumed_with_a_larger_budget_goes_on_with_its_buffer(tmp_path):
    host.train(resolve(tiny_config(tmp_path, steps=150, checkpoint_every=1000)))
    _, meta = checkpoints.read_meta(str(tmp_path / "checkpoints"))
    host.train(resolve(tiny_config(tmp_path, steps=300, checkpoint_every=1000, resume=True)))
    assert checkpoints.latest_step(str(tmp_path / "checkpoints")) == 301
    train = rows(tmp_path / "train.csv")
    episodes = [int(r["episode"]) for r in train]
    assert meta["episode"] == 3 and episodes == list(range(1, 6))  # the episode count goes on
    assert int(train[-1]["agent_step"]) == 251  # two more episodes of 50 steps logged, from step 151
    with pytest.raises(ValueError, match="buffer holds .* rows, more than the .* of this run"):
        host.train(resolve(tiny_config(tmp_path, steps=150, checkpoint_every=1000, resume=True)))
