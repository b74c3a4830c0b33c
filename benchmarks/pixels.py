"""Speed and memory of pixel observations (`obs=rgb`) on the default device.

    python -m benchmarks.pixels [--repeats=10] [--out=results.json]
    python -m benchmarks.pixels --quick        # a narrow encoder, two repeats: a smoke run

- render: one 64x64 frame of walker-stand's camera per call, with each headless MuJoCo backend
  (egl, osmesa), each in its own process (the backend is fixed when MuJoCo's renderer loads); a
  backend that does not work here is reported with its error.
- encoder: the conv encoder with its random shift on a batch of 256 stacked frames [256, 9, 64, 64],
  forward alone and forward + backward (the gradient of a sum of its latents).
- update: one jitted update at batch 256 (horizon 3: [4, 256, 9, 64, 64] images) of the 1M and 5M
  presets with pixels. The 5M preset (latent 512) fits the default 32 channels; the 1M preset's
  latent 128 needs 8 channels, which the benchmark sets.
- memory: bytes of one transition in the replay buffer, one uint8 frame per row against the
  nine-channel stacks stored whole (as the official buffer does).

Prints compile time (first call) apart from warm calls (medians over `--repeats`).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks._timing import random_batch, report, time_calls, write_results
from tdmpc2_jax import xla
from tdmpc2_jax.agent import Agent
from tdmpc2_jax.buffers.episodic import EpisodeBuffer
from tdmpc2_jax.cli import parse_flags, setup_process
from tdmpc2_jax.config import make_config
from tdmpc2_jax.world_model import WorldModel

IMAGE = (9, 64, 64)
FLAGS = flags.FLAGS
PRESETS = {"1M": dict(model_size=1, num_channels=8), "5M": dict(model_size=5, num_channels=32)}
RENDER_PROBE = """
import json, sys, time
from dm_control import suite
env = suite.load("walker", "stand", task_kwargs={"random": 0})
env.reset()
env.physics.render(64, 64, camera_id=0)
times = []
for _ in range(int(sys.argv[1])):
    env.step([0.0] * 6)
    start = time.perf_counter()
    env.physics.render(64, 64, camera_id=0)
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def render_times(backend: str, frames: int) -> dict[str, Any]:
    """Seconds per frame with MUJOCO_GL=backend (median and spread), or the backend's error."""
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    out = subprocess.run([sys.executable, "-c", RENDER_PROBE, str(frames)], env=env, capture_output=True, text=True,
                         timeout=600)
    if out.returncode:
        lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
        return dict(backend=backend, error=lines[-1] if lines else f"exit status {out.returncode}")
    times = sorted(json.loads(out.stdout.strip().splitlines()[-1]))
    return dict(backend=backend, frames=frames, median_s=times[len(times) // 2], p10_s=times[len(times) // 10],
                p90_s=times[(9 * len(times)) // 10])


def pixel_config(preset: dict, batch_size: int):
    return make_config({**preset, "obs": "rgb", "image_shape": IMAGE, "action_dim": 6, "batch_size": batch_size})


def random_images(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return jax.random.randint(key, shape + IMAGE, 0, 256, jnp.int32).astype(jnp.uint8)


def encoder_times(channels: int, batch_size: int, repeats: int) -> dict[str, Any]:
    cfg = pixel_config(dict(model_size=5, num_channels=channels, latent_dim=16 * channels), batch_size)
    model = WorldModel(cfg)
    params = model.init(jax.random.key(0))
    images = random_images(jax.random.key(1), (batch_size,))
    shift = model.draw_shift(jax.random.key(2), (batch_size,))
    forward = xla.jit(lambda p, x, s: model.encode(p, x, shift=s))
    backward = xla.jit(jax.grad(lambda p, x, s: jnp.sum(model.encode(p, x, shift=s))))
    return dict(channels=channels, batch_size=batch_size,
                forward=time_calls(lambda: forward(params, images, shift), repeats),
                forward_backward=time_calls(lambda: backward(params, images, shift), repeats))


def update_times(name: str, preset: dict, batch_size: int, repeats: int) -> dict[str, Any]:
    cfg = pixel_config(preset, batch_size)
    agent = Agent(cfg)
    state = agent.init(jax.random.key(0))
    batch = random_batch(cfg, batch_size, jax.random.key(1))
    update = xla.jit(agent.update)
    holder = {"state": state}

    def step():
        holder["state"], metrics = update(holder["state"], batch, jax.random.key(2))
        return metrics["total_loss"]

    params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))
    return dict(preset=name, num_channels=cfg.num_channels, latent_dim=cfg.latent_dim, parameters=params,
                batch_size=batch_size, **time_calls(step, repeats))


def memory() -> list[dict[str, Any]]:
    """Bytes per buffer row: frames stored once (uint8, this buffer) against whole uint8 stacks (the
    official buffer keeps each observation's nine channels)."""
    buffer = EpisodeBuffer(1000, IMAGE, 6, horizon=3, stacked_frames=3)
    per_row = buffer.nbytes / buffer.capacity
    frame = buffer.obs[0].nbytes
    rows = []
    for label, size in (("frames once", per_row), ("whole stacks", per_row + 2 * frame)):
        rows.append(dict(layout=label, bytes_per_transition=size, gib_per_million=size * 1e6 / 2**30))
    return rows


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    flags.DEFINE_integer("repeats", 10, "warm calls per figure")
    flags.DEFINE_integer("frames", 200, "frames rendered per backend")
    flags.DEFINE_integer("batch_size", 256, "encoder and update batch size")
    flags.DEFINE_bool("quick", False, "narrow encoder, batch 8, two repeats: a smoke run")
    flags.DEFINE_string("out", None, "write the results as JSON here")


def measure(repeats: int, frames: int, batch_size: int, quick: bool) -> dict[str, Any]:
    """Every figure of one run (settings, render, encoder, update and memory rows), printed as they come."""
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), {os.cpu_count()} CPUs; "
          f"figures from one run on a possibly shared machine")
    results: dict[str, Any] = dict(settings=dict(repeats=repeats, batch_size=batch_size, image=list(IMAGE),
                                                  device=jax.devices()[0].device_kind, machine=platform.processor()))
    results["render"] = [render_times(backend, frames) for backend in ("egl", "osmesa")]
    for row in results["render"]:
        if "error" in row:
            print(f"render {row['backend']:<8} not available here: {row['error']}")
        else:
            print(f"render {row['backend']:<8} 64x64 frame: median {row['median_s'] * 1e3:.2f} ms "
                  f"(p10 {row['p10_s'] * 1e3:.2f}, p90 {row['p90_s'] * 1e3:.2f}) over {row['frames']} frames")
    channels = 2 if quick else 32
    enc = encoder_times(channels, batch_size, repeats)
    results["encoder"] = enc
    print(report(f"encoder fwd {channels}ch B={batch_size}", enc["forward"]))
    print(report(f"encoder fwd+bwd {channels}ch B={batch_size}", enc["forward_backward"]))
    presets = {"tiny": dict(num_channels=2, latent_dim=32, enc_dim=16, mlp_dim=16, num_q=2)} if quick else PRESETS
    results["update"] = [update_times(name, preset, batch_size, repeats) for name, preset in presets.items()]
    for row in results["update"]:
        print(report(f"update {row['preset']} ({row['num_channels']}ch) B={row['batch_size']}", row))
    results["memory"] = memory()
    for row in results["memory"]:
        print(f"memory {row['layout']:<26} {row['bytes_per_transition']:9.0f} B/transition "
              f"{row['gib_per_million']:7.2f} GiB per million")
    return results


def main(argv: list[str]) -> None:
    del argv
    setup_process()  # as the command lines do: freed memory kept (malloc.py), logging at WARNING
    sizes = (2, 5, 8) if FLAGS.quick else (FLAGS.repeats, FLAGS.frames, FLAGS.batch_size)
    results = measure(*sizes, quick=FLAGS.quick)
    write_results(results, FLAGS.out)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
