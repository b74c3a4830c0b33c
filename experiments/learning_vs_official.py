"""Learning curves of this project's host loop beside the official PyTorch TD-MPC2, same tasks and seeds.

    python -m benchmarks.learning_vs_official --official-repo PATH --tasks T1,T2 --seeds 1,2,3 \
        --steps ENV_STEPS [--jobs 2] [--config.key=value ...]
    python -m benchmarks.learning_vs_official --impls tdmpc2_jax_mjx --mjx-envs 16 --tasks T1 ...
    python -m benchmarks.learning_vs_official --report [--out DIR]      (tables and plots only)

PATH is a checkout of github.com/nicklashansen/tdmpc2. Its training code runs in its own Python
environment (`bash benchmarks/official_env.sh` makes `.venv-official`; `--official-python` points
elsewhere), from a copy patched for CPU only: the patches are printed and written to
`official_patches.txt` in the output directory. Both implementations get the same task, seed,
budget (ENV_STEPS environment steps: agent steps x the task's action repeat, 2 on DMControl, 1 on
Gymnasium) and `--config.key=value` overrides, which use the official key names (agent steps for eval_freq). Leave model_size out when
setting the size keys: the official parser lets model_size overwrite them. `--impls` picks what
runs: `official`, `tdmpc2_jax` (the host loop; both by default) and `tdmpc2_jax_mjx` (the MJX loop on
--mjx-envs batched environments at its default ratio, one update per transition). A task that
terminates (Gymnasium's mujoco-walker) runs with `episodic=true` in both, which the official code
requires for it.

Each (implementation, task, seed) run writes `<impl>/<task>/seed<k>/eval.csv` and `run.json` under
the output directory when it finishes; a sweep started again skips finished runs, and this
project's runs also resume from their last checkpoint. Each run uses one thread (`--jobs` runs go
side by side). At the end (and with `--report`): `evals.csv` (every evaluation of every run),
`<task>.png` (mean and min-max band over seeds, with the published 5M curve where it has points in
range) and `summary.md` / `summary.csv`: for tdmpc2_jax against official, and the MJX loop against
the host loop and against official, the final return and the area under the curve (mean +- std
over seeds), the ratio of mean AUCs and two-sided Welch t-test p-values.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import time
from typing import Iterable, NamedTuple

from tdmpc2_jax.envs.registry import action_repeat_of, task_defaults

ROOT = pathlib.Path(__file__).resolve().parents[1]
OFFICIAL_RESULTS = ROOT.parent / "shared" / "official_results" / "tdmpc2"
# the official loop, this project's host loop, and its MJX loop (--mjx-envs batched environments at
# the official ratio of one update per transition)
IMPLS = ("official", "tdmpc2_jax", "tdmpc2_jax_mjx")
# (implementation, reference) pairs the report compares where both have runs
COMPARISONS = (("tdmpc2_jax", "official"), ("tdmpc2_jax_mjx", "tdmpc2_jax"), ("tdmpc2_jax_mjx", "official"))
COLORS = {"official": "C1", "tdmpc2_jax": "C0", "tdmpc2_jax_mjx": "C2"}
# (file, text, replacement, occurrences): the official training code on a CPU-only machine
CPU_PATCHES = (
    ("train.py", "\tassert torch.cuda.is_available()\n", "", 1),
    ("tdmpc2.py", "'cuda:0'", "'cpu'", 2),
    ("tdmpc2.py", "capturable=True", "capturable=False", 2),
    ("common/scale.py", "'cuda:0'", "'cpu'", 2),
    ("common/buffer.py", "torch.device('cuda:0')", "torch.device('cpu')", 1),
    ("common/buffer.py", "mem_free, _ = torch.cuda.mem_get_info()", "mem_free = 0  # CPU storage", 1),
)
# official keys set for every official run: no wandb, eager PyTorch, nothing written but the logs
OFFICIAL_FIXED = ("enable_wandb=false", "compile=false", "save_video=false", "save_agent=false")
# this project's keys for its runs: logs and resumable checkpoints only
OURS_FIXED = ("--config.progress=False", "--config.tensorboard=False", "--config.resume=True",
              "--config.checkpoint_every=1000", "--config.compilation_cache=~/.cache/tdmpc2_jax/xla")


class Run(NamedTuple):
    impl: str
    task: str
    seed: int

    def results(self, out: pathlib.Path) -> pathlib.Path:
        return out / self.impl / self.task / f"seed{self.seed}"

    def scratch(self, scratch: pathlib.Path) -> pathlib.Path:
        return scratch / self.impl / self.task / f"seed{self.seed}"


# ----------------------------------------------------------------------------------------- official


def patch_official(repo: pathlib.Path, dest: pathlib.Path) -> list[str]:
    """Copies the checkout's tdmpc2/ to `dest` with CPU_PATCHES applied; returns the patch list."""
    source = repo / "tdmpc2"
    if not (source / "train.py").is_file() or not (source / "tdmpc2.py").is_file():
        raise SystemExit(f"error: {repo} is not a checkout of nicklashansen/tdmpc2 (no tdmpc2/train.py)")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__"))
    lines = []
    for name, text, replacement, count in CPU_PATCHES:
        path = dest / name
        content = path.read_text()
        if content.count(text) != count:
            raise SystemExit(f"error: tdmpc2/{name}: expected {count} x {text.strip()!r} to patch for CPU, found "
                             f"{content.count(text)} (the official code changed; update CPU_PATCHES)")
        path.write_text(content.replace(text, replacement))
        lines.append(f"tdmpc2/{name}: {text.strip()!r} -> {replacement.strip()!r} ({count}x)")
    return lines


