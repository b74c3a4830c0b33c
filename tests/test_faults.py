"""Faults lose nothing: every file of a checkpoint step damaged in turn (deleted, truncated, filled
with garbage), a checkpoint of another run, a full disk, a read-only directory, kill -9 during a
write, the command lines' one-line error edge, and a process of a multi-process run whose runtime
aborts (process_guard)."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tiny
from helpers import ROOT
from tdmpc2_jax import checkpoints

STEPS = (100, 200, 251)
# the kinds of file orbax writes in a step; `_kind_path` finds the one with a hashed name
KINDS = ("_CHECKPOINT_METADATA", "commit_success.txt", "meta/commit_success.txt", "state/commit_success.txt",
         "meta/metadata", "state/_METADATA", "state/_sharding", "state/array_metadatas/process_0",
         "state/manifest.ocdbt", "state/d/NODE", "state/ocdbt.process_0/d/DATA",
         "state/ocdbt.process_0/manifest.ocdbt", "state/ocdbt.process_0/d/NODE")
# files that no read of a committed step uses: the writing process's own database index, and the
# optional JSON files of jax.Array leaves when absent (each is checked when present)
NEVER_READ = {"state/ocdbt.process_0/manifest.ocdbt", "state/ocdbt.process_0/d/NODE"}
OPTIONAL = {"state/_sharding", "state/array_metadatas/process_0"}
PROBLEM = {"delete": "missing", "truncate": "truncated", "garbage": "corrupt"}


def tree(step: int) -> dict:
    """A tiny state: an array too large to sit inline in the b-tree (a data file of its own), a
    jax.Array (which adds _sharding and array_metadatas) and a small inline one."""
    rng = np.random.default_rng(step)
    return {"params": {"w": rng.normal(size=(1000,)).astype(np.float32), "b": jnp.arange(4.0) + step},
            "target_qs": {"q": np.arange(3, dtype=np.int32) * step}}


def like() -> dict:
    return jax_free(tree(0))


def jax_free(t: dict) -> dict:
    return {k: {n: np.asarray(v) for n, v in sub.items()} for k, sub in t.items()}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    directory = tmp_path_factory.mktemp("written") / "checkpoints"
    for step in STEPS:
        checkpoints.save(str(directory), step, tree(step), tiny.agent_config(), extra_meta={"agent_step": step})
    return directory


@pytest.fixture
def ckpt(written, tmp_path):
    """A fresh copy of the three-step checkpoint directory."""
    return str(shutil.copytree(written, tmp_path / "checkpoints"))


def _kind_path(directory: str, step: int, kind: str) -> str:
    """The file of `kind` in step `step`: NODE is a b-tree node, DATA the largest data file."""
    step_dir = os.path.join(directory, str(step))
    folder, name = os.path.split(kind)
    if name not in ("NODE", "DATA"):
        return os.path.join(step_dir, kind)
    files = sorted((os.path.join(step_dir, folder, f) for f in os.listdir(os.path.join(step_dir, folder))),
                   key=os.path.getsize)
    return files[-1] if name == "DATA" else files[0]


def _damage(path: str, how: str) -> None:
    size = os.path.getsize(path)
    if how == "delete":
        os.remove(path)
    elif how == "truncate":
        os.truncate(path, size // 2)
    else:
        with open(path, "wb") as f:
            f.write(np.random.default_rng(size).bytes(size))


def _assert_equal_trees(got, want) -> None:
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_a_step_has_every_kind_of_file_the_damage_tests_cover(written):
    step_dir = written / "251"
    files = {str(p.relative_to(step_dir)) for p in step_dir.rglob("*") if p.is_file()}
    covered = {os.path.relpath(_kind_path(str(written), 251, kind), step_dir) for kind in KINDS}
    process_files = {f for f in files if f.startswith("state/ocdbt.process_0/d/")}
    # every file is of a covered kind: the process's other files are b-tree nodes like the one covered
    assert files - covered <= process_files and covered <= files


@pytest.mark.parametrize("how", ["delete", "truncate", "garbage"])
@pytest.mark.parametrize("kind", KINDS)
def test_damage_to_any_file_is_named_and_resume_falls_back_to_the_previous_step(ckpt, kind, how):
    path = _kind_path(ckpt, 251, kind)
    _damage(path, how)
    if kind in NEVER_READ or (kind in OPTIONAL and how == "delete"):
        # nothing read depends on it: the step is whole and reads back exactly
        assert checkpoints.verify(ckpt, 251)["agent_step"] == 251
        _assert_equal_trees(checkpoints.restore_exact(ckpt, 251, like()), jax_free(tree(251)))
        _assert_equal_trees(checkpoints.restore(ckpt, like(), 251)[0], jax_free(tree(251)))
        assert checkpoints.newest_whole(ckpt, pytest.fail)[0] == 251
        return
    with pytest.raises(checkpoints.DamagedCheckpoint) as caught:
        checkpoints.verify(ckpt, 251)
    err = caught.value
    relative = os.path.relpath(path, os.path.join(ckpt, "251"))
    assert (err.step, err.path, err.file) == (251, path, relative)
    assert err.problem.startswith(PROBLEM[how]), err.problem
    assert str(err).startswith(f"checkpoint {ckpt} step 251 is damaged: {relative} is {PROBLEM[how]}")
    assert "\n" not in str(err) and "tensorstore" not in str(err)

    messages = []
    step, meta = checkpoints.newest_whole(ckpt, messages.append, unit="agent steps")
    assert (step, meta["agent_step"]) == (200, 200)
    assert checkpoints.latest_step(ckpt) == 200
    assert sorted(os.listdir(ckpt)) == ["100", "200", "251.damaged"]  # moved aside, not deleted
    assert messages == [f"checkpoint step 251 is damaged ({relative} is {err.problem}); moved to "
                        f"{ckpt}/251.damaged; resuming from step 200: the 51 agent steps after it are lost"]
    _assert_equal_trees(checkpoints.restore_exact(ckpt, 200, like()), jax_free(tree(200)))


def test_restore_names_damage_rather_than_a_misfit(ckpt):
    """The reads the loops and evaluation use say damage when a file is bad, never "does not fit"."""
    data = _kind_path(ckpt, 251, "state/ocdbt.process_0/d/DATA")
    _damage(data, "truncate")
    with pytest.raises(checkpoints.DamagedCheckpoint, match=r"step 251 is damaged: state/ocdbt.process_0/d/\w+ is "
                                                           r"truncated \([\d,]+ of at least [\d,]+ bytes\)$"):
        checkpoints.restore_exact(ckpt, 251, like())
    with pytest.raises(checkpoints.DamagedCheckpoint, match="step 251 is damaged"):
        checkpoints.restore(ckpt, like(), 251)
    os.remove(os.path.join(ckpt, "200", "meta", "metadata"))
    with pytest.raises(checkpoints.DamagedCheckpoint, match="step 200 is damaged: meta/metadata is missing"):
        checkpoints.read_meta(ckpt, 200)


def test_a_checkpoint_of_another_run_does_not_fit_and_is_not_damage(tmp_path):
    other = {"params": {"b": np.zeros(5, np.float32), "extra": np.ones(2, np.float32)},
             "target_qs": {"q": np.zeros(3, np.int32)}}
    checkpoints.save(str(tmp_path), 7, other, tiny.agent_config())
    assert "config" in checkpoints.verify(str(tmp_path), 7)  # whole
    with pytest.raises(ValueError) as caught:
        checkpoints.restore_exact(str(tmp_path), 7, like())
    assert not isinstance(caught.value, checkpoints.DamagedCheckpoint)
    assert str(caught.value) == (f"checkpoint {tmp_path} step 7 does not fit this run: params/b: run has shape (4,), "
                                 "checkpoint has (5,); params/extra: not in this run; params/w: not in the checkpoint")


def test_every_step_damaged_is_one_line_and_nothing_moves(ckpt):
    for step, kind in zip(STEPS, ("meta/metadata", "state/manifest.ocdbt", "state/ocdbt.process_0/d/DATA")):
        _damage(_kind_path(ckpt, step, kind), "delete")
    os.mkdir(os.path.join(ckpt, "300" + checkpoints.UNFINISHED_SUFFIX))
    before = sorted(os.listdir(ckpt))
    with pytest.raises(checkpoints.NoWholeCheckpoint) as caught:
        checkpoints.newest_whole(ckpt, pytest.fail)
    assert str(caught.value).startswith(f"no readable checkpoint in {ckpt}, nothing was deleted: steps 100, 200 "
                                        "and 251 are damaged (251: state/ocdbt.process_0/d/")
    assert str(caught.value).endswith("; 200: state/manifest.ocdbt is missing; 100: meta/metadata is missing)")
    assert [d.step for d in caught.value.damaged] == [251, 200, 100]
    assert sorted(os.listdir(ckpt)) == before


def test_fallback_over_several_damaged_steps_removes_unfinished_writes_only(ckpt):
    _damage(_kind_path(ckpt, 251, "state/d/NODE"), "garbage")
    _damage(_kind_path(ckpt, 200, "_CHECKPOINT_METADATA"), "truncate")
    os.mkdir(os.path.join(ckpt, "251.damaged"))  # taken by an earlier fault
    shutil.copytree(os.path.join(ckpt, "100"), os.path.join(ckpt, "300" + checkpoints.UNFINISHED_SUFFIX))
    assert checkpoints.latest_step(ckpt) == 251  # an unfinished write is no step
    messages = []
    assert checkpoints.newest_whole(ckpt, messages.append, unit="updates")[0] == 100
    assert sorted(os.listdir(ckpt)) == ["100", "200.damaged", "251.damaged", "251.damaged-2"]
    assert messages == [f"checkpoint steps 251 and 200 are damaged (251: state/d/"
                        f"{os.listdir(os.path.join(ckpt, '251.damaged-2', 'state', 'd'))[0]} is corrupt; "
                        f"200: _CHECKPOINT_METADATA is truncated); moved to {ckpt}/251.damaged-2 and "
                        f"{ckpt}/200.damaged; resuming from step 100: the 151 updates after it are lost"]


# ---------------------------------------------------------------------------------------------
# faults in a process of their own

CHILD = """
import ctypes, os, resource, signal, sys, time
import numpy as np
sys.path.insert(0, {tests!r})
import tiny
from tdmpc2_jax import checkpoints
from tdmpc2_jax.cli import error_edge

