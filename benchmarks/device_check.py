"""The prepared accelerator check: core program speed, the MJX loop's throughput and a learning run.

    python -m benchmarks.device_check --out=DIR [--budget_s=510]   (the device; see device_check.sh)
    python -m benchmarks.device_check --out=DIR --smoke            (the same code, tiny, on CPU)

Three parts, each skipped when the time left could not finish it (the learning run keeps a
reserve of the budget, so it always runs):
- core: one MPPI plan (one observation) and one update (batch 256) for the model-size presets
  (obs 24, action 6): first call (trace + compile + run), median of warm calls, matrix-product
  and convolution FLOPs counted from the traced program (benchmarks/_flops.py) and the TFLOP/s
  they reach; the 5M plan batched over 1024 observations; the 5M update with pixels (images
  [9, 64, 64], 32 channels).
- mjx: cheetah-run with the 5M model at N environments: transitions/s acting with the full planner
  (MPPI + MJX step + buffer insert), updates/s from the device buffer, device memory in use.
- learning: MJX cheetah-run, 5M model, the official ratio of one update per transition, sized from
  the measured update and acting rates to fill the time left: env steps reached, eval returns,
  wall-clock.

DIR/device_check.json is rewritten after every measurement, so a run cut short keeps what it
measured; DIR/device_check.md is the summary table. `--smoke` runs every part with a tiny model,
cartpole-balance and 2 environments on any backend. On a CPU nearly all of its time is compiling:
it keeps the programs in the command lines' compilation cache (run_config.COMPILATION_CACHE), so
only its first run compiles them; tests/test_device_check.py runs it on point-mass physics.
"""
from __future__ import annotations

import functools
import json
import pathlib
import platform
import shutil
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
from absl import app, flags

from benchmarks._flops import flops
from benchmarks._timing import random_batch, time_calls
from benchmarks.mjx_throughput import device_figures
from tdmpc2_jax import xla
from tdmpc2_jax.agent import Agent
from tdmpc2_jax.cli import parse_flags, setup_process, use_compilation_cache
from tdmpc2_jax.config import make_config
from tdmpc2_jax.planner import init_plan_state, plan
from tdmpc2_jax.run_config import COMPILATION_CACHE

ROOT = pathlib.Path(__file__).resolve().parents[1]
OBS_DIM, ACTION_DIM = 24, 6
PIXELS = (9, 64, 64)  # three stacked 64x64 RGB frames
LEARN_COMPILE_S = 90.0  # kept free for compiling the learning run's programs
FLAGS = flags.FLAGS


class Settings(dict):
    """What one check measures: the device's figures, or `smoke` sizes for a CPU test."""

    __getattr__ = dict.__getitem__


FULL = Settings(sizes={"1M": dict(model_size=1), "5M": dict(model_size=5), "48M": dict(model_size=48),
                       "317M": dict(model_size=317)},
                pixels=("5M rgb", dict(model_size=5, obs="rgb", num_channels=32)),
                batched_plan=("5M", 1024), task="cheetah-run", mjx_model=dict(model_size=5), mjx_envs=(1024, 256, 4096),
                mjx_steps=10, mjx_updates=20, repeats=20, learn_envs=256, learn_steps=None, learn_reserve_s=200.0,
                eval_episodes=16, learn_overrides={})
TINY = dict(num_enc_layers=1, enc_dim=16, mlp_dim=16, latent_dim=16, num_q=2, num_samples=16, num_elites=4,
            num_pi_trajs=2, iterations=2, batch_size=8)
SMOKE = Settings(sizes={"tiny": TINY}, pixels=("tiny rgb", dict(TINY, obs="rgb", num_channels=2, latent_dim=32)),
                 batched_plan=("tiny", 8), task="cartpole-balance", mjx_model=TINY,
                 mjx_envs=(2,), mjx_steps=2, mjx_updates=2, repeats=2, learn_envs=2, learn_steps=40, learn_reserve_s=0.0,
                 eval_episodes=2, learn_overrides=dict(TINY, episode_length=10, seed_steps=8, buffer_size=200))