def check_official_python(python: str) -> None:
    probe = subprocess.run([python, "-c", "import torch, tensordict, torchrl, hydra, dm_control"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["not found"])[-1]
        raise SystemExit(f"error: {python} cannot run the official code ({last}); make its environment with "
                         "`bash benchmarks/official_env.sh` or pass --official-python")


def official_command(python: str, source: pathlib.Path, run: Run, agent_steps: int,
                     overrides: dict[str, str]) -> list[str]:
    episodic = {"episodic": "true"} if task_defaults(run.task).get("episodic") else {}
    values = [f"{k}={v}" for k, v in {**episodic, **overrides}.items()]
    return [python, str(source / "train.py"), f"task={run.task}", f"seed={run.seed}", f"steps={agent_steps}",
            *OFFICIAL_FIXED, *values, "hydra.run.dir=hydra", "hydra.output_subdir=null"]


def official_eval_rows(work: pathlib.Path, run: Run) -> list[dict]:
    """The official eval.csv (step = agent steps) as rows of env_step, agent_step, episode_reward."""
    path = work / "logs" / run.task / str(run.seed) / "default" / "eval.csv"
    if not path.exists():
        return []
    with open(path) as f:
        return [dict(env_step=int(float(r["step"])) * action_repeat_of(run.task), agent_step=int(float(r["step"])),
                     episode_reward=float(r["episode_reward"])) for r in csv.DictReader(f)]


# ------------------------------------------------------------------------------------------- ours


def our_command(run: Run, agent_steps: int, work: pathlib.Path, overrides: dict[str, str], mjx_envs: int) -> list[str]:
    """The host loop (configs/dmc.py) or, for tdmpc2_jax_mjx, the MJX loop with `mjx_envs` environments."""
    values = [f"--config.{k}={v}" for k, v in overrides.items()]
    config_file, extra = "dmc.py", []
    if run.impl == "tdmpc2_jax_mjx":
        config_file, extra = "mjx.py", [f"--config.num_envs={mjx_envs}"]
    return [sys.executable, "-m", "tdmpc2_jax.train", f"--config={ROOT / 'configs' / config_file}:{run.task}",
            f"--config.seed={run.seed}", f"--config.steps={agent_steps}", f"--config.work_dir={work}",
            *OURS_FIXED, *extra, *values]


def our_eval_rows(work: pathlib.Path) -> list[dict]:
    path = work / "eval.csv"
    if not path.exists():
        return []
    with open(path) as f:
        return [dict(env_step=int(float(r["step"])), agent_step=int(float(r["agent_step"])),
                     episode_reward=float(r["episode_reward"])) for r in csv.DictReader(f)]


# ------------------------------------------------------------------------------------------ sweep


def one_thread_env(impl: str) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    if impl == "official":
        env["MUJOCO_GL"] = env.get("MUJOCO_GL", "egl")
    else:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


class Sweep:
    """Runs the missing (impl, task, seed) runs, `jobs` at a time, and files each one as it finishes."""

    def __init__(self, args: argparse.Namespace, overrides: dict[str, str]):
        self.args, self.overrides = args, overrides
        self.out, self.scratch = args.out, args.scratch
        self.source = self.scratch / "official_src"

    def pending(self) -> list[Run]:
        runs = [Run(impl, task, seed) for seed in self.args.seeds for task in self.args.tasks
                for impl in self.args.impls]
        return [r for r in runs if not (r.results(self.out) / "run.json").exists()]

    def command(self, run: Run, work: pathlib.Path) -> list[str]:
        if run.impl == "official":
            return official_command(self.args.official_python, self.source, run, self.agent_steps(run.task),
                                    self.overrides)
        return our_command(run, self.agent_steps(run.task), work, self.overrides, self.args.mjx_envs)

    def agent_steps(self, task: str) -> int:
        return self.args.steps // action_repeat_of(task)

    def eval_rows(self, run: Run) -> list[dict]:
        work = run.scratch(self.scratch)
        return official_eval_rows(work, run) if run.impl == "official" else our_eval_rows(work)

    def start(self, run: Run) -> subprocess.Popen:
        work = run.scratch(self.scratch)
        if run.impl == "official" and work.exists():
            shutil.rmtree(work)  # the official loop cannot resume: it starts over
        work.mkdir(parents=True, exist_ok=True)
        command = self.command(run, work)
        log = open(work / "stdout.log", "a")
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        process = subprocess.Popen(command, cwd=work, stdout=log, stderr=subprocess.STDOUT,
                                   env=one_thread_env(run.impl))
        process.started, process.command, process.log = time.time(), command, log
        return process

    def complete(self, run: Run, rows: list[dict]) -> bool:
        """Whether eval rows reach the last evaluation a run makes: both loops evaluate at the first
        episode end after each multiple of eval_freq, so a task whose episodes end at varying steps
        can finish its budget inside an episode, with the last evaluation one period earlier."""
        eval_freq = int(self.overrides.get("eval_freq", 50_000))
        return bool(rows) and rows[-1]["agent_step"] + eval_freq > self.agent_steps(run.task)

    def finish(self, run: Run, process: subprocess.Popen) -> None:
        process.log.close()
        work = run.scratch(self.scratch)
        rows = self.eval_rows(run)
        if process.returncode != 0 or not self.complete(run, rows):
            tail = (work / "stdout.log").read_text().strip().splitlines()[-5:]
            print(f"  FAILED {run.impl} {run.task} seed {run.seed} (exit {process.returncode}); "
                  f"log {work / 'stdout.log'}:\n    " + "\n    ".join(tail), flush=True)
            return
        self.file(run, rows, process.command, time.time() - process.started)

    def file(self, run: Run, rows: list[dict], command: list[str], wall_clock_s: float) -> None:
        """Writes a finished run's eval.csv and run.json under the output directory."""
        dest = run.results(self.out)
        dest.mkdir(parents=True, exist_ok=True)
        write_rows(dest / "eval.csv", rows, ("env_step", "agent_step", "episode_reward"))
        record = dict(impl=run.impl, task=run.task, seed=run.seed, env_steps=self.args.steps,
                      agent_steps=self.agent_steps(run.task), overrides=self.overrides,
                      command=[relative_to_root(part) for part in command], wall_clock_s=round(wall_clock_s, 1),
                      machine=machine(), finished=time.strftime("%Y-%m-%d %H:%M:%S"))
        (dest / "run.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"  done {run.impl} {run.task} seed {run.seed}: final return {rows[-1]['episode_reward']:.1f} "
              f"at {rows[-1]['env_step']:,} env steps, {wall_clock_s / 60:.1f} min", flush=True)

    def progress(self, running: dict[Run, subprocess.Popen]) -> None:
        for run, process in running.items():
            rows = self.eval_rows(run)
            last = (f"eval {rows[-1]['episode_reward']:.1f} at {rows[-1]['env_step']:,} env steps" if rows
                    else "no eval yet")
            print(f"  running {run.impl} {run.task} seed {run.seed}: {(time.time() - process.started) / 60:.1f} min, "
                  f"{last}", flush=True)

    def run(self) -> None:
        todo = self.pending()
        print(f"{len(todo)} runs to go of {len(self.args.impls) * len(self.args.tasks) * len(self.args.seeds)} "
              f"({self.args.steps:,} env steps each, {self.args.jobs} at a time)", flush=True)
        if not todo:
            return
        if any(r.impl == "official" for r in todo):
            check_official_python(self.args.official_python)
            patches = patch_official(self.args.official_repo, self.source)
            commit = git_head(self.args.official_repo)
            text = f"official checkout {self.args.official_repo} at {commit}, patched for CPU:\n" + \
                   "".join(f"  {p}\n" for p in patches) + f"fixed keys: {' '.join(OFFICIAL_FIXED)}\n"
            print(text, end="", flush=True)
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "official_patches.txt").write_text(text)
        running: dict[Run, subprocess.Popen] = {}
        last_report = time.time()
        try:
            while todo or running:
                while todo and len(running) < self.args.jobs:
                    run = todo.pop(0)
                    print(f"  start {run.impl} {run.task} seed {run.seed}", flush=True)
                    running[run] = self.start(run)
                time.sleep(2)
                for run, process in list(running.items()):
                    if process.poll() is not None:
                        self.finish(run, running.pop(run))
                if time.time() - last_report > self.args.progress_every:
                    self.progress(running)
                    last_report = time.time()
        finally:
            for process in running.values():
                process.terminate()