directory, run_dir = {directory!r}, {run_dir!r}
big = {{"params": {{"w": np.random.default_rng(0).normal(size=(100_000,)).astype(np.float32)}}}}
"""

DROP_ROOT_FILE_ACCESS = """
if os.geteuid() == 0:  # root writes into read-only directories unless it drops CAP_DAC_OVERRIDE (and READ_SEARCH)
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]
    libc, header, data = ctypes.CDLL(None, use_errno=True), Header(0x20080522, 0), (Data * 2)()
    assert libc.capget(ctypes.byref(header), data) == 0
    data[0].effective &= ~0b110
    assert libc.capset(ctypes.byref(header), data) == 0
"""


def _child(directory, run_dir, body: str, prelude: str = "") -> list[str]:
    code = CHILD.format(tests=str(ROOT / "tests"), directory=str(directory), run_dir=str(run_dir))
    return [sys.executable, "-c", code + prelude + textwrap.dedent(body)]


def _run(args) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_a_full_disk_stops_the_write_in_one_line_and_keeps_the_last_checkpoint(ckpt, tmp_path):
    out = _run(_child(ckpt, tmp_path / "run", """
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, 64_000))
        with error_edge(run_dir):
            checkpoints.save(directory, 300, big, tiny.agent_config(), max_to_keep=1)
        """))
    log = tmp_path / "run" / "error.log"
    assert out.returncode == 1, out.stderr[-3000:]
    assert out.stderr == (f"error: cannot write checkpoint step 300 in {ckpt}: File too large (EFBIG); the last "
                          f"checkpoint, step 251, is kept (details in {log})\n")
    assert "CheckpointWriteError" in log.read_text() and "File too large" in log.read_text()
    assert sorted(os.listdir(ckpt)) == ["100", "200", "251"]  # max_to_keep=1 deleted nothing; no unfinished write
    assert checkpoints.verify(ckpt, 251)["agent_step"] == 251


def test_a_read_only_directory_stops_the_write_in_one_line(ckpt, tmp_path):
    os.chmod(ckpt, 0o555)
    try:
        out = _run(_child(ckpt, tmp_path, """
            try:
                checkpoints.save(directory, 300, big, tiny.agent_config())
            except checkpoints.CheckpointWriteError as err:
                print(err, err.last_step)
            """, prelude=DROP_ROOT_FILE_ACCESS))
    finally:
        os.chmod(ckpt, 0o755)
    assert out.returncode == 0 and out.stderr == "", out.stderr[-3000:]
    assert out.stdout == (f"cannot write checkpoint step 300 in {ckpt}: Permission denied (EACCES); the last "
                          "checkpoint, step 251, is kept 251\n")
    assert sorted(os.listdir(ckpt)) == ["100", "200", "251"]
    assert checkpoints.verify(ckpt, 251)["agent_step"] == 251


def test_kill_9_during_a_write_leaves_the_previous_step_to_resume_from(ckpt, tmp_path):
    """The writer is killed once every file of step 300 is written, before orbax commits it."""
    child = subprocess.Popen(_child(ckpt, tmp_path, """
        from orbax.checkpoint._src.path import atomicity

        async def stall(self):
            print("committing", flush=True)
            time.sleep(600)

        atomicity.AtomicRenameTemporaryPath.finalize = stall
        checkpoints.save(directory, 300, big, tiny.agent_config(), max_to_keep=1)
        """), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        assert child.stdout.readline() == "committing\n"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert "300" + checkpoints.UNFINISHED_SUFFIX in os.listdir(ckpt)
    assert checkpoints.latest_step(ckpt) == 251
    messages = []
    assert checkpoints.newest_whole(ckpt, messages.append)[0] == 251 and messages == []
    assert sorted(os.listdir(ckpt)) == ["100", "200", "251"]  # the unfinished write is gone, nothing else
    checkpoints.save(ckpt, 300, tree(300), tiny.agent_config())  # the step is written again
    assert checkpoints.verify(ckpt, 300)["config"]["obs_dim"] == 5


def test_reading_a_damaged_checkpoint_prints_one_line_without_event_loop_noise(ckpt, tmp_path):
    _damage(_kind_path(ckpt, 251, "state/ocdbt.process_0/d/DATA"), "garbage")
    out = _run(_child(ckpt, tmp_path, """
        like = {"params": {"w": np.zeros(1000, np.float32), "b": np.zeros(4, np.float32)},
                "target_qs": {"q": np.zeros(3, np.int32)}}
        with error_edge(run_dir):
            checkpoints.restore_exact(directory, 251, like)
        """))
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "Event loop is closed" not in out.stderr
    assert out.stderr.startswith(f"error: checkpoint {ckpt} step 251 is damaged: state/ocdbt.process_0/d/")
    assert out.stderr.endswith(f" is corrupt (details in {tmp_path}/error.log)\n")


# ---------------------------------------------------------------------------------------------
# the command lines' error edge

EDGE = """
import asyncio, sys
from tdmpc2_jax.cli import error_edge

