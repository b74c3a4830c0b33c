"""Several hosts: two processes on this machine (a localhost coordinator, one CPU device each) train
one sharded MJX run, equal to one process on two devices, and write and resume its checkpoint
together (orbax)."""
import os
import shutil
import socket
import subprocess
import sys

import chex

from tdmpc2_jax import checkpoints

from helpers import ROOT, rows

# 4 envs split over 2 devices; 8 seed transitions, chunks of 5 batched steps; a checkpoint at 28
TINY = dict(num_envs=4, steps=48, seed_steps=8, episode_length=10, eval_freq=40, eval_episodes=2, chunk_steps=5,
            buffer_size=40, checkpoint_every=20, mlp_dim=16, latent_dim=16, enc_dim=16, num_q=2, num_samples=16,
            num_pi_trajs=2, num_elites=4, iterations=2, batch_size=8, progress=False, tensorboard=False)


def command(work_dir, **changes):
    flags = [f"--config.{k}={v}" for k, v in dict(TINY, work_dir=work_dir, **changes).items()]
    return [sys.executable, "-m", "tdmpc2_jax.train", f"--config={ROOT / 'configs' / 'mjx.py'}:cartpole-balance",
            *flags]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_processes(work_dir, **changes):
    port = free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    procs = [subprocess.Popen(command(work_dir, distributed=True, coordinator_address=f"127.0.0.1:{port}",
                                      num_processes=2, process_id=i, **changes),
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]


def test_two_processes_train_like_one_process_on_two_devices_and_resume_together(tmp_path):
    one = tmp_path / "one"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    out = subprocess.run(command(one), env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "on 2 devices split by envs" in out.stdout

    two = tmp_path / "two"
    two_processes(two)
    assert (two / "eval.csv").exists() and (two / "process1" / "eval.csv").exists()  # process 1 logs apart
    assert [r["episode_reward"] for r in rows(two / "eval.csv")] == [r["episode_reward"] for r in rows(one / "eval.csv")]
    _, params_one, target_one = checkpoints.load_model(str(one / "checkpoints"))
    _, params_two, target_two = checkpoints.load_model(str(two / "checkpoints"))
    chex.assert_trees_all_close((params_two, target_two), (params_one, target_one), rtol=1e-5, atol=1e-6)

    # both processes restore the checkpoint at 28 transitions and end where the straight run ended
    assert checkpoints.latest_step(str(two / "checkpoints")) == 48
    shutil.rmtree(two / "checkpoints" / "48")
    two_processes(two, resume=True)
    _, params_resumed, target_resumed = checkpoints.load_model(str(two / "checkpoints"))
    chex.assert_trees_all_close((params_resumed, target_resumed), (params_two, target_two), rtol=1e-6, atol=1e-7)
