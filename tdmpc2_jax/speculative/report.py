"""The protocol's table (results.md / results.csv), reward by step index (by_step.csv) and plot
(results.png), one row per mode."""
from __future__ import annotations

import csv
import io
import os

import numpy as np

COLUMNS = ("mode", "K", "return_mean", "return_std", "return_median", "return_p5", "of_full", "median_of_full",
           "calls_per_step", "fallback_rate", "fallback_by_k", "correction_norm", "ms_per_step", "speedup",
           "e_p50", "e_p95", "tau_seed")
TEXT_COLUMNS = ("mode", "fallback_by_k", "tau_seed")  # tau_seed: the calibration seed of a fallback mode's thresholds
GOAL_CALLS_EVERY = 3  # at most one planner call per this many steps
GOAL_OF_FULL = 0.97  # mean return, as a fraction of full replanning's
GOAL_SPEEDUP = 2.5  # wall-clock per step against full replanning


def relative_to_full(rows: list[dict]) -> list[dict]:
    """Rows (the full-replanning row first) with mean and median return and speed-up relative to
    full replanning."""
    full = rows[0]
    return [dict(r, of_full=r["return_mean"] / full["return_mean"],
                 median_of_full=r.get("return_median", np.nan) / full.get("return_median", np.nan),
                 speedup=full["ms_per_step"] / r["ms_per_step"]) for r in rows]


def planner_call_ms(bench_rows: list[dict]) -> float:
    """Milliseconds one planner call adds to a step, from a speed benchmark's rows (mode, ms_per_step,
    calls_per_step; full replanning's among them): for each naive mode, which differs from full
    replanning only in how often it plans, (full's ms - its ms) / (1 - its calls per step); the
    median over the naive modes."""
    by_mode = {r["mode"]: r for r in bench_rows}
    full = by_mode["full"]["ms_per_step"]
    per_call = [(full - r["ms_per_step"]) / (1.0 - r["calls_per_step"]) for r in bench_rows
                if r["mode"].startswith("naive-") and r["calls_per_step"] < 1.0]
    if not per_call:
        raise ValueError("the speed benchmark has no naive mode to separate a planner call's cost from a step's")
    return float(np.median(per_call))


def at_protocol_rate(rows: list[dict], bench_rows: list[dict]) -> list[dict]:
    """Rows (full replanning's first) with the speed-up the speed benchmark implies at each mode's own
    planner calls per step in the protocol: the benchmark's ms per step for the mode, plus (the
    protocol's calls - the benchmark's) x `planner_call_ms`, against the benchmark's full replanning.
    Adds bench_calls_per_step and bench_speedup (the benchmark's own rate and speed-up); `speedup`
    becomes nan for a mode the benchmark did not time, and the protocol's own timing stays in ms_per_step."""
    bench = {r["mode"]: r for r in bench_rows}
    call_ms, full_ms = planner_call_ms(bench_rows), bench["full"]["ms_per_step"]
    scaled = []
    for r in rows:
        b = bench.get(r["mode"])
        if b is None:
            scaled.append(dict(r, speedup=np.nan, bench_calls_per_step=np.nan, bench_speedup=np.nan))
            continue
        ms = b["ms_per_step"] + (r["calls_per_step"] - b["calls_per_step"]) * call_ms
        scaled.append(dict(r, speedup=full_ms / ms, bench_calls_per_step=b["calls_per_step"],
                           bench_speedup=full_ms / b["ms_per_step"]))
    return scaled