class Noisy:  # reports an exception from __del__ at shutdown, as orbax's closed event loops do
    def __init__(self, error):
        self.error = error
    def __del__(self):
        raise self.error

loop = asyncio.new_event_loop()
loop.close()
kept = [Noisy(RuntimeError("Event loop is closed")), Noisy(KeyError("unrelated"))]
"""


def test_the_error_edge_prints_one_line_and_logs_the_traceback(tmp_path):
    out = _run([sys.executable, "-c", EDGE + textwrap.dedent(f"""
        with error_edge(lambda: {str(tmp_path / 'run')!r}):
            {{}}["absent"]
        """)])
    log = tmp_path / "run" / "error.log"
    assert out.returncode == 1
    assert out.stderr.splitlines()[0] == f"error: KeyError: 'absent' (details in {log})"
    # at shutdown: the unrelated report is printed, the event loop's is not
    assert "KeyError: 'unrelated'" in out.stderr and "Event loop is closed" not in out.stderr
    assert "Traceback" in log.read_text() and "KeyError: 'absent'" in log.read_text()


def test_the_error_edge_exits_2_for_usage_errors_and_logs_elsewhere_without_a_run_dir(tmp_path):
    out = _run([sys.executable, "-c", textwrap.dedent("""
        from tdmpc2_jax.cli import error_edge
        with error_edge(usage_errors=(ValueError,)):
            raise ValueError("--config.horizon must be positive")
        """)])
    assert (out.returncode, out.stderr) == (2, "error: --config.horizon must be positive\n")
    out = _run([sys.executable, "-c", textwrap.dedent("""
        from tdmpc2_jax.cli import error_edge
        with error_edge(None):
            raise OSError("the disk went away")
        """)])
    assert out.returncode == 1
    line, = out.stderr.splitlines()
    assert line.startswith("error: the disk went away (details in ") and line.endswith(".log)")
    log = line.removeprefix("error: the disk went away (details in ").removesuffix(")")
    assert "OSError: the disk went away" in open(log).read()
    os.remove(log)


# ---------------------------------------------------------------------------------------------
# the speculative controller's files


@pytest.mark.parametrize("content, problem", [
    (b'{"walker-walk@host": {"3": {"tau": [Infinity, 0.1', "not JSON"),  # cut short
    (b"\x00\xff\x10garbage", "not JSON"),
    (b'["a", "list"]', "not a table of task@backend entries"),
    (b'{"walker-walk@host": {"3": {"quantile": 0.95}}}', "entry walker-walk@host 3 holds no list of thresholds"),
])
def test_a_damaged_calibration_file_is_one_line_naming_it(tmp_path, content, problem):
    from tdmpc2_jax.speculative.calibration import calibration_path, read_calibration, write_calibration

    path = calibration_path(str(tmp_path))
    with open(path, "wb") as f:
        f.write(content)
    for use in (lambda: read_calibration(str(tmp_path), "walker-walk", "host"),
                lambda: write_calibration(str(tmp_path), "walker-walk", "host", 2, "latent", np.ones(2), 0.9, 1, 0)):
        with pytest.raises(ValueError) as caught:
            use()
        assert str(caught.value).startswith(f"calibration file {path} is damaged: {problem}")
        assert "\n" not in str(caught.value) and str(caught.value).endswith("calibrate again")
    with open(path, "rb") as f:
        assert f.read() == content  # a refused write leaves the file as it was
    assert os.listdir(tmp_path) == [os.path.basename(path)]  # and no temporary file


def test_a_calibration_write_that_fails_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    from tdmpc2_jax.speculative import calibration

    calibration.write_calibration(str(tmp_path), "walker-walk", "host", 2, "latent", np.asarray([np.inf, 0.5]), 0.9, 4, 0)
    before = open(calibration.calibration_path(str(tmp_path))).read()

    def full_disk(table, f, **kwargs):
        f.write('{"walker-walk@host": ')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(calibration.json, "dump", full_disk)
    with pytest.raises(OSError, match="No space left"):
        calibration.write_calibration(str(tmp_path), "walker-walk", "host", 3, "latent", np.ones(3), 0.9, 4, 0)
    assert open(calibration.calibration_path(str(tmp_path))).read() == before
    assert os.listdir(tmp_path) == [calibration.CALIBRATION_FILE]
    assert calibration.read_calibration(str(tmp_path), "walker-walk", "host") == {(2, "latent"): [np.inf, 0.5]}


@pytest.fixture(scope="module")
def corrector(tmp_path_factory):
    from tdmpc2_jax.speculative import fitting
    from tdmpc2_jax.speculative.correctors import Corrector, CorrectorSpec

    spec = CorrectorSpec(kind="mlp", latent_dim=16, action_dim=1, max_k=3, hidden=8)
    directory = tmp_path_factory.mktemp("corrector") / "corrector"
    fitting.save(str(directory), Corrector(spec).init(jax.random.key(0)), spec, dict(task="toy", K=3))
    return directory


@pytest.mark.parametrize("kind, how", [("meta/metadata", "truncate"), ("state/_METADATA", "garbage"),
                                       ("state/manifest.ocdbt", "delete"), ("state/d/NODE", "truncate"),
                                       ("meta/metadata", "delete")])
def test_a_damaged_corrector_is_one_line_naming_the_file(corrector, tmp_path, kind, how):
    from tdmpc2_jax.speculative import fitting

    directory = str(shutil.copytree(corrector, tmp_path / "corrector"))
    _, params, _ = fitting.load(directory, task="toy")  # whole: it loads
    path = _kind_path(directory, 0, kind)
    _damage(path, how)
    with pytest.raises(checkpoints.DamagedCheckpoint) as caught:
        fitting.load(directory, task="toy")
    relative = os.path.relpath(path, os.path.join(directory, "0"))
    assert str(caught.value).startswith(f"checkpoint {directory} step 0 is damaged: {relative} is {PROBLEM[how]}")
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------------------------------------
# bad input to the command lines: one line, exit 2


@pytest.mark.parametrize("args, line", [
    (["tdmpc2_jax.train", "--config=configs/nope.py:x"], "error: --config file configs/nope.py does not exist"),
    (["tdmpc2_jax.train", "--config=configs/nope.py:x", "--config.steps=5"],
     "error: --config file configs/nope.py does not exist"),
    (["tdmpc2_jax.evaluate", "--config", "configs/nope.py", "--checkpoint", "."],
     "error: --config file configs/nope.py does not exist"),
    (["tdmpc2_jax.convert", "GARBAGE", "out"], "error: GARBAGE: cannot read it: not a torch.save zip archive"),
    (["tdmpc2_jax.convert", "CUT", "out"], "error: CUT: cannot read it: not a torch.save zip archive"),
])
def test_bad_files_given_to_a_command_are_one_line(tmp_path, args, line):
    garbage, cut = tmp_path / "garbage.pt", tmp_path / "cut.pt"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    chunk = (ROOT / "tests" / "fixtures" / "offline_mt3" / "chunk_0.pt").read_bytes()
    cut.write_bytes(chunk[: len(chunk) // 2])  # a torch.save archive cut short
    args = [{"GARBAGE": str(garbage), "CUT": str(cut), "out": str(tmp_path / "out")}.get(a, a) for a in args]
    line = line.replace("GARBAGE", str(garbage)).replace("CUT", str(cut))
    out = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(line), out.stderr[-3000:]
    assert not (tmp_path / "out").exists()


# a child that writes what JAX's runtime writes when another process of its run stops, then aborts
NATIVE_ABORT = """
print("eval at 48 agent steps", flush=True)
print("a warning from Python", file=sys.stderr, flush=True)
print("W1207 16:39:42.922277   32645 preemption_sync_manager.cc:147] Failed to retrieve preemption notice",
      file=sys.stderr)
