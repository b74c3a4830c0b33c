"""Faults in real runs, as a user meets them: the newest checkpoint of a host run damaged on disk,
every checkpoint damaged, a disk that fills up during a run, kill -9 while a checkpoint is written,
a damaged replay buffer inside a checkpoint, damaged offline dataset chunks, a damaged multitask
checkpoint given to evaluate, and a damaged newest checkpoint of an MJX run. Each run resumes from
the newest whole checkpoint and ends with exactly the parameters of the uninterrupted run, or stops
with one line and a non-zero exit status, never a traceback."""
import os
import pathlib
import resource
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import tensorstore as ts

import tiny
from helpers import ROOT
from tdmpc2_jax import checkpoints

STEPS = 250  # a host run checkpointed at agent steps 100, 200 and its end, 251
DMC = f"--config={ROOT / 'tdmpc2_jax' / 'configs' / 'dmc.py'}"
NOISE = ("Traceback", "Event loop is closed")


def train_command(work_dir, cache, **changes) -> list[str]:
    """The tiny host run of STEPS agent steps, loading (and adding to) the compiled programs in `cache`."""
    return [sys.executable, "-m", "tdmpc2_jax.train", f"{DMC}:cartpole-balance",
            *tiny.flags(tiny.AGENT, tiny.HOST_RUN, steps=STEPS, work_dir=work_dir, compilation_cache=cache, **changes)]


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=900, **kwargs)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> pathlib.Path:
    """An uninterrupted run (`straight/run`) and the compiled programs of its kind (`straight/xla`)."""
    root = tmp_path_factory.mktemp("straight")
    out = run(train_command(root / "run", root / "xla"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert checkpoints.committed_steps(str(root / "run" / "checkpoints")) == [100, 200, 251]
    return root


def copy_of(straight: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(shutil.copytree(straight / "run", tmp_path / "run"))


def model(ckpt_dir: pathlib.Path, step: int | None = None) -> tuple:
    """(params, target_qs) of a run checkpoint (the newest without `step`)."""
    return checkpoints.load_model(str(ckpt_dir), step=step)[1:]


def assert_same_model(a: tuple, b: tuple) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(np.testing.assert_array_equal, a, b)


def data_file(step_dir: pathlib.Path) -> pathlib.Path:
    """The largest data file of a step: the arrays' values that do not sit inline in the b-tree."""
    return max((step_dir / "state").glob("ocdbt.process_*/d/*"), key=lambda p: p.stat().st_size)


def assert_quiet(out: subprocess.CompletedProcess) -> None:
    assert not any(noise in out.stderr + out.stdout for noise in NOISE), out.stderr[-3000:]


def listing(directory: pathlib.Path) -> dict[str, int]:
    """{relative path: size} of every file under `directory`."""
    return {str(p.relative_to(directory)): p.stat().st_size for p in directory.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_resumes_from_the_previous_one_in_one_line(straight, tmp_path):
    """The scenario of a disk gone bad: the data file of step 251 cut short, the run resumed."""
    work = copy_of(straight, tmp_path)
    ckpt = work / "checkpoints"
    damaged = data_file(ckpt / "251")
    relative, size = damaged.relative_to(ckpt / "251"), damaged.stat().st_size // 2
    os.truncate(damaged, size)
    out = run(train_command(work, straight / "xla", resume=True))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr == ""
    lines = [line for line in out.stdout.splitlines() if line.startswith("checkpoint step")]
    assert len(lines) == 1, out.stdout
    assert lines[0].startswith(f"checkpoint step 251 is damaged ({relative} is truncated "
                               f"({size:,} of at least "), lines[0]
    assert lines[0].endswith(f" bytes)); moved to {ckpt}/251.damaged; resuming from step 200: "
                             "the 51 agent steps after it are lost"), lines[0]
    assert "agent steps 250 (from 200)" in out.stdout
    assert sorted(os.listdir(ckpt)) == ["100", "200", "251", "251.damaged"]  # moved aside, not deleted
    assert (ckpt / "251.damaged" / relative).stat().st_size == size
    # exactly the uninterrupted run's end: resuming from 200 loses nothing but time
    assert_same_model(model(ckpt), model(straight / "run" / "checkpoints"))


@pytest.mark.slow
def test_no_readable_checkpoint_is_one_line_and_nothing_is_deleted(straight, tmp_path):
    work = copy_of(straight, tmp_path)
    ckpt = work / "checkpoints"
    damaged = {step: data_file(ckpt / str(step)) for step in (100, 200, 251)}
    for path in damaged.values():
        os.truncate(path, 100)
    before = listing(work)
    out = run(train_command(work, straight / "xla", resume=True))
    assert out.returncode == 2
    assert_quiet(out)
    line, = out.stderr.splitlines()
    assert line.startswith(f"error: no readable checkpoint in {ckpt}, nothing was deleted: steps 100, 200 and 251 "
                           f"are damaged (251: {damaged[251].relative_to(ckpt / '251')} is truncated (100 of")
    assert listing(work) == before


@pytest.mark.slow
def test_a_full_disk_stops_the_run_in_one_line_and_its_last_checkpoint_resumes(straight, tmp_path):
    """Once step 100 is written, the run may write no file past 20,000 bytes: the logs stay below
    that, every checkpoint's tree metadata (state/_METADATA) is larger."""
    work = tmp_path / "run"
    limit = 20_000
    assert (straight / "run" / "checkpoints" / "200" / "state" / "_METADATA").stat().st_size > limit
    proc = subprocess.Popen(train_command(work, straight / "xla"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    deadline = time.time() + 600
    while not (work / "checkpoints" / "100").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (limit, limit))  # the disk is full: SIGXFSZ, Python ignores it
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 1, stderr[-3000:]
    assert not any(noise in stdout + stderr for noise in NOISE), stderr[-3000:]
    assert stderr == (f"error: cannot write checkpoint step 200 in {work / 'checkpoints'}: File too large (EFBIG); "
                      f"the last checkpoint, step 100, is kept (details in {work / 'error.log'})\n")
    assert "CheckpointWriteError" in (work / "error.log").read_text()
    assert os.listdir(work / "checkpoints") == ["100"]  # nothing half-written stays
    out = run(train_command(work, straight / "xla", resume=True))
    assert out.returncode == 0 and out.stderr == "", out.stderr[-3000:]
    assert "agent steps 250 (from 100)" in out.stdout
    assert_same_model(model(work / "checkpoints"), model(straight / "run" / "checkpoints"))


def kill_9_while_written(command: list[str], unfinished: pathlib.Path, timeout_s: float = 600) -> None:
    """Starts `command` and kills it with SIGKILL as soon as the directory `unfinished` (a write in
    progress) exists; fails if the run ends, or the write finishes, first."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.time() + timeout_s
    try:
        while not unfinished.exists():
            assert proc.poll() is None and time.time() < deadline, "the run ended before the write began"
            time.sleep(0.001)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_kill_9_during_a_checkpoint_write_resumes_from_the_previous_step(straight, tmp_path):
    work = tmp_path / "run"
    ckpt = work / "checkpoints"
    kill_9_while_written(train_command(work, straight / "xla"), ckpt / f"200{checkpoints.UNFINISHED_SUFFIX}")
    assert checkpoints.committed_steps(str(ckpt)) == [100]
    out = run(train_command(work, straight / "xla", resume=True))
    assert out.returncode == 0 and out.stderr == "", out.stderr[-3000:]
    assert "agent steps 250 (from 100)" in out.stdout and "checkpoint step" not in out.stdout
    assert sorted(os.listdir(ckpt)) == ["100", "200", "251"]  # the unfinished write is gone
    assert_same_model(model(ckpt), model(straight / "run" / "checkpoints"))


def value_file(step_dir: pathlib.Path, key: str) -> pathlib.Path:
    """The file holding the value of `key` in a step's array database (through its b-tree)."""
    state = str(step_dir / "state")
    base = ts.KvStore.open(f"file://{state}/").result()
    root = ts.ocdbt.dump(base).result()["versions"][-1]["root"]["location"]
    return pathlib.Path(checkpoints._walk_node(base, state, root)[key])


@pytest.mark.slow
@pytest.mark.parametrize("how, problem", [("truncate", "truncated"), ("garbage", "corrupt")])
def test_a_damaged_replay_buffer_is_damage_to_its_step(straight, tmp_path, how, problem):
    """The buffer is part of the run checkpoint's step: damage to the file of its observations makes
    the step damaged, and resume falls back to the step before."""
    ckpt = copy_of(straight, tmp_path) / "checkpoints"
    path = value_file(ckpt / "251", "buffer.obs/0.0")
    assert path != data_file(ckpt / "251")  # a file of its own, apart from the parameters'
    size = path.stat().st_size
    if how == "truncate":
        os.truncate(path, size // 2)
    else:
        path.write_bytes(np.random.default_rng(0).bytes(size))
    relative = path.relative_to(ckpt / "251")
    with pytest.raises(checkpoints.DamagedCheckpoint, match=f"step 251 is damaged: {relative} is {problem}"):
        checkpoints.verify(str(ckpt), 251)
    messages = []
    step, meta = checkpoints.newest_whole(str(ckpt), messages.append, "agent steps")
    assert (step, meta["agent_step"]) == (200, 200)
    assert len(messages) == 1 and messages[0].startswith(f"checkpoint step 251 is damaged ({relative} is {problem}")
    assert sorted(os.listdir(ckpt)) == ["100", "200", "251.damaged"]


# ---------------------------------------------------------------------------------------------
# the offline dataset, a multitask checkpoint, an MJX run

DATASET = ROOT / "tests" / "fixtures" / "offline_mt3"


@pytest.mark.parametrize("how, message", [
    ("truncate", "not a torch.save zip archive (a damaged file"),
    ("garbage", "not a torch.save zip archive"),
    ("empty", "not a torch.save zip archive"),
])
def test_a_damaged_offline_chunk_is_one_line_naming_the_file(tmp_path, how, message):
    data = pathlib.Path(shutil.copytree(DATASET, tmp_path / "data"))
    chunk = data / "chunk_1.pt"
    size = chunk.stat().st_size
    if how == "truncate":
        os.truncate(chunk, size - 100)  # the end of the zip's directory is lost
    else:
        chunk.write_bytes(b"" if how == "empty" else np.random.default_rng(0).bytes(size))
    out = run([sys.executable, "-m", "tdmpc2_jax.train", DMC, "--config.tasks=walker-walk,cartpole-swingup,cup-catch",
               f"--config.data_dir={data}", f"--config.work_dir={tmp_path / 'run'}", "--config.steps=10",
               "--config.progress=False", *tiny.flags(tiny.AGENT, episode_length=10, eval_episodes=1)])
    assert out.returncode == 2
    assert_quiet(out)
    line, = out.stderr.splitlines()
    assert line.startswith(f"error: {chunk}: ") and message in line, line


@pytest.mark.slow
def test_evaluating_a_damaged_multitask_checkpoint_is_one_line(tmp_path):
    from test_multitask import tiny_multitask_agent

    tasks = ("walker-walk", "cartpole-swingup", "cup-catch")
    ckpt = pathlib.Path(tiny_multitask_agent(tmp_path / "agent", tasks))
    damaged = data_file(ckpt / "1")
    os.truncate(damaged, damaged.stat().st_size // 2)
    out = run([sys.executable, "-m", "tdmpc2_jax.evaluate", DMC, f"--config.tasks={','.join(tasks)}",
               "--checkpoint", str(ckpt), "--episodes", "1", *tiny.flags(tiny.PLANNER, episode_length=10)])
    assert out.returncode == 2
    assert_quiet(out)
    line, = out.stderr.splitlines()
    assert line.startswith(f"error: checkpoint {ckpt} step 1 is damaged: {damaged.relative_to(ckpt / '1')} is "
                           "truncated ("), line


def mjx_command(work_dir, cache, **changes) -> list[str]:
    """The tiny MJX run on point-mass physics (toy_physics.py): checkpoints at 48 and 68 transitions."""
    return [sys.executable, str(ROOT / "tests" / "toy_physics.py"), "tdmpc2_jax.train",
            f"--config={ROOT / 'tdmpc2_jax' / 'configs' / 'mjx.py'}:cartpole-balance",
            *tiny.flags(tiny.AGENT, tiny.MJX_RUN, dict(mpc=False, horizon=2), work_dir=work_dir,
                        compilation_cache=cache, **changes)]


@pytest.mark.slow
def test_a_damaged_newest_mjx_checkpoint_resumes_from_the_previous_one(tmp_path):
    straight, work, cache = tmp_path / "straight", tmp_path / "run", tmp_path / "xla"
    out = run(mjx_command(straight, cache))
    assert out.returncode == 0, out.stderr[-3000:]
    assert checkpoints.committed_steps(str(straight / "checkpoints")) == [48, 68]
    shutil.copytree(straight, work)
    damaged = data_file(work / "checkpoints" / "68")
    damaged.write_bytes(np.random.default_rng(0).bytes(damaged.stat().st_size))
    out = run(mjx_command(work, cache, resume=True))
    assert out.returncode == 0, out.stderr[-3000:]
    assert_quiet(out)
    lines = [line for line in out.stdout.splitlines() if line.startswith("checkpoint step")]
    assert lines == [f"checkpoint step 68 is damaged ({damaged.relative_to(work / 'checkpoints' / '68')} is corrupt); "
                     f"moved to {work / 'checkpoints'}/68.damaged; resuming from step 48: the 20 transitions after "
                     "it are lost"], out.stdout
    assert sorted(os.listdir(work / "checkpoints")) == ["48", "68", "68.damaged"]
    assert_same_model(model(work / "checkpoints"), model(straight / "checkpoints"))
