"""Multitask runs: the official task sets, the evaluate command on multitask checkpoints (official
weights of three mt30 tasks), online training over a task list and offline training on a dataset
in the official chunk format, with their bad inputs."""
import os
import subprocess
import sys

import numpy as np
import pytest

import tiny
from helpers import ROOT, SMALL, rows

from tdmpc2_jax.envs.task_sets import TASK_SETS, task_dim_of, task_set_of
from tdmpc2_jax.run_record import resolve

MULTITASK_WEIGHTS = ROOT / "tests" / "fixtures" / "parity_multitask" / "weights.npz"  # official, 3 tasks of mt30
WEIGHTS_TASKS = "walker-run,cheetah-run,cartpole-balance"
DATASET = ROOT / "tests" / "fixtures" / "offline_mt3"  # official chunk format, 3 tasks of mt30
DATASET_TASKS = "walker-walk,cartpole-swingup,cup-catch"
DMC = f"--config={ROOT / 'tdmpc2_jax' / 'configs' / 'dmc.py'}"


def test_official_task_sets_in_embedding_order():
    mt30, mt80 = TASK_SETS["mt30"], TASK_SETS["mt80"]
    assert len(mt30) == len(set(mt30)) == 30 and len(mt80) == len(set(mt80)) == 80
    assert mt80[:30] == mt30
    assert (mt30[0], mt30[10], mt30[18], mt30[19], mt30[29]) == (
        "walker-stand", "cartpole-swingup", "hopper-hop", "walker-walk-backwards", "pendulum-spin")
    assert (mt80[30], mt80[79]) == ("mw-assembly", "mw-hand-insert")
    assert (task_dim_of("mt30", 5), task_dim_of("mt30", 48), task_dim_of("mt30", 1), task_dim_of("mt30", 317),
            task_dim_of("mt80", 5)) == (64, 64, 96, 96, 96)


def test_a_run_names_a_set_or_lists_its_tasks():
    config = tiny.load_config("dmc.py", "mt80")
    assert task_set_of(config).tasks == TASK_SETS["mt80"]
    config = tiny.load_config("dmc.py", "cheetah-run")
    assert task_set_of(config) is None
    config.tasks = "cup-catch, walker-walk"
    assert task_set_of(config) == ("custom-mt2", ("cup-catch", "walker-walk"))
    config.tasks = "cup-catch,walker-walk,cup-catch"
    with pytest.raises(ValueError, match="cup-catch more than once"):
        task_set_of(config)
    config = tiny.load_config("dmc.py", "mt30")
    config.tasks = "cup-catch"
    with pytest.raises(ValueError, match="already names a task set"):
        task_set_of(config)


def evaluate(*args, cwd):
    return subprocess.run([sys.executable, "-m", "tdmpc2_jax.evaluate", *args, *SMALL], capture_output=True,
                          text=True, cwd=cwd, timeout=900)


def official_pt(tmp_path, old: bool = False) -> str:
    """The official multitask weights as an official checkpoint file, torch.save({"model": state_dict}),
    in the current layout or in the older one of the released checkpoints."""
    import torch

    from test_official import old_layout

    path = tmp_path / ("mt3-old.pt" if old else "mt3.pt")
    with np.load(MULTITASK_WEIGHTS) as weights:
        state = {k: weights[k] for k in weights.files}
    state = old_layout(state) if old else state
    torch.save({"model": {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}}, path)
    return str(path)


