"""MJX training end to end: logs, checkpoints with the device buffer, exact resume, evaluation on
both backends, and clear errors on bad input."""
import shutil
import subprocess
import sys

import chex
import imageio
import jax
import numpy as np
import pytest

from tdmpc2_jax import acting, checkpoints
from tdmpc2_jax.agent import Agent
from tdmpc2_jax.loops import host, mjx_run
from tdmpc2_jax.run_record import resolve

import tiny
from helpers import ROOT, SMALL, rows


def tiny_config(work_dir, task="cartpole-balance", **changes):
    return tiny.run_config("mjx.py", task, work_dir, **changes)


def run_cli(module, config_file, task, *flags):
    args = [sys.executable, "-m", f"tdmpc2_jax.{module}", f"--config={ROOT / 'tdmpc2_jax' / 'configs' / config_file}:{task}", *flags]
    return subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=ROOT)


@pytest.mark.slow
def test_evaluations_fall_on_the_host_loop_s_grid_and_a_fresh_run_drops_old_rows(tmp_path):
    # seed phase of 6 batched steps (24 transitions, past the first multiple of eval_freq 20), then chunks of
    # 5 (20 transitions): boundaries at 24, 44, 64, 84; the i-th evaluation runs at the first one at or after 20 i
    config = tiny_config(tmp_path, seed_steps=24, eval_freq=20, steps=84, checkpoint_every=1000)
    (tmp_path / "eval.csv").write_text("step,agent_step,episode_reward\n0,0,1.0\n")  # an earlier run's row
    mjx_run.train(resolve(config))
    steps = [int(r["agent_step"]) for r in rows(tmp_path / "eval.csv")]
    assert steps == [0, 24, 44, 64, 84]
    assert all(20 * i <= step < 20 * (i + 1) for i, step in enumerate(steps))


@pytest.mark.slow
def test_a_run_logs_checkpoints_resumes_exactly_and_evaluates_on_host(tmp_path):
    straight = tmp_path / "straight"
    config = tiny_config(straight)
    program = mjx_run.CompiledRun(resolve(config), mjx_run.population([config.seed], [config.lr]))
    result = mjx_run.train(resolve(config), program=program)[0]
    evals = rows(straight / "eval.csv")
    # seed phase: 2 batched steps (8 transitions), then chunks of 5 (20 transitions): boundaries at 28, 48, 68;
    # evals at 0, at the first boundary at or after 40, and at the end; a checkpoint at 48 and at the end
    assert [int(r["agent_step"]) for r in evals] == [0, 48, 68]
    assert [int(r["step"]) for r in evals] == [0, 96, 136]
    assert result["episode_length"] == 10 and len(result["returns"]) == 2 and result["transitions"] == 68
    train = rows(straight / "train.csv")
    assert [int(r["agent_step"]) for r in train] == [8, 28, 48, 68]
    assert int(train[-1]["episode"]) == 4  # one 10-step episode per env in 17 batched steps
    assert np.isfinite(float(train[-1]["total_loss"]))
    assert checkpoints.latest_step(str(straight / "checkpoints")) == 68

    # a crash after the checkpoint at 48 (rows logged past it included), then a resume to 68:
    # the same final parameters, eval rows and episode counts as the uninterrupted run
    split = tmp_path / "split"
    shutil.copytree(straight, split)
    shutil.rmtree(split / "checkpoints" / "68")
    assert checkpoints.latest_step(str(split / "checkpoints")) == 48
    mjx_run.train(resolve(tiny_config(split, resume=True)), program=program)  # another work dir: the same programs
    _, params_a, target_a = checkpoints.load_model(str(straight / "checkpoints"))
    _, params_b, target_b = checkpoints.load_model(str(split / "checkpoints"))
    chex.assert_trees_all_equal((params_a, target_a), (params_b, target_b))
    assert rows(split / "eval.csv") != [] and \
        [r["episode_reward"] for r in rows(split / "eval.csv")] == [r["episode_reward"] for r in evals]
    assert [(r["agent_step"], r["episode"]) for r in rows(split / "train.csv")] == \
        [(r["agent_step"], r["episode"]) for r in train]

    with pytest.raises(ValueError, match="the CompiledRun given was built for another config"):
        mjx_run.train(resolve(tiny_config(split, resume=True, lr=1e-3)), program=program)
    # another config's checkpoint is refused, naming the difference
    with pytest.raises(ValueError, match="num_envs: run has 2, checkpoint has 4"):
        mjx_run.train(resolve(tiny_config(split, resume=True, num_envs=2)))

    # the MJX-trained model evaluates on host dm_control
    out = run_cli("evaluate", "dmc.py", "cartpole-balance", f"--checkpoint={straight / 'checkpoints'}",
                  "--episodes=1", *SMALL)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "cartpole-balance: 1 episodes" in out.stdout and "episode lengths [10]" in out.stdout


