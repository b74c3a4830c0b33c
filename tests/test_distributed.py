"""A run over two processes (jax.distributed with a localhost coordinator, one CPU device each)
computes what one process with two devices computes, and resumes from the checkpoint that the two
processes wrote together with orbax. The runs step point-mass physics (toy_physics.py): only process 0
reads and writes JAX's compilation cache, so every run's other process compiles all its programs."""
import os
import socket
import subprocess
import sys

import chex
import numpy as np
import pytest

from tdmpc2_jax import checkpoints

import tiny
from helpers import ROOT, rows


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


def run_two_processes(work_dir, **changes) -> None:
    """The same command in two processes that make one run together."""
    port, env = free_port(), dict(os.environ, JAX_PLATFORMS="cpu")
    processes = [subprocess.Popen(train_command(work_dir, distributed=True, coordinator_address=f"localhost:{port}",
                                                num_processes=2, process_id=i, **changes),
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for i in range(2)]
    outputs = [p.communicate(timeout=1200)[0] for p in processes]
    for i, (process, output) in enumerate(zip(processes, outputs)):
        assert process.returncode == 0, f"process {i}:\n{output[-3000:]}"
    assert "4 envs x 1 member(s) on 2 devices split by envs" in outputs[0]


@pytest.mark.slow
def test_two_processes_train_one_run_resume_it_and_match_one_process_with_two_devices(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    single = subprocess.run(train_command(one, steps=68), env=env, capture_output=True, text=True, timeout=1200)
    assert single.returncode == 0, single.stderr[-3000:]
    assert "on 2 devices split by envs" in single.stdout

    run_two_processes(two, steps=48)
    assert checkpoints.latest_step(str(two / "checkpoints")) == 48
    run_two_processes(two, steps=68, resume=True)  # continues from the checkpoint both processes wrote

    assert checkpoints.latest_step(str(two / "checkpoints")) == 68
    evals = {name: rows(d / "eval.csv") for name, d in (("one", one), ("two", two))}
    assert [r["agent_step"] for r in evals["two"]] == [r["agent_step"] for r in evals["one"]] == ["0", "48", "68"]
    np.testing.assert_allclose([float(r["episode_reward"]) for r in evals["two"]],
                               [float(r["episode_reward"]) for r in evals["one"]], rtol=1e-4)
    assert (two / "process1" / "eval.csv").exists()  # the second process logs beside the first
    _, params_two, _ = checkpoints.load_model(str(two / "checkpoints"))
    _, params_one, _ = checkpoints.load_model(str(one / "checkpoints"))
    chex.assert_trees_all_close(params_two, params_one, rtol=1e-4, atol=1e-5)