@pytest.mark.slow
def test_evaluate_runs_every_task_of_an_official_multitask_checkpoint(tmp_path):
    checkpoint = official_pt(tmp_path)
    out = evaluate(DMC, f"--config.tasks={WEIGHTS_TASKS}", "--checkpoint", checkpoint, "--episodes", "2",
                   cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if " return " in line]
    assert [line.split()[0] for line in lines] == WEIGHTS_TASKS.split(",")
    assert "mean over 3 of 3 tasks" in out.stdout
    table = rows(tmp_path / "evaluation-custom-mt3.csv")
    assert [r["task"] for r in table] == WEIGHTS_TASKS.split(",") and [r["index"] for r in table] == ["0", "1", "2"]
    means = [float(r["return_mean"]) for r in table]
    assert all(np.isfinite(means)) and all(0 <= m <= 20 for m in means)  # 10 agent steps of rewards in [0, 2]
    # one task of the set, selected with --tasks, from the older layout: the same return as in the full evaluation
    out = evaluate(DMC, f"--config.tasks={WEIGHTS_TASKS}", "--checkpoint", official_pt(tmp_path, old=True),
                   "--episodes", "2", "--tasks", "cartpole-balance", "--csv", "one.csv", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    (row,) = rows(tmp_path / "one.csv")
    assert row["task"] == "cartpole-balance" and float(row["return_mean"]) == pytest.approx(means[2])


@pytest.mark.parametrize("args, message", [
    (["--config.tasks=walker-run,cheetah-run"], "has 3 tasks, the set custom-mt2 has 2"),
    ([f"--config.tasks={WEIGHTS_TASKS}", "--tasks", "walker-walk"], "walker-walk not in the checkpoint's task set"),
    (["--config.task=mt30"], "has 3 tasks, the set mt30 has 30"),
    (["--config.task=walker-run"], "has 3 tasks and does not name them"),
])
@pytest.mark.slow
def test_multitask_evaluation_refuses_what_does_not_fit(tmp_path, args, message):
    out = evaluate(DMC, *args, "--checkpoint", official_pt(tmp_path), "--episodes", "1", cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not list(tmp_path.glob("*.csv"))


@pytest.mark.slow
def test_a_single_task_checkpoint_is_refused_for_a_task_set(tmp_path):
    from helpers import tiny_agent

    out = evaluate(f"{DMC}:mt30", "--checkpoint", tiny_agent(tmp_path / "agent"), "--episodes", "1", cwd=tmp_path)
    assert out.returncode == 2 and "is single-task: the task set mt30 needs a multitask checkpoint" in out.stderr
    assert not list(tmp_path.glob("*.csv"))


@pytest.mark.slow
def test_online_multitask_training_cycles_through_the_tasks(tmp_path):
    from tdmpc2_jax.loops import host

    config = tiny.run_config("dmc.py", "cartpole-balance", tmp_path, tasks="cartpole-balance,cup-catch,walker-walk",
                             steps=200, eval_freq=100, checkpoint_every=1000, episode_length=20, seed_steps=60)
    result = host.train(resolve(config))
    evals = rows(tmp_path / "eval.csv")
    assert [int(r["agent_step"]) for r in evals] == [0, 100, 200]
    for row in evals:
        per_task = [float(row[f"episode_reward+{t}"]) for t in ("cartpole-balance", "cup-catch", "walker-walk")]
        assert float(row["episode_reward"]) == pytest.approx(np.mean(per_task), abs=1e-3)
    assert result["lengths"] == [20, 20, 20]
    train = rows(tmp_path / "train.csv")
    assert len(train) == 10 and np.isfinite(float(train[-1]["total_loss"]))


def offline(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "tdmpc2_jax.train", DMC, f"--config.tasks={DATASET_TASKS}",
                           f"--config.work_dir={tmp_path / 'run'}", "--config.progress=False", *args,
                           *tiny.flags(tiny.AGENT, episode_length=10, eval_episodes=1)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=900)


@pytest.mark.slow
def test_offline_training_on_official_chunks_learns_evaluates_every_task_and_resumes(tmp_path):
    schedule = ["--config.steps=400", "--config.eval_freq=200", "--config.log_every=50",
                "--config.checkpoint_every=200", "--config.resume=True", f"--config.data_dir={DATASET}"]
    out = offline(tmp_path, *schedule)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "6 episodes (3,006 transitions" in out.stdout and "last eval (at 400 updates)" in out.stdout
    train = rows(tmp_path / "run" / "train.csv")
    assert [int(r["step"]) for r in train] == list(range(50, 401, 50))
    losses = [float(r["total_loss"]) for r in train]
    assert np.mean(losses[-2:]) < 0.7 * np.mean(losses[:2]), losses
    evals = rows(tmp_path / "run" / "eval.csv")
    assert [int(r["step"]) for r in evals] == [0, 200, 400]
    assert all(r[f"episode_reward+{t}"] != "" for r in evals for t in DATASET_TASKS.split(","))
    # killed after its checkpoint at 200: the resumed run logs what the uninterrupted one did
    for name in ("train.csv", "eval.csv"):
        os.rename(tmp_path / "run" / name, tmp_path / name)
    import shutil

    shutil.rmtree(tmp_path / "run" / "checkpoints" / "400")
    out = offline(tmp_path, *schedule)
    assert out.returncode == 0 and "400 updates (from 200)" in out.stdout, out.stderr[-3000:]
    drop = ("elapsed_time",)
    for name in ("train.csv", "eval.csv"):
        resumed = [{k: v for k, v in r.items() if k not in drop} for r in rows(tmp_path / "run" / name)]
        first = [{k: v for k, v in r.items() if k not in drop} for r in rows(tmp_path / name)]
        assert [r for r in resumed if int(r["step"]) > 200] == [r for r in first if int(r["step"]) > 200]


@pytest.mark.parametrize("args, message", [
    ([f"--config.data_dir={ROOT / 'tests'}"], "no dataset chunks match"),
    ([f"--config.data_dir={DATASET}", "--config.tasks=walker-walk,cartpole-swingup"],
     "task id 2 is outside [0, 2)"),
    ([f"--config.data_dir={DATASET}", "--config.tasks=cartpole-swingup,cup-catch,pendulum-swingup"],
     "obs has shape (3, 501, 24), expected (3, 501, 8)"),
])
def test_offline_training_refuses_a_dataset_that_does_not_fit(tmp_path, args, message):
    out = offline(tmp_path, "--config.steps=10", *args)
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_an_mjx_population_logs_each_tasks_return(tmp_path):
    from tdmpc2_jax.loops.mjx_run import Member, PopulationLog

    config = tiny.run_config("mjx.py", "cartpole-balance", tmp_path, tasks="cartpole-balance,pendulum-swingup")
    log = PopulationLog(resolve(config), [Member(1, 3e-4)], 2, 0, np.zeros(1, np.int64), ("cartpole-balance", "pendulum-swingup"))
    returns = np.asarray([[10.0, 20.0, 1.0, 3.0]])  # task-major: two episodes of each task
    (result,) = log.evaluation(0, returns, np.full((1, 4), 10))
    log.close()
    assert result["episode_reward+cartpole-balance"] == 15.0 and result["episode_reward+pendulum-swingup"] == 2.0
    assert result["episode_reward"] == 8.5
    (row,) = rows(tmp_path / "eval.csv")
    assert float(row["episode_reward+pendulum-swingup"]) == 2.0


def tiny_multitask_agent(directory, tasks) -> str:
    """An untrained tiny multitask agent for `tasks` (their real sizes) saved as an orbax model checkpoint."""
    import jax

    from tdmpc2_jax import checkpoints
    from tdmpc2_jax.agent import Agent
    from tdmpc2_jax.envs.task_sets import episode_length_of, known_dims
    from tdmpc2_jax.envs.registry import make_host_env

    dims = [known_dims(t) if t.startswith("mw-") else (lambda e: (e.obs_dim, e.action_dim))(make_host_env(t, 0))
            for t in tasks]
    cfg = tiny.agent_config(obs_dim=max(d[0] for d in dims), action_dim=max(d[1] for d in dims), multitask=True,
                            tasks=tuple(tasks), action_dims=tuple(d[1] for d in dims),
                            episode_lengths=tuple(episode_length_of(t) for t in tasks), task_dim=8)
    state = Agent(cfg).init(jax.random.key(0))
    checkpoints.save(str(directory), 1, {"params": state.params, "target_qs": state.target_qs}, cfg)
    return str(directory)


@pytest.mark.slow
def test_mt80_evaluates_dmcontrol_and_metaworld_tasks_of_its_set(tmp_path):
    tasks = TASK_SETS["mt80"]
    checkpoint = tiny_multitask_agent(tmp_path / "mt80", tasks)
    out = evaluate(f"{DMC}:mt80", "--checkpoint", checkpoint, "--episodes", "1", "--tasks", "cup-catch,mw-reach",
                   cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "mean over 2 of 2 tasks" in out.stdout
    cup, reach = rows(tmp_path / "evaluation-mt80.csv")
    assert (cup["task"], cup["index"], cup["episodes"], cup["success"]) == ("cup-catch", "12", "1", "")
    assert (reach["task"], reach["index"], reach["episodes"]) == ("mw-reach", "65", "1")
    assert reach["return_mean"] != "" and reach["success"] in ("0.0", "1.0")  # Meta-World defines success
    # the checkpoint names its tasks: another set of as many tasks is refused, and a single task of
    # its set runs with a single-task config
    other = ",".join(reversed(tasks))
    out = evaluate(DMC, f"--config.tasks={other}", "--checkpoint", checkpoint, "--episodes", "1", cwd=tmp_path)
    assert out.returncode == 2 and "was trained on other tasks: its task 0 is walker-stand" in out.stderr
    out = evaluate(f"{DMC}:cartpole-swingup", "--checkpoint", checkpoint, "--episodes", "1", "--csv", "one.csv",
                   cwd=tmp_path)
    assert out.returncode == 0 and [r["task"] for r in rows(tmp_path / "one.csv")] == ["cartpole-swingup"]