print("Additional GRPC error information from remote target coordination_service", file=sys.stderr)
print("F1207 16:28:44.088872   28997 client.h:80] Terminating process because the JAX distributed service "
      "detected fatal errors. This most likely indicates that another task died", file=sys.stderr)
print("*** Check failure stack trace: ***", file=sys.stderr, flush=True)
os.abort()
"""


def _guarded(run_dir, child: str) -> subprocess.CompletedProcess:
    """A command that watches itself with process_guard, `child` being what its child process does."""
    program = textwrap.dedent(f"""
        import os, signal, sys
        from tdmpc2_jax import process_guard
        if not process_guard.is_child():
            sys.exit(process_guard.watch({str(run_dir)!r}, 1, 2))
        process_guard.die_with_parent()
    """) + textwrap.dedent(child)
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_a_native_abort_of_a_guarded_process_is_one_line_and_its_output_is_kept(tmp_path):
    os.makedirs(tmp_path / "checkpoints" / "48")
    out = _guarded(tmp_path, NATIVE_ABORT)
    assert out.returncode == 1
    assert out.stdout == "eval at 48 agent steps\n"
    assert out.stderr == (f"a warning from Python\nerror: process 1 of 2 stopped: another process of the run "
                          f"stopped; the newest checkpoint is step 48 in {tmp_path}/checkpoints: start every "
                          f"process again with --config.resume=True (details in {tmp_path}/process1.log)\n")
    log = (tmp_path / "process1.log").read_text()
    assert "Additional GRPC error" in log and "*** Check failure stack trace: ***" in log


def test_a_guarded_process_passes_its_status_through_and_says_when_a_signal_ended_it(tmp_path):
    out = _guarded(tmp_path, "print('done'); sys.exit(3)")
    assert (out.returncode, out.stdout, out.stderr) == (3, "done\n", "")
    out = _guarded(tmp_path, "os.kill(os.getpid(), signal.SIGKILL)")
    assert out.returncode == 1
    assert out.stderr == (f"error: process 1 of 2 stopped: it was ended by SIGKILL; no checkpoint was written: "
                          f"start every process again with --config.resume=True "
                          f"(details in {tmp_path}/process1.log)\n")