class Check:
    """Runs the parts against a deadline and keeps every figure in DIR/device_check.json."""

    def __init__(self, out: pathlib.Path, budget_s: float, settings: Settings, smoke: bool):
        self.out, self.settings = out, settings
        self.deadline = time.monotonic() + budget_s
        out.mkdir(parents=True, exist_ok=True)
        device = jax.devices()[0]
        self.results: dict[str, Any] = dict(
            device=device.device_kind, backend=jax.default_backend(), jax=jax.__version__, smoke=smoke,
            host=f"{platform.machine()} {platform.node()}", budget_s=budget_s,
            matmul_precision=str(jax.config.jax_default_matmul_precision or "default"),
            matmul_error=matmul_error(),
            core={}, mjx={}, learning={}, skipped=[])

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def save(self) -> None:
        (self.out / "device_check.json").write_text(json.dumps(self.results, indent=1, default=float) + "\n")

    def attempt(self, part: str, name: str, estimate_s: float, measure: Callable[[], dict]) -> dict | None:
        """measure() when the time left (less the learning run's reserve) covers `estimate_s`."""
        reserve = self.settings.learn_reserve_s if part != "learning" else 0.0
        if self.left() - reserve < estimate_s:
            self.results["skipped"].append(f"{part} {name}: {self.left():.0f} s left, about {estimate_s:.0f} s needed")
            print(f"skip {part} {name} ({self.left():.0f} s left)", flush=True)
            self.save()
            return None
        start = time.monotonic()
        try:
            figures = measure()
        except Exception as err:  # a failure of one measurement must not lose the others
            figures = dict(error=f"{type(err).__name__}: {err}")
        figures["wall_s"] = time.monotonic() - start
        self.results[part][name] = figures
        self.save()
        print(f"{part} {name}: {summary_line(figures)}", flush=True)
        return figures


def matmul_error() -> float:
    """Relative error of a float32 product at the default precision against float64: about 1e-7 where
    products run in float32, about 1e-3 where they run in TF32 (or 1e-2 for bfloat16)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((256, 256)), rng.standard_normal((256, 256))
    exact = a @ b
    product = np.asarray(jax.jit(jnp.matmul)(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)), np.float64)
    return float(np.abs(product - exact).max() / np.abs(exact).max())


def summary_line(figures: dict) -> str:
    if "error" in figures:
        return "ERROR " + figures["error"]
    keys = ("median_ms", "first_call_s", "tflops", "transitions_per_s", "updates_per_s", "env_steps",
            "last_return")
    return ", ".join(f"{k} {figures[k]:.4g}" for k in keys if isinstance(figures.get(k), (int, float)))


# ------------------------------------------------------------------------------------------- core


def timed_program(count: int, call: Callable[[], Any], repeats: int) -> dict:
    """First call, warm-call spread, and the TFLOP/s that `count` FLOPs per call reach."""
    stats = time_calls(call, repeats)
    return dict(first_call_s=stats["first_call_s"], median_ms=stats["median_s"] * 1e3, p10_ms=stats["p10_s"] * 1e3,
                p90_ms=stats["p90_s"] * 1e3, gflop=count / 1e9, tflops=count / stats["median_s"] / 1e12)


def plan_figures(sizes: dict, repeats: int, batch: int | None = None) -> dict:
    cfg = make_config(dict(sizes, obs_dim=OBS_DIM, action_dim=ACTION_DIM))
    agent = Agent(cfg)
    params = jax.jit(agent.model.init)(jax.random.key(0))
    single = functools.partial(plan, agent.model, eval_mode=False)
    state, obs, t0 = init_plan_state(cfg.horizon, cfg.action_dim), jnp.ones((OBS_DIM,)), jnp.array(False)
    fn = single
    if batch:
        fn = jax.vmap(single, in_axes=(None, 0, 0, 0, 0))
        state = jax.tree.map(lambda x: jnp.broadcast_to(x, (batch,) + x.shape), state)
        obs, t0 = jnp.ones((batch, OBS_DIM)), jnp.zeros((batch,), bool)
    program = xla.jit(fn)
    keys = iter(jax.random.split(jax.random.key(1), 10_000))
    key = lambda: jax.random.split(next(keys), batch) if batch else next(keys)
    count = flops(fn, params, obs, state, key(), t0)
    figures = timed_program(count, lambda: program(params, obs, state, key(), t0)[0].action, repeats)
    return dict(figures, batch=batch or 1)


def update_figures(sizes: dict, repeats: int) -> dict:
    """The update at the preset's batch size; pixels (`obs="rgb"`) take images [9, 64, 64]."""
    observations = dict(obs_dim=0, image_shape=PIXELS) if sizes.get("obs") == "rgb" else dict(obs_dim=OBS_DIM)
    cfg = make_config(dict(sizes, **observations, action_dim=ACTION_DIM))
    agent = Agent(cfg)
    batch = random_batch(cfg, cfg.batch_size, jax.random.key(0))
    update = xla.jit(agent.update, donate_argnums=0)
    holder = {"state": agent.init(jax.random.key(3))}
    keys = iter(jax.random.split(jax.random.key(1), 10_000))
    count = flops(agent.update, holder["state"], batch, jax.random.key(2))  # before the state is donated

    def call():
        holder["state"], metrics = update(holder["state"], batch, next(keys))
        return metrics["total_loss"]

    return dict(timed_program(count, call, repeats), batch_size=cfg.batch_size)


