"""Learning curves of runs, beside the official TD-MPC2 results of the same task.

    python -m tdmpc2_jax.plot RUN_DIR... [--official] [--task TASK] [--out PATH]

Draws the evaluation return of each run's `eval.csv` against environment steps (its `step`
column), and the success rate in a second panel where the runs log `episode_success` or the
official result of the task is a success rate. Several run directories of one task are seeds of one
curve: their mean, with the band from their minimum to their maximum, and the seed count in the
legend. `--official` adds the official curve of the task (the CSVs shipped in
`tdmpc2_jax/data/official_results`, from the official repository's `results/` folder), drawn the
same way over its seeds, up to its first evaluation at or after the runs' last step. The task is
read from each run's `config.json`, else from `--task`. Writes PATH.png and PATH.svg (default:
`<task>-curves` beside the first run directory).
"""
from __future__ import annotations

import csv
import json
import pathlib
from importlib import resources
from typing import NamedTuple, Sequence

import numpy as np

from tdmpc2_jax.names import close_matches

OFFICIAL_SOURCE = "github.com/nicklashansen/tdmpc2 results/ (e9f5932)"
RETURN, SUCCESS = "episode_reward", "episode_success"
OFFICIAL_COLUMNS = {"reward": RETURN, "success": SUCCESS}


class Curves(NamedTuple):
    """One metric of several runs (seeds), each on its own evaluation steps."""

    steps: list[np.ndarray]   # per run: [T_i] environment steps, increasing
    values: list[np.ndarray]  # per run: [T_i]


class Official(NamedTuple):
    metric: str     # RETURN or SUCCESS: what the official CSV records
    curves: Curves  # one run per official seed
    name: str       # the CSV's path below data/official_results


def official_results(task: str, obs: str = "state") -> Official | None:
    """The official TD-MPC2 curve of `task` (pixel results where `obs` is "rgb" and published,
    else state), or None where none was published."""
    root = resources.files("tdmpc2_jax") / "data" / "official_results"
    name = "myo-hand-" + task.removeprefix("myo-") if task.startswith("myo-") else task
    folders = ("tdmpc2-pixels", "tdmpc2") if obs == "rgb" else ("tdmpc2",)
    for folder in folders:
        path = root / folder / f"{name}.csv"
        if path.is_file():
            with path.open() as f:
                rows = list(csv.DictReader(f))
            column = next(c for c in OFFICIAL_COLUMNS if c in rows[0])
            seeds = sorted({r["seed"] for r in rows}, key=int)
            runs = [[r for r in rows if r["seed"] == s] for s in seeds]
            curves = Curves([np.array([float(r["step"]) for r in run]) for run in runs],
                            [np.array([float(r[column]) for r in run]) for run in runs])
            return Official(OFFICIAL_COLUMNS[column], curves, f"{folder}/{name}.csv")
    return None


def official_tasks() -> list[str]:
    """Every task with an official state-observation curve, by this project's names."""
    root = resources.files("tdmpc2_jax") / "data" / "official_results" / "tdmpc2"
    names = sorted(p.name.removesuffix(".csv") for p in root.iterdir() if p.name.endswith(".csv"))
    return [n.replace("myo-hand-", "myo-", 1) for n in names]


def read_eval(run_dir: pathlib.Path) -> dict[str, np.ndarray]:
    """A run's eval.csv as column -> [T] values (`step`, RETURN, and SUCCESS where it is filled)."""
    path = run_dir / "eval.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} has no eval.csv")
    with open(path) as f:
        rows = list(csv.DictReader(f))
    if not rows or RETURN not in rows[0]:
        raise ValueError(f"{path} has no {RETURN} rows")
    columns = {"step": np.array([float(r["step"]) for r in rows]),
               RETURN: np.array([float(r[RETURN]) for r in rows])}
    if all(r.get(SUCCESS) for r in rows):
        columns[SUCCESS] = np.array([float(r[SUCCESS]) for r in rows])
    return columns


def run_task(run_dir: pathlib.Path, task: str | None) -> tuple[str, str]:
    """(task, obs) of a run: from its config.json (`logs.write_run_config`: {"config": {key: value},
    ...}), else `task` with state observations."""
    path = run_dir / "config.json"
    if path.is_file():
        config = json.loads(path.read_text()).get("config", {})
        if "task" not in config:
            raise ValueError(f"{path} names no task")
        return config["task"], config.get("obs", "state")
    if task is None:
        raise ValueError(f"{run_dir} has no config.json naming its task: pass --task")
    return task, "state"


