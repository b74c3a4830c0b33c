"""A run over two processes (jax.distributed with a localhost coordinator, one CPU device each)
computes what one process with two devices computes; when one process is killed the other ends with
one line naming the checkpoint to resume from; started again, the run falls back over a damaged
newest checkpoint and resumes exactly from the checkpoint the two processes wrote together with
orbax. The runs step point-mass physics (toy_physics.py): only process 0 reads and writes JAX's
compilation cache, so every run's other process compiles all its programs."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import chex
import numpy as np
import pytest

from tdmpc2_jax import checkpoints

import tiny
from helpers import ROOT, rows
from test_fault_runs import data_file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def train_command(work_dir, **changes) -> list[str]:
    """The tiny MJX run on point-mass physics (toy_physics.py), acting with the policy over a 2-step
    horizon: each process compiles small programs, and what this test checks does not depend on them."""
    return [sys.executable, str(ROOT / "tests" / "toy_physics.py"), "tdmpc2_jax.train",
            f"--config={ROOT / 'tdmpc2_jax' / 'configs' / 'mjx.py'}:cartpole-balance",
            *tiny.flags(tiny.AGENT, tiny.MJX_RUN, dict(mpc=False, horizon=2), work_dir=work_dir, **changes)]


def start_two_processes(work_dir, **changes) -> list[subprocess.Popen]:
    """The same command in two processes that make one run together (stdout and stderr apart)."""
    port, env = free_port(), dict(os.environ, JAX_PLATFORMS="cpu")
    return [subprocess.Popen(train_command(work_dir, distributed=True, coordinator_address=f"localhost:{port}",
                                           num_processes=2, process_id=i, **changes),
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(2)]


def wait_for_step(ckpt_dir, step: int, processes, timeout: float = 1200) -> None:
    """Until checkpoint `step` is committed (or a process ends, or `timeout` s pass: a failure)."""
    start = time.time()
    while not (ckpt_dir / str(step)).is_dir():
        assert all(p.poll() is None for p in processes), [p.communicate()[1][-3000:] for p in processes]
        assert time.time() - start < timeout
        time.sleep(0.2)


@pytest.mark.slow
def test_two_processes_lose_one_resume_over_damage_and_match_one_process_with_two_devices(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    single = subprocess.run(train_command(one, steps=68, checkpoint_every=20), env=env, capture_output=True,
                            text=True, timeout=1200)
    assert single.returncode == 0, single.stderr[-3000:]
    assert "on 2 devices split by envs" in single.stdout

    # a longer run: process 0 (which also hosts the coordination service) is killed at step 48
    processes = start_two_processes(two, steps=400, checkpoint_every=20)
    wait_for_step(two / "checkpoints", 48, processes)
    processes[0].send_signal(signal.SIGKILL)
    out, err = processes[1].communicate(timeout=600)
    assert processes[1].returncode == 1
    assert "4 envs x 1 member(s) on 2 devices split by envs" in out
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    newest = checkpoints.latest_step(str(two / "checkpoints"))
    assert len(errors) == 1 and errors[0] == err.splitlines()[-1], err[-3000:]
    assert re.fullmatch(rf"error: process 1 of 2( stopped:|:) another process of the run stopped.*; the newest "
                        rf"checkpoint is step {newest} in {two}/checkpoints: start every process again with "
                        rf"--config.resume=True \(details in {two}/.*\)", errors[0]), errors[0]
    assert not any(noise in err for noise in ("Check failure", "Fatal Python error", "Traceback", ".cc:")), err

    # the newest checkpoint damaged: process 0 moves it aside and both resume from the one before
    os.truncate(data_file(two / "checkpoints" / str(newest)), 16)
    processes = start_two_processes(two, steps=68, checkpoint_every=20, resume=True)
    outputs = [p.communicate(timeout=1200) for p in processes]
    for i, (process, (out, err)) in enumerate(zip(processes, outputs)):
        assert process.returncode == 0, f"process {i}:\n{out[-2000:]}{err[-3000:]}"
    assert f"checkpoint step {newest} is damaged" in outputs[0][0]
    assert (two / "checkpoints" / f"{newest}.damaged").is_dir()

    assert checkpoints.latest_step(str(two / "checkpoints")) == 68
    evals = {name: rows(d / "eval.csv") for name, d in (("one", one), ("two", two))}
    assert [r["agent_step"] for r in evals["two"]] == [r["agent_step"] for r in evals["one"]] == ["0", "48", "68"]
    np.testing.assert_allclose([float(r["episode_reward"]) for r in evals["two"]],
                               [float(r["episode_reward"]) for r in evals["one"]], rtol=1e-4)
    assert (two / "process1" / "eval.csv").exists()  # the second process logs beside the first
    _, params_two, _ = checkpoints.load_model(str(two / "checkpoints"))
    _, params_one, _ = checkpoints.load_model(str(one / "checkpoints"))
    chex.assert_trees_all_close(params_two, params_one, rtol=1e-4, atol=1e-5)
