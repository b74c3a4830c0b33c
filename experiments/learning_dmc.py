"""Learning check: train on a host task (DMControl, Gymnasium, Meta-World, MyoSuite, ManiSkill), then plot the eval curve
beside the official TD-MPC2 one (and the success rate where the domain defines success).

    python -m experiments.learning_dmc --config=configs/dmc.py:TASK --env_steps=N [--config.key=value ...]
    python -m experiments.learning_dmc --config=configs/dmc.py:TASK --env_steps=N [--config.key=value ...] --plot_only

--env_steps counts environment steps like the official CSVs (agent steps x the action repeat: 2 on
DMControl, Meta-World and ManiSkill, 1 on Gymnasium and MyoSuite). The run goes to
experiments/results/learning/<TASK>/ (eval.csv, train.csv) and the plot to
experiments/results/learning/<TASK>.png, with wall-clock and device in the title; a task with
success (Meta-World, MyoSuite, ManiSkill) gets a panel with the success rate, an episodic task one
with the termination loss. The official curve is the task's CSV of the official results shipped in
tdmpc2_jax/data/official_results, where one was published. A pixel run (`--config.obs=rgb`) is named
<TASK>-rgb; the official curve beside it is the state-based one. `--plot_only` plots a run that has not finished (it
resumes later with the same command and `--config.resume=True`; a finished run resumed with a
larger --env_steps goes on). The checkpoints leave out the replay buffer unless
`--config.save_buffer=True` (for an exact resume).
"""
from __future__ import annotations

import csv
import pathlib
import sys
import time

import numpy as np
from absl import app, flags

from tdmpc2_jax.cli import define_config_flags, parse_flags, start_command
from tdmpc2_jax.config import SIZE_KEYS
from tdmpc2_jax.envs.registry import action_repeat_of
from tdmpc2_jax.plot import RETURN, official_results

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "learning"
TRAIN_WINDOW = 10  # training episodes per point of the smoothed training curve
FLAGS = flags.FLAGS


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
    official = official_results(task)
    if official is not None and official.metric == RETURN:
        for i, (xs, ys) in enumerate(zip(*official.curves)):
            shown = xs <= max(env_steps, 100_000)
            ax.plot(xs[shown], ys[shown], color="gray", alpha=0.6, marker=".",
                    label="official TD-MPC2 (5M, state)" if i == 0 else None)
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


def plot_unfinished(config, name: str, env_steps: int) -> None:
    """The plot of a run's eval.csv so far, titled with how far it got."""
    steps, _ = read_curve(pathlib.Path(config.work_dir) / "eval.csv", "step", "episode_reward")
    title = (f"{name}: {env_steps:,} env steps" if max(steps) >= env_steps else
             f"{name}: first {max(steps):,.0f} of {env_steps:,} env steps (unfinished)")
    plot(config.task, pathlib.Path(config.work_dir), env_steps, title, RESULTS / f"{name}.png", config.obs)
    print(f"wrote {RESULTS / f'{name}.png'}: {title}")


def train_and_plot(config, name: str, env_steps: int, overrides: dict) -> None:
    """Trains the run, plots it, and adds its line (return, minutes, device, overrides) to the README."""
    import jax

    from tdmpc2_jax.loops import host
    from tdmpc2_jax.run_record import resolve

    start = time.time()
    last = host.train(resolve(config))
    minutes = (time.time() - start) / 60
    device = jax.devices()[0].device_kind
    model = "custom-size model" if set(overrides) & set(SIZE_KEYS) else f"{config.model_size}M model"
    title = f"{name}: {model}, {minutes:.0f} min on {device}"
    plot(config.task, pathlib.Path(config.work_dir), env_steps, title, RESULTS / f"{name}.png", config.obs)
    final = last.get("episode_reward", float("nan"))
    print(f"{title}; final eval return {final:.1f}")
    typed = " ".join(arg for arg in sys.argv[1:] if arg.startswith("--config."))
    with open(RESULTS / "README.md", "a") as f:
        f.write(f"- {name}, {env_steps:,} env steps, {model}: final return {final:.1f}, {minutes:.1f} min on {device} "
                f"({jax.default_backend()}); overrides: {typed or 'none'}\n")


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    define_config_flags("a host config, e.g. configs/dmc.py:cartpole-balance")
    flags.DEFINE_integer("env_steps", None, "environment steps to train for (agent steps x action repeat)")
    flags.DEFINE_bool("plot_only", False, "plot the run so far instead of training")


def main(argv: list[str]) -> None:
    del argv
    config = start_command("env_steps")
    overrides = FLAGS["config"].override_values
    name = config.task + ("-rgb" if config.obs == "rgb" else "")
    config.steps = FLAGS.env_steps // action_repeat_of(config.task)
    config.work_dir = str(RESULTS / name)
    if "save_buffer" not in overrides:
        config.save_buffer = False  # lighter checkpoints
    if FLAGS.plot_only:
        plot_unfinished(config, name, FLAGS.env_steps)
    else:
        train_and_plot(config, name, FLAGS.env_steps, overrides)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
