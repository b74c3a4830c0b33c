"""The protocol's table (results.md / results.csv) and plot (results.png), one row per mode."""
from __future__ import annotations

import csv
import os

COLUMNS = ("mode", "K", "return_mean", "return_std", "return_p5", "of_full", "calls_per_step", "fallback_rate",
           "ms_per_step", "speedup", "e_p50", "e_p95")


def relative_to_full(rows: list[dict]) -> list[dict]:
    """Rows (the full-replanning row first) with return and speed-up relative to full replanning."""
    full = rows[0]
    return [dict(r, of_full=r["return_mean"] / full["return_mean"], speedup=full["ms_per_step"] / r["ms_per_step"])
            for r in rows]


def read_results(out: str) -> list[dict]:
    """The rows of OUT/results.csv (none if there is no such file)."""
    path = os.path.join(out, "results.csv")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [{k: v if k == "mode" else int(v) if k == "K" else float(v) for k, v in row.items()}
                for row in csv.DictReader(f)]


def write_results(rows: list[dict], out: str, title: str) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = [f"# {title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in COLUMNS) + " |" for r in rows]
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ax.errorbar(r["calls_per_step"], r["return_mean"], yerr=r["return_std"], fmt="o", capsize=3)
        ax.annotate(r["mode"], (r["calls_per_step"], r["return_mean"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel("planner calls per step")
    ax.set_ylabel("episode return (mean +- std)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "results.png"), dpi=120)
    plt.close(fig)
