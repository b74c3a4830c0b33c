"""A seed (x learning rate) sweep on MJX in one compiled program, with a mean +- std plot.

    python -m tdmpc2_jax.sweep --config=configs/mjx.py:cartpole-balance --seeds=1,2,3,4 \
        [--lrs=1e-4,3e-4,1e-3] [--config.key=value ...]

Every member (seed, lr) is one slice of a vmapped training state; on several devices the members
(or, when they do not divide, the environments) are split over them. Each member writes its own
eval.csv / train.csv under WORK_DIR/lr<lr>/seed<seed>/; the sweep adds WORK_DIR/sweep.csv (mean,
std and count over seeds per lr and eval step) and WORK_DIR/sweep.png.
"""
from __future__ import annotations

import csv
import os
from collections import defaultdict

from absl import app, flags

from tdmpc2_jax.cli import define_config_flags, fail, parse_flags, print_run_config, setup_process

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    define_config_flags("an MJX config, e.g. configs/mjx.py:cartpole-balance")
    flags.DEFINE_list("seeds", ["1", "2"], "seeds of the population")
    flags.DEFINE_list("lrs", None, "learning rates (default: the config's lr)")


def population_of(seeds: list[str], lrs: list[str] | None, default_lr: float) -> tuple[list[int], list[float]]:
    """The sweep's seeds and learning rates from the flags' texts; a ValueError for a repeat or a non-number."""
    try:
        seed_values = [int(s) for s in seeds]
        lr_values = [float(v) for v in lrs] if lrs else [default_lr]
    except ValueError as err:
        raise ValueError(f"--seeds takes integers and --lrs numbers ({err})") from None
    if len(set(seed_values)) != len(seed_values) or len(set(lr_values)) != len(lr_values):
        raise ValueError(f"seeds and lrs must not repeat: {seed_values}, {lr_values}")
    return seed_values, lr_values


def summarize(member_dirs: list[str], lrs: list[float]) -> list[dict]:
    """Mean, std and count of the eval return over seeds, per (lr, env step); member i (its lr
    lrs[i]) logged its eval.csv in member_dirs[i]."""
    import numpy as np

    returns: dict[tuple[float, int], list[float]] = defaultdict(list)
    for directory, lr in zip(member_dirs, lrs):
        with open(os.path.join(directory, "eval.csv")) as f:
            for row in csv.DictReader(f):
                returns[(lr, int(row["step"]))].append(float(row["episode_reward"]))
    return [dict(lr=lr, step=step, mean=float(np.mean(v)), std=float(np.std(v)), seeds=len(v))
            for (lr, step), v in sorted(returns.items())]


def write_summary(rows: list[dict], work_dir: str, task: str) -> None:
    """WORK_DIR/sweep.csv (the rows) and WORK_DIR/sweep.png (mean +- std per lr)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    with open(os.path.join(work_dir, "sweep.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, ["lr", "step", "mean", "std", "seeds"])
        writer.writeheader()
        writer.writerows(rows)
    fig, ax = plt.subplots(figsize=(6, 4))
    for lr in sorted({r["lr"] for r in rows}):
        curve = [r for r in rows if r["lr"] == lr]
        step = np.asarray([r["step"] for r in curve])
        mean, std = np.asarray([r["mean"] for r in curve]), np.asarray([r["std"] for r in curve])
        ax.plot(step, mean, label=f"lr {lr:g} ({curve[0]['seeds']} seeds)")
        ax.fill_between(step, mean - std, mean + std, alpha=0.25)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return (mean +- std over seeds)")
    ax.set_title(f"{task} on MJX")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(work_dir, "sweep.png"), dpi=120)


def sweep(config, seeds: list[int], lrs: list[float]) -> tuple[list[dict], str]:
    """Trains the population (seeds x lrs) of an MJX run config, then writes its summary; returns the
    summary rows and the run's work dir."""
    from tdmpc2_jax.loops import mjx_run
    from tdmpc2_jax.run_record import resolve

    run = resolve(config)
    print_run_config(run.config)
    mjx_run.train(run, seeds, lrs)
    members = mjx_run.population(seeds, lrs)
    rows = summarize(mjx_run.member_dirs(run, members), [m.lr for m in members])
    write_summary(rows, run.work_dir, config.task)
    return rows, run.work_dir


def main(argv: list[str]) -> None:
    del argv
    config = FLAGS.config
    if config is None or config.get("backend") != "mjx":
        fail("--config must be an MJX config, e.g. --config=configs/mjx.py:cartpole-balance")
    setup_process(config)
    from tdmpc2_jax.loops.schedule import NonFiniteLoss

    try:
        rows, work_dir = sweep(config, *population_of(FLAGS.seeds, FLAGS.lrs, config.lr))
    except NonFiniteLoss as err:
        fail(str(err), code=1)
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))
    last = max(r["step"] for r in rows)
    for r in rows:
        if r["step"] == last:
            print(f"lr {r['lr']:g}: return {r['mean']:.1f} +- {r['std']:.1f} over {r['seeds']} seeds at {last:,} env steps")
    print(f"wrote {os.path.join(work_dir, 'sweep.csv')} and sweep.png")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