# --------------------------------------------------------------------------------------- learning


def learning_run(check: Check, out: pathlib.Path) -> dict:
    """MJX training at one update per transition for the time left (less a margin for compiling).

    The schedule is the seed phase, then four chunks of one length with an eval after each, so the
    chunk program compiles once (a shorter last chunk would be a second compile of the physics).
    """
    from tdmpc2_jax.loops import mjx_run
    from tdmpc2_jax.run_record import resolve

    s = check.settings
    n = s.learn_envs
    config = load_mjx_config(s.task)
    config.update(s.learn_overrides)
    seed_batches = -(-resolve(config).seed_steps_for(config.episode_length) // n)
    budget = s.learn_steps
    if budget is None:  # as many transitions as the measured update and acting rates allow in the time left
        update_s = check.results["core"].get("update 5M", {}).get("median_ms", 10.0) / 1e3
        acting = check.results["mjx"].get(str(n), {}).get("transitions_per_s")
        per_transition = update_s + (1.0 / acting if acting else 0.002)
        budget = min(int(max(check.left() - LEARN_COMPILE_S, 0.0) / per_transition), 2_000_000)
    chunk = max(1, budget // n - seed_batches) // 4 or 1
    steps = (seed_batches + 4 * chunk) * n
    config.update(dict(model_size=5, num_envs=n, steps=steps, eval_freq=chunk * n, chunk_steps=chunk,
                       eval_episodes=s.eval_episodes, work_dir=str(out / "learning"), checkpoint_every=10**12,
                       save_buffer=False, tensorboard=False, progress=False, compilation_cache=""))
    shutil.rmtree(out / "learning", ignore_errors=True)  # a fresh run, not the checkpoint of an earlier check
    start = time.monotonic()
    last = mjx_run.train(resolve(config))[0]
    wall = time.monotonic() - start
    with open(out / "learning" / "eval.csv") as f:
        evals = [line.strip().split(",")[:3] for line in f.readlines()[1:]]
    return dict(task=s.task, num_envs=n, updates_per_step=n, transitions=steps, env_steps=2 * steps, wall_s_run=wall,
                env_steps_per_s=2 * steps / wall, last_return=last.get("episode_reward"),
                evals=[dict(env_step=int(e[0]), episode_reward=float(e[2])) for e in evals],
                projected_1m_env_steps_min=1e6 / (2 * steps / wall) / 60)


def load_mjx_config(task: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location("mjx_config", ROOT / "tdmpc2_jax" / "configs" / "mjx.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(task)


# ------------------------------------------------------------------------------------------ report


def markdown(results: dict) -> str:
    lines = [f"# Device check: {results['device']} ({results['backend']}, jax {results['jax']}, "
             f"matmul precision {results['matmul_precision']}: float32 products off float64 by "
             f"{results['matmul_error']:.1e}, relative)", "",
             "| program | first call s | median ms | p10-p90 ms | GFLOP | TFLOP/s |", "|---|---|---|---|---|---|"]
    for name, f in results["core"].items():
        if "error" in f:
            lines.append(f"| {name} | error: {f['error'][:80]} | | | | |")
            continue
        lines.append(f"| {name} | {f['first_call_s']:.1f} | {f['median_ms']:.2f} | {f['p10_ms']:.2f}-{f['p90_ms']:.2f} "
                     f"| {f['gflop']:.1f} | {f['tflops']:.2f} |")
    lines += ["", "| MJX, N envs | acting transitions/s | acting first call s | updates/s | device memory in use GiB |",
              "|---|---|---|---|---|"]
    for name, f in results["mjx"].items():
        if "error" in f:
            lines.append(f"| {name} | error: {f['error'][:80]} | | | |")
            continue
        memory = f.get("peak_bytes_in_use")
        lines.append(f"| {name} | {f['transitions_per_s']:.0f} | {f['acting']['first_call_s']:.1f} | "
                     f"{f['updates_per_s']:.1f} | {memory / 2**30 if memory else float('nan'):.2f} |")
    learn = results["learning"].get("run")
    if learn and "error" not in learn:
        curve = ", ".join(f"{e['episode_reward']:.0f} at {e['env_step']:,}" for e in learn["evals"])
        lines += ["", f"Learning: {learn['task']}, {learn['num_envs']} envs, {learn['updates_per_step']} updates per "
                  f"batched step: {learn['env_steps']:,} env steps in {learn['wall_s_run']:.0f} s "
                  f"({learn['env_steps_per_s']:.1f} env steps/s; 1M env steps would take "
                  f"{learn['projected_1m_env_steps_min']:.1f} min). Eval returns: {curve}."]
    elif learn:
        lines += ["", f"Learning: error {learn['error']}"]
    if results["skipped"]:
        lines += ["", "Skipped: " + "; ".join(results["skipped"])]
    return "\n".join(lines) + "\n"


def run_parts(out: pathlib.Path, settings: Settings, budget_s: float, smoke: bool) -> dict:
    """Every part in order against the budget; returns the results also written to `out`."""
    check = Check(out, budget_s, settings, smoke)
    print(f"device check on {check.results['device']} ({check.results['backend']}), budget {budget_s:.0f} s",
          flush=True)
    first, *others = settings.sizes.items()
    for name, sizes in [first] + ([others[0]] if others else []):
        check.attempt("core", f"plan {name}", 20, lambda: plan_figures(sizes, settings.repeats))
        check.attempt("core", f"update {name}", 30, lambda: update_figures(sizes, settings.repeats))
    size_name, batch = settings.batched_plan
    check.attempt("core", f"plan {size_name} x{batch}", 30,
                  lambda: plan_figures(settings.sizes[size_name], settings.repeats, batch))
    mjx = lambda n: lambda: device_figures(settings.task, settings.mjx_model, n, settings.mjx_steps,
                                           settings.mjx_updates, settings.repeats)
    check.attempt("mjx", str(settings.mjx_envs[0]), 90, mjx(settings.mjx_envs[0]))
    pixel_name, pixel_sizes = settings.pixels
    check.attempt("core", f"update {pixel_name}", 40, lambda: update_figures(pixel_sizes, settings.repeats))
    for name, sizes in others[1:]:
        check.attempt("core", f"plan {name}", 30, lambda: plan_figures(sizes, settings.repeats))
        check.attempt("core", f"update {name}", 45, lambda: update_figures(sizes, settings.repeats))
    for n in settings.mjx_envs[1:]:
        check.attempt("mjx", str(n), 90, mjx(n))
    check.attempt("learning", "run", 0, lambda: learning_run(check, out))
    (out / "device_check.md").write_text(markdown(check.results))
    print(markdown(check.results), flush=True)
    return check.results


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    flags.DEFINE_string("out", None, "directory for device_check.json and device_check.md", required=True)
    flags.DEFINE_float("budget_s", None, "seconds for all parts together (default 510; none with --smoke)")
    flags.DEFINE_bool("smoke", False, "tiny sizes, cartpole-balance, on any backend")


def main(argv: list[str]) -> None:
    del argv
    setup_process()  # as the command lines do: freed memory kept (malloc.py), logging at WARNING
    if FLAGS.smoke:  # as the command lines do: a later smoke run loads the programs this one compiles
        use_compilation_cache({"compilation_cache": COMPILATION_CACHE})
    budget = FLAGS.budget_s or (float("inf") if FLAGS.smoke else 510.0)
    run_parts(pathlib.Path(FLAGS.out), SMOKE if FLAGS.smoke else FULL, budget, FLAGS.smoke)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