def spread(curves: Curves, until: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(grid [G], values [S, G]): every run interpolated onto the first run's steps that every run
    reaches (and, where `until` is given, up to the first step at or after it)."""
    last = min(s[-1] for s in curves.steps)
    grid = curves.steps[0][curves.steps[0] <= last]
    if until is not None and (grid >= until).any():
        grid = grid[: int(np.argmax(grid >= until)) + 1]
    return grid, np.stack([np.interp(grid, s, v) for s, v in zip(curves.steps, curves.values)])


def draw(ax, curves: Curves, label: str, color: str, until: float | None = None, official: bool = False) -> None:
    """The mean of `curves` with a min-max band; the seed count and the band's meaning in the label.
    Official curves are dashed: they were evaluated every 100k steps or so, so the line only joins them."""
    grid, values = spread(curves, until)
    count = len(curves.steps)
    label += " (1 seed)" if count == 1 else f" (mean of {count} seeds, band min-max)"
    ax.plot(grid, values.mean(0), color=color, marker="x" if official else "o", ms=4 if official else 3,
            ls="--" if official else "-", label=label)
    if count > 1:
        ax.fill_between(grid, values.min(0), values.max(0), color=color, alpha=0.2, lw=0)


def plot_runs(run_dirs: Sequence[pathlib.Path], out: pathlib.Path | None = None, task: str | None = None,
              official: bool = False) -> list[pathlib.Path]:
    """Draws the runs' learning curves (and the official ones) and returns the PNG and SVG written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dirs = [pathlib.Path(d) for d in run_dirs]
    named = {d: run_task(d, task) for d in run_dirs}
    if len(set(named.values())) > 1:
        raise ValueError("the runs are of different tasks: " + ", ".join(f"{d} ({t}, {o})" for d, (t, o) in named.items()))
    name, obs = named[run_dirs[0]]
    evals = [read_eval(d) for d in run_dirs]
    reference = official_results(name, obs) if official else None
    if official and reference is None:
        raise ValueError(f"no official TD-MPC2 result for task {name!r}{close_matches(name, official_tasks())}")
    metrics = [RETURN] + ([SUCCESS] if all(SUCCESS in e for e in evals) or (reference and reference.metric == SUCCESS) else [])
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.2), squeeze=False)
    last = max(e["step"][-1] for e in evals)
    for ax, metric in zip(axes[0], metrics):
        if all(metric in e for e in evals):
            draw(ax, Curves([e["step"] for e in evals], [e[metric] for e in evals]), f"tdmpc2_jax ({obs})", "C0")
        if reference is not None and reference.metric == metric:
            kind = "pixels" if reference.name.startswith("tdmpc2-pixels/") else "state"
            draw(ax, reference.curves, f"official TD-MPC2 ({kind})", "0.45", until=last, official=True)
        ax.set(xlabel="environment steps", ylabel="eval episode return" if metric == RETURN else "eval success rate",
               title=name)
        ax.legend(fontsize=8)
    if reference is not None:
        fig.text(0.99, 0.01, f"official: {OFFICIAL_SOURCE}", ha="right", va="bottom", fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    base = out.with_suffix("") if out and out.suffix in (".png", ".svg") else out
    base = base or run_dirs[0].parent / f"{name}-curves"
    base.parent.mkdir(parents=True, exist_ok=True)
    paths = [base.with_name(base.name + ".png"), base.with_name(base.name + ".svg")]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    from absl import flags

    flags.DEFINE_bool("official", False, "draw the official TD-MPC2 curve of the task beside the runs")
    flags.DEFINE_string("task", None, "the runs' task, for run directories without a config.json")
    flags.DEFINE_string("out", None, "output path without suffix (PATH.png and PATH.svg; default: "
                        "<task>-curves beside the first run directory)")


def main(argv: list[str]) -> None:
    from absl import flags

    from tdmpc2_jax.cli import fail

    run_dirs = argv[1:]
    if not run_dirs:
        fail("give at least one run directory, e.g. python -m tdmpc2_jax.plot runs/cartpole-balance/1/default")
    FLAGS = flags.FLAGS
    try:
        paths = plot_runs([pathlib.Path(d) for d in run_dirs], FLAGS.out and pathlib.Path(FLAGS.out), FLAGS.task,
                          FLAGS.official)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    print("wrote " + " and ".join(str(p) for p in paths))


def parse_flags(argv: list[str]) -> list[str]:
    """absl parsing that keeps the run directories (positional arguments); a bad flag is one line, exit 2."""
    from absl import flags

    from tdmpc2_jax.cli import fail

    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        fail(str(err))


def run() -> None:
    """The `tdmpc2-plot` console script, and `python -m tdmpc2_jax.plot`."""
    from absl import app

    define_flags()
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