def goal_check(row: dict) -> list[str]:
    """The parts of the goal that a mode misses (none: met). One call per GOAL_CALLS_EVERY steps
    counts the call at an episode's first step: K=3 on 500 steps makes 167 calls, 0.334 per step."""
    steps = len(row.get("reward_by_step") or ()) or 0
    calls_allowed = -(-steps // GOAL_CALLS_EVERY) / steps if steps else 1 / GOAL_CALLS_EVERY
    missed = []
    if row["calls_per_step"] > calls_allowed + 1e-9:
        missed.append(f"{row['calls_per_step']:.3f} calls per step")
    if not row["of_full"] >= GOAL_OF_FULL:
        missed.append(f"{100 * row['of_full']:.1f}% of the return")
    if row["speedup"] != row["speedup"]:  # nan: no timing of this mode
        missed.append("no speed figure")
    elif not row["speedup"] >= GOAL_SPEEDUP:
        missed.append(f"x{row['speedup']:.2f} per step")
    return missed


def goal_summary(rows: list[dict]) -> str:
    """One line: which modes meet the goal and the best of them (the highest mean return), else the
    mode closest to it (the best return at the allowed calls per step) and what it misses."""
    goal = (f"goal: at most one planner call per {GOAL_CALLS_EVERY} steps, >= {100 * GOAL_OF_FULL:.0f}% of full "
            f"replanning's mean return, >= {GOAL_SPEEDUP}x per step")
    speculative = [r for r in rows if r["mode"] != "full"]
    met = [r for r in speculative if not goal_check(r)]
    describe = lambda r: (f"{r['mode']} ({r['calls_per_step']:.3f} calls per step, {100 * r['of_full']:.1f}% of the "
                          f"return, median {100 * r['median_of_full']:.1f}%, x{r['speedup']:.2f})")
    if met:
        best = max(met, key=lambda r: r["of_full"])
        return f"{goal}: met by {len(met)} of {len(speculative)} modes; best {describe(best)}"
    cheap = [r for r in speculative if not any("calls" in m for m in goal_check(r))]
    if not cheap:
        return f"{goal}: not met (no mode ran)" if not speculative else f"{goal}: not met by any mode"
    closest = max(cheap, key=lambda r: r["of_full"])
    return f"{goal}: not met; closest {describe(closest)} misses {', '.join(goal_check(closest))}"


def read_results(out: str) -> list[dict]:
    """The rows of OUT/results.csv with their reward by step from OUT/by_step.csv (none if there is no
    such file)."""
    path = os.path.join(out, "results.csv")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = [{k: v if k in TEXT_COLUMNS else int(v) if k == "K" else float(v) for k, v in row.items()}
                for row in csv.DictReader(f)]
    steps = os.path.join(out, "by_step.csv")
    if os.path.exists(steps):
        with open(steps) as f:
            table = list(csv.DictReader(f))
        for r in rows:
            r["reward_by_step"] = [float(t[r["mode"]]) for t in table] if table and r["mode"] in table[0] else []
    return rows


def merged_with_disk(out: str, rows: dict[str, dict]) -> dict[str, dict]:
    """`rows` (mode -> row) laid over the rows that OUT/results.csv holds now: the modes that another
    evaluation of other --modes on the same OUT wrote meanwhile are kept, and these rows win."""
    return {**{r["mode"]: r for r in read_results(out)}, **rows}


def write_results(rows: list[dict], out: str, title: str) -> None:
    """results.csv, results.md, by_step.csv and results.png in OUT. Each file is replaced whole, and
    by_step.csv before results.csv, so a run killed part-way leaves every mode in results.csv complete
    (what `--resume` keeps)."""
    os.makedirs(out, exist_ok=True)
    curves = {r["mode"]: r["reward_by_step"] for r in rows if r.get("reward_by_step")}
    length = min((len(c) for c in curves.values()), default=0)
    _replace(os.path.join(out, "by_step.csv"),
             _csv([["step"] + list(curves)] + [[t] + [f"{c[t]:.6g}" for c in curves.values()] for t in range(length)]))
    _replace(os.path.join(out, "results.csv"),
             _csv([list(COLUMNS)] + [[r.get(c, "") for c in COLUMNS] for r in rows]))
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = [f"# {title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in COLUMNS) + " |" for r in rows]
    lines += ["", goal_summary(rows)]
    _replace(os.path.join(out, "results.md"), "\n".join(lines) + "\n")
    plot(rows, curves, length, os.path.join(out, "results.png"), title)


def _csv(table: list[list]) -> str:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(table)
    return text.getvalue()


def _replace(path: str, text: str) -> None:
    with open(path + ".tmp", "w", newline="") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def plot(rows: list[dict], curves: dict[str, list[float]], length: int, path: str, title: str) -> None:
    """Left: return against planner calls per step. Right: where in the episode each mode gains or
    loses return, the cumulative reward difference to full replanning by step index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    for r in rows:
        left.errorbar(r["calls_per_step"], r["return_mean"], yerr=r["return_std"], fmt="o", capsize=3)
        left.annotate(r["mode"], (r["calls_per_step"], r["return_mean"]), fontsize=7, xytext=(3, 3),
                      textcoords="offset points")
    left.set_xlabel("planner calls per step")
    left.set_ylabel("episode return (mean +- std)")
    full = curves.get("full")
    if full is not None and length:
        reference = np.asarray(full[:length])
        for name, curve in curves.items():
            if name != "full":
                right.plot(np.cumsum(np.asarray(curve[:length]) - reference), lw=1, label=name)
        right.axhline(0.0, color="k", lw=0.8)
        if len(curves) > 1:
            right.legend(fontsize=6, ncol=2)
    right.set_xlabel("step of the episode")
    right.set_ylabel("cumulative reward minus full replanning's")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