def relative_to_root(part: str) -> str:
    """A command-line word with this checkout's absolute paths written relative to it."""
    return part.replace(f"{ROOT}{os.sep}", "")


def git_head(repo: pathlib.Path) -> str:
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return head.stdout.strip() or "unknown commit"


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}"


def write_rows(path: pathlib.Path, rows: Iterable[dict], columns: tuple[str, ...]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows({c: r[c] for c in columns} for r in rows)


# ----------------------------------------------------------------------------------------- report


def load_results(out: pathlib.Path) -> list[dict]:
    """Every eval row of every finished run: impl, task, seed, env_step, agent_step, episode_reward."""
    rows = []
    for record_path in sorted(out.glob("*/*/seed*/run.json")):
        record = json.loads(record_path.read_text())
        with open(record_path.parent / "eval.csv") as f:
            for r in csv.DictReader(f):
                rows.append(dict(impl=record["impl"], task=record["task"], seed=record["seed"],
                                 env_step=int(r["env_step"]), agent_step=int(r["agent_step"]),
                                 episode_reward=float(r["episode_reward"])))
    return rows


def curves(rows: list[dict], impl: str, task: str) -> dict[int, tuple[list[int], list[float]]]:
    """seed -> (env steps, returns) of one implementation on one task."""
    out: dict[int, tuple[list[int], list[float]]] = {}
    for r in sorted((r for r in rows if r["impl"] == impl and r["task"] == task),
                    key=lambda r: (r["seed"], r["env_step"])):
        xs, ys = out.setdefault(r["seed"], ([], []))
        xs.append(r["env_step"])
        ys.append(r["episode_reward"])
    return out


def area_under_curve(xs: list[int], ys: list[float]) -> float:
    """Trapezoid area divided by the span of env steps: the curve's mean return."""
    import numpy as np

    return float(np.trapezoid(ys, xs) / (xs[-1] - xs[0])) if len(xs) > 1 else float(ys[0])


def welch_p(a: list[float], b: list[float]) -> float:
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return float("nan")
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def task_summary(rows: list[dict], task: str, impl: str, reference: str) -> dict | None:
    """Final return and AUC of `impl` against `reference` on one task (None if either has no runs)."""
    import numpy as np

    stats: dict = {"task": task, "impl": impl, "reference": reference}
    finals, aucs = {}, {}
    for name, side in ((impl, "impl"), (reference, "ref")):
        runs = curves(rows, name, task)
        if not runs:
            return None
        finals[side] = [ys[-1] for _, ys in runs.values()]
        aucs[side] = [area_under_curve(xs, ys) for xs, ys in runs.values()]
        stats[f"{side}_seeds"] = len(runs)
        stats[f"{side}_final_mean"], stats[f"{side}_final_std"] = _mean_std(finals[side])
        stats[f"{side}_auc_mean"], stats[f"{side}_auc_std"] = _mean_std(aucs[side])
    stats["auc_ratio"] = float(np.mean(aucs["impl"]) / np.mean(aucs["ref"])) if np.mean(aucs["ref"]) else float("nan")
    stats["final_welch_p"] = welch_p(finals["impl"], finals["ref"])
    stats["auc_welch_p"] = welch_p(aucs["impl"], aucs["ref"])
    stats["bar_met"] = bool(0.85 <= stats["auc_ratio"] <= 1.15 and stats["final_welch_p"] > 0.05)
    return stats


def bar_verdict(stats: dict) -> str:
    """The agreement bar: AUC ratio in 0.85-1.15 and Welch p > 0.05 on the final return (2+ seeds a side)."""
    if min(stats["impl_seeds"], stats["ref_seeds"]) < 2:
        return "open (2+ seeds a side needed)"
    return "met" if stats["bar_met"] else "NOT met"


def _mean_std(values: list[float]) -> tuple[float, float]:
    import numpy as np

    return (float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0) if values \
        else (float("nan"), float("nan"))


def plot_task(rows: list[dict], task: str, path: pathlib.Path, wall_minutes: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    max_step = 0
    for impl in IMPLS:
        runs = curves(rows, impl, task)
        if not runs:
            continue
        # seeds that evaluated at different env steps (the official code evaluates at episode ends,
        # which terminations move) are interpolated onto all their steps, up to the shortest run's end
        end = min(xs[-1] for xs, _ in runs.values())
        steps = sorted({s for xs, _ in runs.values() for s in xs if s <= end})
        table = np.array([np.interp(steps, xs, ys) for xs, ys in runs.values()])
        max_step = max(max_step, steps[-1])
        label = f"{impl} ({len(runs)} seed{'s' if len(runs) > 1 else ''}, {wall_minutes.get(impl, float('nan')):.0f} min/run)"
        ax.plot(steps, table.mean(0), color=COLORS[impl], marker="o", ms=3, label=label)
        ax.fill_between(steps, table.min(0), table.max(0), color=COLORS[impl], alpha=0.2)
    reference = OFFICIAL_RESULTS / f"{task}.csv"
    if reference.exists() and max_step:
        with open(reference) as f:
            ref = [r for r in csv.DictReader(f) if float(r["step"]) <= max_step]
        for i, seed in enumerate(sorted({r["seed"] for r in ref})):
            points = [(float(r["step"]), float(r["reward"])) for r in ref if r["seed"] == seed]
            ax.plot(*zip(*points), color="gray", ls="none", marker="x",
                    label="published official 5M" if i == 0 else None)
    ax.set(xlabel="environment steps", ylabel="eval episode return", title=task)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(out: pathlib.Path) -> list[dict]:
    rows = load_results(out)
    if not rows:
        print(f"no finished runs under {out}")
        return []
    write_rows(out / "evals.csv", rows, ("impl", "task", "seed", "env_step", "agent_step", "episode_reward"))
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*/*/seed*/run.json"))]
    summaries = []
    for task in sorted({r["task"] for r in rows}):
        minutes = {}
        for impl in IMPLS:
            walls = [r["wall_clock_s"] for r in records if r["task"] == task and r["impl"] == impl]
            minutes[impl] = sum(walls) / 60 / len(walls) if walls else float("nan")
        plot_task(rows, task, out / f"{task}.png", minutes)
        for impl, reference in COMPARISONS:
            stats = task_summary(rows, task, impl, reference)
            if stats is not None:
                summaries.append(stats | dict(impl_minutes_per_run=minutes[impl],
                                              ref_minutes_per_run=minutes[reference]))
    if not summaries:
        print("no task has runs of two implementations yet")
        return []
    write_rows(out / "summary.csv", summaries, tuple(summaries[0]))
    lines = ["| task | implementation vs reference | seeds | final return | final return, reference | AUC | "
             "AUC, reference | AUC ratio | Welch p (final) | Welch p (AUC) | bar |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        lines.append(
            f"| {s['task']} | {s['impl']} vs {s['reference']} | {s['impl_seeds']}/{s['ref_seeds']} | "
            f"{s['impl_final_mean']:.1f} +- {s['impl_final_std']:.1f} | {s['ref_final_mean']:.1f} +- "
            f"{s['ref_final_std']:.1f} | {s['impl_auc_mean']:.1f} +- {s['impl_auc_std']:.1f} | "
            f"{s['ref_auc_mean']:.1f} +- {s['ref_auc_std']:.1f} | {s['auc_ratio']:.3f} | {s['final_welch_p']:.3f} | "
            f"{s['auc_welch_p']:.3f} | {bar_verdict(s)} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return summaries


# ------------------------------------------------------------------------------------------- main


def parse_overrides(items: list[str]) -> dict[str, str]:
    overrides = {}
    for item in items:
        if not item.startswith("--config.") or "=" not in item:
            raise SystemExit(f"error: unknown argument {item!r} (overrides are --config.key=value)")
        key, value = item.removeprefix("--config.").split("=", 1)
        if key in ("task", "seed", "steps", "work_dir"):
            raise SystemExit(f"error: --config.{key} is set by the sweep (use --tasks/--seeds/--steps/--out)")
        overrides[key] = value
    return overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official-repo", type=pathlib.Path)
    parser.add_argument("--official-python", default=str(ROOT / ".venv-official" / "bin" / "python"))
    parser.add_argument("--tasks", type=lambda s: s.split(","), default=[])
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 3])
    parser.add_argument("--steps", type=int, help="environment steps per run (agent steps x the action repeat)")
    parser.add_argument("--impls", type=lambda s: s.split(","), default=["official", "tdmpc2_jax"],
                        help=f"implementations to run, of {', '.join(IMPLS)}")
    parser.add_argument("--mjx-envs", type=int, default=16, help="environments of the tdmpc2_jax_mjx runs")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, one thread each")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "experiments" / "results" / "learning_vs_official")
    parser.add_argument("--scratch", type=pathlib.Path, default=ROOT / "runs" / "learning_vs_official",
                        help="work directories (checkpoints, logs) of the runs")
    parser.add_argument("--progress-every", type=float, default=300.0, help="seconds between progress lines")
    parser.add_argument("--report", action="store_true", help="only write the tables and plots")
    args, rest = parser.parse_known_args()
    if not args.report:
        if not args.tasks or not args.steps or ("official" in args.impls and args.official_repo is None):
            parser.error("--tasks, --steps and (to run the official code) --official-repo are required, or --report")
        if unknown := set(args.impls) - set(IMPLS):
            parser.error(f"unknown implementation(s) {sorted(unknown)}; choose from {', '.join(IMPLS)}")
        for task in args.tasks:
            if args.steps % action_repeat_of(task):
                parser.error(f"--steps counts environment steps and must be a multiple of {task}'s action "
                             f"repeat, {action_repeat_of(task)}")
        Sweep(args, parse_overrides(rest)).run()
    report(args.out)


if __name__ == "__main__":
    main()