@pytest.mark.slow
def test_a_host_checkpoint_evaluates_on_mjx(tmp_path):
    config = tiny_config(tmp_path)
    cfg = resolve(config).agent_config(5, 1, 10)
    agent = Agent(cfg)
    state = agent.init(jax.random.key(0))
    plan_state = acting.Planners(agent).initial_state()
    checkpoints.save(str(tmp_path / "checkpoints"), 1, host.run_tree(state, plan_state, jax.random.key(1), None), cfg)
    out = run_cli("evaluate", "mjx.py", "cartpole-balance", f"--checkpoint={tmp_path / 'checkpoints'}", "--episodes=3",
                  f"--video={tmp_path / 'eval.mp4'}", *SMALL)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "cartpole-balance: 3 episodes" in out.stdout and "episode lengths [10]" in out.stdout
    assert out.stdout.count("  step ") == 10 and "  step 10/10 (" in out.stdout  # a line every tenth
    # the first episode drawn on host MuJoCo from its MJX physics states, one frame per step
    frames = imageio.mimread(tmp_path / "eval.mp4")
    assert len(frames) == 10 and frames[0].shape == (384, 384, 3) and frames[0].std() > 0


@pytest.mark.slow
def test_init_from_starts_every_member_from_the_checkpoint_with_its_own_learning_rate(tmp_path):
    config = tiny_config(tmp_path)
    program = mjx_run.CompiledRun(resolve(config), mjx_run.population([1], [1e-3, 3e-4]))
    params = Agent(program.agent_cfg).init(jax.random.key(7)).params
    carry = program.warm_started(program.initial_carry(), params, params["qs"])
    for member in range(2):
        chex.assert_trees_all_equal(jax.tree.map(lambda x: x[member], carry.train_state.params), params)
        chex.assert_trees_all_equal(jax.tree.map(lambda x: x[member], carry.train_state.target_qs), params["qs"])
    np.testing.assert_allclose(carry.train_state.model_opt_state.learning_rate, [1e-3, 3e-4])
    assert int(carry.train_state.step.sum()) == 0
    carry, _ = program.pretrain(carry, 2)  # the warm-started carry trains (its buffers can be donated)
    np.testing.assert_array_equal(carry.train_state.step, [2, 2])


@pytest.mark.slow
def test_updates_per_step_defaults_to_the_official_one_update_per_transition():
    config = tiny.load_config("mjx.py", "cartpole-balance")
    assert config.updates_per_step is None
    assert resolve(config).updates_per_step == config.num_envs == 64
    config.num_envs = 16
    assert resolve(config).updates_per_step == 16
    for explicit in (0, 1, 4):  # lower ratios stay available
        config.updates_per_step = explicit
        assert resolve(config).updates_per_step == explicit


@pytest.mark.parametrize("task, flags, message", [
    ("walker-wakl", [], "unknown MJX task 'walker-wakl'.*walker-walk"),
    ("dog-run", [], "configs/dmc.py:dog-run"),
    ("cartpole-balance", ["--config.num_envs=0"], "num_envs must be positive"),
    ("cartpole-balance", ["--config.updates_per_step=-1"], "updates_per_step must be >= 0, got -1"),
    ("cartpole-balance", ["--config.buffer_size=10000000000000", "--config.steps=10000000000000"],
     "replay buffer .* needs .* GiB per device but only"),
    ("cartpole-balance", ["--config.num_env=4"], "num_env.*did you mean.*num_envs|num_env"),
])
@pytest.mark.slow
def test_bad_input_gets_one_clear_line(tmp_path, task, flags, message):
    out = run_cli("train", "mjx.py", task, f"--config.work_dir={tmp_path}", *flags)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-2000:]
    assert __import__("re").search(message, lines[0]), lines[0]
