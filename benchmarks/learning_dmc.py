"""Learning check: train on a host task (DMControl, Gymnasium, Meta-World, MyoSuite, ManiSkill), then plot the eval curve beside
the official TD-MPC2 one (and the success rate where the domain defines success).

    python benchmarks/learning_dmc.py TASK ENV_STEPS [--config.key=value ...]
    python benchmarks/learning_dmc.py TASK ENV_STEPS [--config.key=value ...] --plot-only

ENV_STEPS counts environment steps like the official CSVs (agent steps x the action repeat: 2 on
DMControl, Meta-World and ManiSkill, 1 on Gymnasium and MyoSuite). The run goes to experiments/results/learning/<TASK>/ (eval.csv,
train.csv) and the plot to experiments/results/learning/<TASK>.png, with wall-clock and device in
the title; a task with success (Meta-World, MyoSuite, ManiSkill) gets a panel with the success rate, an
episodic task one with the termination loss. A pixel run (`--config.obs=rgb`) is named <TASK>-rgb; the official curve beside it is the state-based one (the
only one published). `--plot-only` plots a run that has not finished (it resumes later with the
same command and `--config.resume=True`; a finished run resumed with a larger ENV_STEPS goes on).
"""
from __future__ import annotations

import csv
import importlib.util
import pathlib
import sys
import time

import jax
import numpy as np

from tdmpc2_jax.cli import setup_process
from tdmpc2_jax.config import SIZE_KEYS
from tdmpc2_jax.envs.registry import action_repeat_of
from tdmpc2_jax.loops import host

ROOT = pathlib.Path(__file__).resolve().parents[1]
OFFICIAL = ROOT.parent / "shared" / "official_results" / "tdmpc2"
TRAIN_WINDOW = 10  # training episodes per point of the smoothed training curve


def load_config(task: str, overrides: list[str]):
    spec = importlib.util.spec_from_file_location("dmc_config", ROOT / "configs" / "dmc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(task)
    for item in overrides:
        key, value = item.removeprefix("--config.").split("=", 1)
        current = config[key]
        config[key] = type(current)(value) if current is not None and not isinstance(current, bool) else \
            (value == "True" if isinstance(current, bool) else int(value))
    return config


def read_curve(path: pathlib.Path, x: str, y: str) -> tuple[list[float], list[float]]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return [float(r[x]) for r in rows], [float(r[y]) for r in rows]


def plot(task: str, run_dir: pathlib.Path, env_steps: int, title: str, out: pathlib.Path, obs: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(run_dir / "train.csv") as f:
        losses = [r for r in csv.DictReader(f) if float(r.get("termination_loss") or 0) > 0]  # episodic runs
    with open(run_dir / "eval.csv") as f:
        successes = [r for r in csv.DictReader(f) if r.get("episode_success")]
    panels = 1 + bool(successes) + bool(losses)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    ax, extra = axes[0, 0], list(axes[0, 1:])
    if successes:
        success_ax = extra.pop(0)
        success_ax.plot([float(r["step"]) for r in successes], [float(r["episode_success"]) for r in successes],
                        color="C2", marker="o")
        success_ax.set(xlabel="environment steps", ylabel="success rate", ylim=(-0.05, 1.05))
    if losses:
        extra[0].plot([float(r["step"]) for r in losses], [float(r["termination_loss"]) for r in losses], color="C3")
        extra[0].set(xlabel="environment steps", ylabel="termination loss", yscale="log")
    official = OFFICIAL / f"{task}.csv"
    if official.exists():
        with open(official) as f:
            rows = [r for r in csv.DictReader(f) if float(r["step"]) <= max(env_steps, 100_000)]
        for seed in sorted({r["seed"] for r in rows}):
            xs = [float(r["step"]) for r in rows if r["seed"] == seed]
            ys = [float(r["reward"]) for r in rows if r["seed"] == seed]
            ax.plot(xs, ys, color="gray", alpha=0.6, marker=".",
                    label="official TD-MPC2 (5M, state)" if seed == "1" else None)
    xs, ys = read_curve(run_dir / "train.csv", "step", "episode_reward")
    if len(ys) >= TRAIN_WINDOW:  # the training episodes' returns (exploration noise included), smoothed
        kernel = np.ones(TRAIN_WINDOW) / TRAIN_WINDOW
        ax.plot(xs[TRAIN_WINDOW - 1:], np.convolve(ys, kernel, mode="valid"), color="C0", alpha=0.35,
                label=f"training episodes (mean of {TRAIN_WINDOW})")
    xs, ys = read_curve(run_dir / "eval.csv", "step", "episode_reward")
    ax.plot(xs, ys, color="C0", marker="o", label=f"tdmpc2_jax ({obs}), evaluation")
    ax.set(xlabel="environment steps", ylabel="episode return", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    task, env_steps, overrides = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    plot_only = "--plot-only" in overrides
    overrides = [item for item in overrides if item != "--plot-only"]
    setup_process()
    config = load_config(task, overrides)
    results = ROOT / "experiments" / "results" / "learning"
    name = task + ("-rgb" if config.obs == "rgb" else "")
    run_dir = results / name
    config.update(dict(steps=env_steps // action_repeat_of(task), work_dir=str(run_dir)))
    if not any(item.startswith("--config.save_buffer=") for item in overrides):
        config.save_buffer = False  # lighter checkpoints; --config.save_buffer=True for an exact resume
    if plot_only:
        steps, _ = read_curve(run_dir / "eval.csv", "step", "episode_reward")
        title = (f"{name}: {env_steps:,} env steps" if max(steps) >= env_steps else
                 f"{name}: first {max(steps):,.0f} of {env_steps:,} env steps (unfinished)")
        plot(task, run_dir, env_steps, title, results / f"{name}.png", config.obs)
        print(f"wrote {results / f'{name}.png'}: {title}")
        return
    start = time.time()
    last = host.train(config)
    minutes = (time.time() - start) / 60
    device = jax.devices()[0].device_kind
    sized = any(item.removeprefix("--config.").split("=")[0] in SIZE_KEYS for item in overrides)
    model = "custom-size model" if sized else f"{config.model_size}M model"
    title = f"{name}: {model}, {minutes:.0f} min on {device}"
    plot(task, run_dir, env_steps, title, results / f"{name}.png", config.obs)
    print(f"{title}; final eval return {last.get('episode_reward', float('nan')):.1f}")
    with open(results / "README.md", "a") as f:
        f.write(f"- {name}, {env_steps:,} env steps, {model}: final return "
                f"{last.get('episode_reward', float('nan')):.1f}, {minutes:.1f} min on {device} "
                f"({jax.default_backend()}); overrides: {' '.join(overrides) or 'none'}\n")


if __name__ == "__main__":
    main()
