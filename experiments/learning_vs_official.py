"""Learning curves of this project's host and MJX loops beside the official PyTorch TD-MPC2, run and
reported as a committed plan fixes them.

    python -m experiments.learning_vs_official --official_repo=PATH [--plan=PLAN] [--jobs=2]
        [--impls=I1,I2] [--tasks=T1,T2] [--seeds=1,2]
    python -m experiments.learning_vs_official --report [--plan=PLAN] [--out=DIR]

PLAN (default experiments/plans/learning_vs_official.json) fixes the tasks, seeds, budget per task
(environment steps: agent steps x the task's action repeat, 2 on DMControl, 1 on Gymnasium), which
implementations run each task, the settings (official key names; agent steps for eval_freq), the
MJX loop's number of environments, the comparisons, and the statistics. Running runs every planned
run that is not finished yet; --impls/--tasks/--seeds narrow that to part of the plan, and a run
outside the plan is refused, as are settings on the command line. The implementations:
`official` (the official loop, from PATH, a checkout of github.com/nicklashansen/tdmpc2, in its own
Python environment: `bash experiments/official_env.sh` makes `.venv-official`, `--official_python`
points elsewhere; it runs from a copy patched for CPU only, the patches printed and written to
`official_patches.txt`), `tdmpc2_jax` (this project's host loop) and `tdmpc2_jax_mjx` (its MJX loop
on the plan's number of batched environments, one update per transition). A task that terminates
(Gymnasium's mujoco-walker) runs with `episodic=true` in both, which the official code requires.

Each run writes `<impl>/<task>/seed<k>/eval.csv` and `run.json` under the output directory when it
finishes, and counts only if it was made under the plan's settings and evaluated on the plan's grid
(one evaluation in each stretch of eval_freq agent steps, from step 0); a filed run that is not
(made before the plan changed its grid) is made again from scratch. A sweep started again skips
finished runs, and this project's runs resume from their last checkpoint. Each run uses one thread
(`--jobs` runs go side by side).

The report (at the end of a sweep, and alone with `--report`) reads only the filed eval.csv and
run.json files: `evals.csv` (every evaluation of the plan's finished runs), `<task>.png` (mean and
min-max band over seeds, with the published 5M curve where it has points in range) and `summary.md`
/ `summary.csv`: per task and comparison, the mean and IQM of final return and AUC with bootstrap
intervals, the ratio of mean AUCs with its intervals, the equivalence test and its verdict
(experiments/statistics.py), and every planned run not finished yet.
"""
from __future__ import annotations

import csv
import json
import math
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import time
from collections import Counter
from typing import Iterable, NamedTuple

import numpy as np
from absl import app, flags

from experiments import statistics
from experiments.statistics import Bootstrap, Interval, RatioTest
from tdmpc2_jax import cli
from tdmpc2_jax.envs.registry import action_repeat_of, task_defaults
from tdmpc2_jax.plot import official_results

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_PLAN = ROOT / "experiments" / "plans" / "learning_vs_official.json"
RESULTS = ROOT / "experiments" / "results"
# the official loop, this project's host loop, and its MJX loop (the plan's number of batched
# environments at the official ratio of one update per transition)
IMPLS = ("official", "tdmpc2_jax", "tdmpc2_jax_mjx")
COLORS = {"official": "C1", "tdmpc2_jax": "C0", "tdmpc2_jax_mjx": "C2"}
METRICS = ("final_return", "auc")
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

    def label(self) -> str:
        return f"{self.impl} {self.task} seed {self.seed}"


# -------------------------------------------------------------------------------------------- plan


class TaskPlan(NamedTuple):
    env_steps: int
    impls: tuple[str, ...]


class StatisticsPlan(NamedTuple):
    aggregates: tuple[str, ...]   # keys of statistics.AGGREGATES
    confidence: float             # of the aggregates' and the ratio's intervals
    bootstrap: Bootstrap
    margin: tuple[float, float]   # of the ratio of mean AUCs
    alpha: float                  # of each one-sided test


class Plan(NamedTuple):
    path: pathlib.Path
    name: str
    fixed_on: str
    seeds: tuple[int, ...]
    tasks: dict[str, TaskPlan]
    overrides: dict[str, str]
    mjx_envs: int
    comparisons: tuple[tuple[str, str], ...]
    statistics: StatisticsPlan

    def runs(self) -> list[Run]:
        """Every planned run, seed by seed."""
        return [Run(impl, task, seed) for seed in self.seeds for task, t in self.tasks.items() for impl in t.impls]

    def agent_steps(self, task: str) -> int:
        return self.tasks[task].env_steps // action_repeat_of(task)

    def eval_freq(self) -> int:
        """Agent steps between evaluations."""
        return int(self.overrides["eval_freq"])

    def spacing(self, task: str) -> int:
        """Env steps between evaluations: the AUC grid's spacing E."""
        return self.eval_freq() * action_repeat_of(task)

    def comparisons_of(self, task: str) -> list[tuple[str, str]]:
        return [(a, b) for a, b in self.comparisons if {a, b} <= set(self.tasks[task].impls)]


def load_plan(path: pathlib.Path) -> Plan:
    """Reads and checks a plan file (see experiments/plans/learning_vs_official.json)."""
    try:
        raw = json.loads(pathlib.Path(path).read_text())
        stats = raw["statistics"]
        plan = Plan(pathlib.Path(path), raw["name"], raw["fixed_on"], tuple(int(s) for s in raw["seeds"]),
                    {task: TaskPlan(int(t["env_steps"]), tuple(t["impls"])) for task, t in raw["tasks"].items()},
                    {k: str(v) for k, v in raw["overrides"].items()}, int(raw["mjx_envs"]),
                    tuple((a, b) for a, b in raw["comparisons"]),
                    StatisticsPlan(tuple(stats["aggregates"]), float(stats["interval"]),
                                   Bootstrap(int(stats["bootstrap_resamples"]), int(stats["bootstrap_seed"])),
                                   tuple(float(m) for m in stats["equivalence"]["margin"]),
                                   float(stats["equivalence"]["alpha"])))
        problem = plan_problem(plan, stats)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"error: cannot read the plan {path}: {type(e).__name__} {e}")
    if problem:
        raise SystemExit(f"error: plan {path}: {problem}")
    return plan


def plan_problem(plan: Plan, stats: dict) -> str | None:
    """What in a plan this module cannot carry out as written, or None."""
    for task, t in plan.tasks.items():
        if unknown := set(t.impls) - set(IMPLS):
            return f"{task}: unknown implementation(s) {sorted(unknown)}; choose from {', '.join(IMPLS)}"
        if t.env_steps % action_repeat_of(task):
            return f"{task}: env_steps must be a multiple of its action repeat, {action_repeat_of(task)}"
    if unknown := {i for pair in plan.comparisons for i in pair} - set(IMPLS):
        return f"comparisons name unknown implementation(s) {sorted(unknown)}"
    if "eval_freq" not in plan.overrides:
        return "overrides must set eval_freq (the evaluation grid's spacing)"
    if unknown := {"task", "seed", "steps", "work_dir"} & set(plan.overrides):
        return f"overrides may not set {sorted(unknown)} (the plan's tasks, seeds and budgets do)"
    if tuple(stats["metrics"]) != METRICS or stats["primary"] != "auc":
        return f"metrics must be {list(METRICS)} with auc primary, as the report computes them"
    if unknown := set(plan.statistics.aggregates) - set(statistics.AGGREGATES):
        return f"unknown aggregate(s) {sorted(unknown)}; choose from {', '.join(statistics.AGGREGATES)}"
    if set(stats["verdicts"]) != set(statistics.VERDICTS):
        return f"verdicts must be {list(statistics.VERDICTS)}, the rules experiments/statistics.py applies"
    return None


# -------------------------------------------------------------------------------------- filed runs


class Filed(NamedTuple):
    record: dict        # run.json
    rows: list[dict]    # eval.csv: env_step, agent_step, episode_reward


class Results(NamedTuple):
    counted: dict[Run, list[dict]]   # the plan's finished runs -> their eval rows
    left_out: dict[Run, str]         # filed runs that do not count -> why
    missing: list[Run]               # planned runs not finished yet


def read_filed(out: pathlib.Path) -> dict[Run, Filed]:
    """Every run filed under `out` (`<impl>/<task>/seed<k>/run.json` and `eval.csv`)."""
    filed = {}
    for record_path in sorted(out.glob("*/*/seed*/run.json")):
        record = json.loads(record_path.read_text())
        with open(record_path.parent / "eval.csv") as f:
            rows = [dict(env_step=int(float(r["env_step"])), agent_step=int(float(r["agent_step"])),
                         episode_reward=float(r["episode_reward"])) for r in csv.DictReader(f)]
        filed[Run(record["impl"], record["task"], int(record["seed"]))] = Filed(record, rows)
    return filed


def off_grid(steps: list[int], spacing: int) -> bool:
    """Whether evaluations at `steps` (env steps, in the order made) miss the grid: the i-th must
    fall at or after i x spacing and before the next multiple (one evaluation per stretch, from 0)."""
    return not steps or any(not i * spacing <= s < (i + 1) * spacing for i, s in enumerate(steps))


def reaches_budget(rows: list[dict], plan: Plan, task: str) -> bool:
    """Whether eval rows reach the last evaluation a run makes: both loops evaluate at the first
    episode end (MJX: chunk boundary) at or after each multiple of eval_freq, so a task whose
    episodes end at varying steps can finish its budget with its last evaluation one period earlier."""
    return bool(rows) and rows[-1]["agent_step"] + plan.eval_freq() > plan.agent_steps(task)


def num_envs_of(record: dict) -> int | None:
    """The MJX loop's number of environments, from the run's command."""
    values = [part.split("=", 1)[1] for part in record["command"] if part.startswith("--config.num_envs=")]
    return int(values[-1]) if values else None


def why_not_counted(run: Run, filed: Filed, plan: Plan) -> str | None:
    """Why a filed run is not one of the plan's finished runs, or None if it is."""
    if run.task not in plan.tasks or run.seed not in plan.seeds or run.impl not in plan.tasks[run.task].impls:
        return "not in the plan"
    record, steps = filed.record, [r["env_step"] for r in filed.rows]
    if record["env_steps"] != plan.tasks[run.task].env_steps:
        return f"made with {record['env_steps']:,} env steps, the plan has {plan.tasks[run.task].env_steps:,}"
    if record["overrides"] != plan.overrides:
        return f"made with settings {record['overrides']} other than the plan's"
    if run.impl == "tdmpc2_jax_mjx" and num_envs_of(record) != plan.mjx_envs:
        return f"made on {num_envs_of(record)} environments, the plan has {plan.mjx_envs}"
    if not reaches_budget(filed.rows, plan, run.task):
        return f"its last evaluation, at {steps[-1] if steps else 0:,} env steps, falls short of the budget"
    if off_grid(steps, plan.spacing(run.task)):
        return (f"evaluated at {', '.join(f'{s:,}' for s in steps)} env steps, off the plan's grid (one evaluation "
                f"in each {plan.spacing(run.task):,} env steps from 0)")
    return None


def sort_results(plan: Plan, out: pathlib.Path) -> Results:
    """The plan's finished runs, the filed runs that do not count, and the planned runs still to make."""
    counted, left_out = {}, {}
    for run, filed in read_filed(out).items():
        reason = why_not_counted(run, filed, plan)
        if reason is None:
            counted[run] = filed.rows
        else:
            left_out[run] = reason
    return Results(counted, left_out, [run for run in plan.runs() if run not in counted])


# ---------------------------------------------------------------------------------------- official


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
                         "`bash experiments/official_env.sh` or pass --official-python")


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


# -------------------------------------------------------------------------------------------- ours


def our_command(run: Run, agent_steps: int, work: pathlib.Path, overrides: dict[str, str], mjx_envs: int) -> list[str]:
    """The host loop (configs/dmc.py) or, for tdmpc2_jax_mjx, the MJX loop with `mjx_envs` environments."""
    values = [f"--config.{k}={v}" for k, v in overrides.items()]
    config_file, extra = "dmc.py", []
    if run.impl == "tdmpc2_jax_mjx":
        config_file, extra = "mjx.py", [f"--config.num_envs={mjx_envs}"]
    return [sys.executable, "-m", "tdmpc2_jax.train", f"--config={ROOT / 'tdmpc2_jax' / 'configs' / config_file}:{run.task}",
            f"--config.seed={run.seed}", f"--config.steps={agent_steps}", f"--config.work_dir={work}",
            *OURS_FIXED, *extra, *values]


def our_eval_rows(work: pathlib.Path) -> list[dict]:
    path = work / "eval.csv"
    if not path.exists():
        return []
    with open(path) as f:
        return [dict(env_step=int(float(r["step"])), agent_step=int(float(r["agent_step"])),
                     episode_reward=float(r["episode_reward"])) for r in csv.DictReader(f)]


# ------------------------------------------------------------------------------------------- sweep


def one_thread_env(impl: str) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    if impl == "official":
        env["MUJOCO_GL"] = env.get("MUJOCO_GL", "egl")
    else:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def select(plan: Plan, impls: list[str], tasks: list[str], seeds: list[int]) -> list[Run]:
    """The planned runs the filters keep (an empty filter keeps all); a filter outside the plan is refused."""
    for kind, wanted, known in (("implementation", impls, IMPLS), ("task", tasks, plan.tasks),
                                ("seed", seeds, plan.seeds)):
        if unknown := [w for w in wanted if w not in known]:
            raise SystemExit(f"error: {kind} {', '.join(map(str, unknown))} is not in the plan {plan.path}")
    runs = [r for r in plan.runs() if (not impls or r.impl in impls) and (not tasks or r.task in tasks)
            and (not seeds or r.seed in seeds)]
    if not runs:
        raise SystemExit(f"error: the plan {plan.path} has no run of {','.join(impls) or 'any implementation'} "
                         f"on {','.join(tasks) or 'any task'}")
    return runs


class SweepOptions(NamedTuple):
    out: pathlib.Path  # results directory
    scratch: pathlib.Path  # the runs' work directories
    jobs: int  # runs side by side, one thread each
    progress_every: float  # seconds between progress lines
    official_repo: pathlib.Path | None  # a checkout of the official code, to run it
    official_python: str  # the Python environment that runs it


class Sweep:
    """Runs the selected planned runs that are not finished, `jobs` at a time, filing each as it finishes."""

    def __init__(self, plan: Plan, args: SweepOptions):
        self.plan, self.args = plan, args
        self.out, self.scratch = args.out, args.scratch
        self.source = self.scratch / "official_src"

    def command(self, run: Run, work: pathlib.Path) -> list[str]:
        steps = self.plan.agent_steps(run.task)
        if run.impl == "official":
            return official_command(self.args.official_python, self.source, run, steps, self.plan.overrides)
        return our_command(run, steps, work, self.plan.overrides, self.plan.mjx_envs)

    def eval_rows(self, run: Run) -> list[dict]:
        work = run.scratch(self.scratch)
        return official_eval_rows(work, run) if run.impl == "official" else our_eval_rows(work)

    def start(self, run: Run, stale: str | None) -> subprocess.Popen:
        work = run.scratch(self.scratch)
        if stale is not None:  # made again from scratch: its filed result and work directory go
            print(f"  making {run.label()} again ({stale})", flush=True)
            shutil.rmtree(run.results(self.out))
            shutil.rmtree(work, ignore_errors=True)
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

    def finish(self, run: Run, process: subprocess.Popen) -> None:
        process.log.close()
        work = run.scratch(self.scratch)
        rows = self.eval_rows(run)
        problem = f"exit {process.returncode}" if process.returncode != 0 else None
        if problem is None and not reaches_budget(rows, self.plan, run.task):
            problem = "its evaluations stop short of the budget"
        if problem is None and off_grid([r["env_step"] for r in rows], self.plan.spacing(run.task)):
            problem = f"evaluated off the plan's grid, at {[r['env_step'] for r in rows]}"
        if problem is not None:
            tail = (work / "stdout.log").read_text().strip().splitlines()[-5:]
            print(f"  FAILED {run.label()} ({problem}); log {work / 'stdout.log'}:\n    " + "\n    ".join(tail),
                  flush=True)
            return
        self.file(run, rows, process.command, time.time() - process.started)

    def file(self, run: Run, rows: list[dict], command: list[str], wall_clock_s: float) -> None:
        """Writes a finished run's eval.csv and run.json under the output directory."""
        dest = run.results(self.out)
        dest.mkdir(parents=True, exist_ok=True)
        write_rows(dest / "eval.csv", rows, ("env_step", "agent_step", "episode_reward"))
        record = dict(impl=run.impl, task=run.task, seed=run.seed, env_steps=self.plan.tasks[run.task].env_steps,
                      agent_steps=self.plan.agent_steps(run.task), overrides=self.plan.overrides,
                      plan=relative_to_root(str(self.plan.path)),
                      command=[relative_to_root(part) for part in command], wall_clock_s=round(wall_clock_s, 1),
                      machine=machine(), finished=time.strftime("%Y-%m-%d %H:%M:%S"))
        (dest / "run.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"  done {run.label()}: final return {rows[-1]['episode_reward']:.1f} "
              f"at {rows[-1]['env_step']:,} env steps, {wall_clock_s / 60:.1f} min", flush=True)

    def progress(self, running: dict[Run, subprocess.Popen]) -> None:
        for run, process in running.items():
            rows = self.eval_rows(run)
            last = (f"eval {rows[-1]['episode_reward']:.1f} at {rows[-1]['env_step']:,} env steps" if rows
                    else "no eval yet")
            print(f"  running {run.label()}: {(time.time() - process.started) / 60:.1f} min, {last}", flush=True)

    def prepare_official(self) -> None:
        if self.args.official_repo is None:
            raise SystemExit("error: official runs of the plan are not finished: pass --official-repo "
                             "(or --impls to leave them out)")
        check_official_python(self.args.official_python)
        patches = patch_official(self.args.official_repo, self.source)
        text = f"official checkout {self.args.official_repo} at {git_head(self.args.official_repo)}, " \
               "patched for CPU:\n" + "".join(f"  {p}\n" for p in patches) + \
               f"fixed keys: {' '.join(OFFICIAL_FIXED)}\n"
        print(text, end="", flush=True)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "official_patches.txt").write_text(text)

    def run(self, selection: list[Run]) -> None:
        results = sort_results(self.plan, self.out)
        todo = [r for r in selection if r not in results.counted]
        print(f"{len(todo)} of {len(selection)} selected runs of the plan to go ({self.args.jobs} at a time)",
              flush=True)
        if any(r.impl == "official" for r in todo):
            self.prepare_official()
        running: dict[Run, subprocess.Popen] = {}
        last_report = time.time()
        try:
            while todo or running:
                while todo and len(running) < self.args.jobs:
                    run = todo.pop(0)
                    print(f"  start {run.label()}", flush=True)
                    running[run] = self.start(run, results.left_out.get(run))
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
    """A command-line word with this checkout's absolute paths written relative to it (and those of
    the checkout holding the Python environment, `.venv/...`, when it runs from another worktree)."""
    for root in (ROOT, pathlib.Path(sys.prefix).parent):
        part = part.replace(f"{root}{os.sep}", "")
    return part


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


# ------------------------------------------------------------------------------------------ report


Curve = tuple[list[int], list[float]]  # env steps, returns of one run's evaluations


class Side(NamedTuple):
    impl: str
    seeds: tuple[int, ...]
    metrics: dict[str, dict[str, Interval]]  # metric -> aggregate -> estimate and interval


class Comparison(NamedTuple):
    task: str
    impl: str
    reference: str
    seeds: tuple[tuple[int, ...], tuple[int, ...]]  # the finished seeds of each side
    grid: np.ndarray | None           # the AUC grid (env steps); None until both sides have runs
    sides: tuple[Side, Side] | None
    test: RatioTest | None            # on the AUC


def curves(counted: dict[Run, list[dict]], impl: str, task: str) -> dict[int, Curve]:
    """seed -> (env steps, returns) of one implementation's finished runs on one task."""
    return {run.seed: ([r["env_step"] for r in rows], [r["episode_reward"] for r in rows])
            for run, rows in sorted(counted.items()) if run.impl == impl and run.task == task}


def run_values(runs: dict[int, Curve], grid: np.ndarray) -> dict[str, list[float]]:
    """metric -> one value per run: the last evaluation, and the AUC on `grid`."""
    return {"final_return": [ys[-1] for _, ys in runs.values()],
            "auc": [statistics.grid_auc(xs, ys, grid) for xs, ys in runs.values()]}


def side(impl: str, seeds: tuple[int, ...], values: dict[str, list[float]], plan: Plan) -> Side:
    s = plan.statistics
    metrics = {metric: {name: statistics.aggregate(v, name, s.bootstrap, s.confidence) for name in s.aggregates}
               for metric, v in values.items()}
    return Side(impl, seeds, metrics)


def compare(plan: Plan, counted: dict[Run, list[dict]], task: str, impl: str, reference: str) -> Comparison:
    """One comparison on one task: both sides' aggregates, the AUC ratio and its equivalence test."""
    runs = {name: curves(counted, name, task) for name in (impl, reference)}
    seeds = (tuple(runs[impl]), tuple(runs[reference]))
    if not runs[impl] or not runs[reference]:
        return Comparison(task, impl, reference, seeds, None, None, None)
    grid = statistics.common_grid([xs[-1] for r in runs.values() for xs, _ in r.values()], plan.spacing(task))
    values = {name: run_values(runs[name], grid) for name in (impl, reference)}
    sides = (side(impl, seeds[0], values[impl], plan), side(reference, seeds[1], values[reference], plan))
    s = plan.statistics
    test = statistics.ratio_test(values[impl]["auc"], values[reference]["auc"], s.bootstrap, s.margin, s.alpha,
                                 s.confidence)
    return Comparison(task, impl, reference, seeds, grid, sides, test)


def comparisons(plan: Plan, results: Results) -> list[Comparison]:
    return [compare(plan, results.counted, task, impl, reference)
            for task in plan.tasks for impl, reference in plan.comparisons_of(task)]


def _num(x: float, digits: int = 1) -> str:
    return "-" if math.isnan(x) else f"{x:,.{digits}f}"


def _interval(i: Interval, digits: int = 1) -> str:
    if math.isnan(i.low):
        return f"{_num(i.estimate, digits)} [-]"
    return f"{_num(i.estimate, digits)} [{_num(i.low, digits)}, {_num(i.high, digits)}]"


def _seeds(plan: Plan, c: Comparison) -> str:
    return f"{len(c.seeds[0])} / {len(c.seeds[1])} of {len(plan.seeds)}"


def _grid(c: Comparison) -> str:
    return f"0-{int(c.grid[-1]):,} every {int(c.grid[1] - c.grid[0]):,}"


def _pct(x: float) -> str:
    return f"{100 * x:g}%"


def ratio_table(plan: Plan, cs: list[Comparison]) -> list[str]:
    s = plan.statistics
    lines = [f"| task | implementation / reference | seeds | AUC grid (env steps) | "
             f"AUC ratio [{_pct(s.confidence)} CI] | {_pct(1 - 2 * s.alpha)} CI | TOST p | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for c in cs:
        if c.test is None:
            lines.append(f"| {c.task} | {c.impl} / {c.reference} | {_seeds(plan, c)} | | | | | planned, not run yet |")
            continue
        t = c.test
        tost_ci = "-" if math.isnan(t.tost_interval.low) else \
            f"[{_num(t.tost_interval.low, 3)}, {_num(t.tost_interval.high, 3)}]"
        lines.append(f"| {c.task} | {c.impl} / {c.reference} | {_seeds(plan, c)} | {_grid(c)} | "
                     f"{_interval(t.ratio, 3)} | {tost_ci} | {_num(t.p, 3)} | {t.verdict} |")
    return lines


def sides_table(plan: Plan, cs: list[Comparison]) -> list[str]:
    aggregates = plan.statistics.aggregates
    names = {"final_return": "final return", "auc": "AUC"}
    header = [f"{names[m]}, {a.upper() if a == 'iqm' else a}" for m in METRICS for a in aggregates]
    lines = [f"| task | implementation / reference | side | seeds | {' | '.join(header)} |",
             "|" + "---|" * (4 + len(header))]
    for c in cs:
        if c.sides is None:
            continue
        for s in c.sides:
            cells = [_interval(s.metrics[m][a]) for m in METRICS for a in aggregates]
            lines.append(f"| {c.task} | {c.impl} / {c.reference} | {s.impl} | {','.join(map(str, s.seeds))} | "
                         f"{' | '.join(cells)} |")
    return lines


def machines(results: Results, out: pathlib.Path) -> list[str]:
    """Which machine made how many of the plan's finished runs, per implementation (from run.json)."""
    count: Counter = Counter()
    for run in results.counted:
        record = json.loads((run.results(out) / "run.json").read_text())
        count[(record["machine"], run.impl)] += 1
    lines = []
    for name in sorted({m for m, _ in count}):
        runs = ", ".join(f"{impl} {n}" for (m, impl), n in sorted(count.items()) if m == name)
        lines.append(f"- {name}: {runs} runs")
    return lines


def missing_lines(plan: Plan, results: Results) -> list[str]:
    lines = []
    for task, t in plan.tasks.items():
        for impl in t.impls:
            seeds = [r.seed for r in results.missing if r.task == task and r.impl == impl]
            if seeds:
                lines.append(f"- {task}, {impl}: seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}")
    return lines


def summary_markdown(plan: Plan, results: Results, cs: list[Comparison], out: pathlib.Path) -> str:
    """The report's tables, the planned runs not finished, the filed runs left out, and the machines."""
    s = plan.statistics
    finished = len(results.counted)
    lines = [
        f"Plan `{relative_to_root(str(plan.path))}` (fixed on {plan.fixed_on}): {finished} of {len(plan.runs())} "
        f"planned runs finished. Rows with fewer seeds than planned are interim.",
        "",
        "Seeds " + ", ".join(map(str, plan.seeds)) + "; budgets: " + "; ".join(
            f"{task} {t.env_steps:,} env steps ({', '.join(t.impls)})" for task, t in plan.tasks.items()) +
        ". Settings of every run: " + ", ".join(f"{k}={v}" for k, v in plan.overrides.items()) +
        f"; the MJX loop on {plan.mjx_envs} environments.",
        "",
        f"AUC: each run's evaluations linearly interpolated onto the grid 0, E, 2E, ... env steps (E = eval_freq "
        f"x action repeat) up to the earliest last evaluation of any run of the two sides compared, the area "
        f"under that curve divided by its span (its mean return). Final return: each run's last evaluation. "
        f"Intervals: percentile bootstrap, {s.bootstrap.n_resamples:,} resamples (seed {s.bootstrap.seed}), each "
        f"side's seeds resampled on their own; the ratio is of the mean AUCs. Equivalence: two one-sided tests "
        f"against the margin [{s.margin[0]}, {s.margin[1]}] at alpha {s.alpha} (equivalent when the "
        f"{_pct(1 - 2 * s.alpha)} interval lies inside it; different when not and the {_pct(s.confidence)} interval "
        f"excludes 1; else inconclusive). `[-]`: fewer than 2 seeds on a side.",
        "",
        *ratio_table(plan, cs),
        "",
        f"Mean and IQM over seeds [{_pct(s.confidence)} CI]:",
        "",
        *sides_table(plan, cs),
        "",
        "Planned, not run yet:",
        "",
        *(missing_lines(plan, results) or ["- none"]),
    ]
    if results.left_out:
        lines += ["", "Filed runs that do not count:", ""]
        lines += [f"- {run.label()}: {reason}" for run, reason in sorted(results.left_out.items())]
    lines += ["", "Machines that made the finished runs (run.json):", "", *(machines(results, out) or ["- none"])]
    return "\n".join(lines) + "\n"


TEST_COLUMNS = ("auc_ratio", "auc_ratio_low", "auc_ratio_high", "auc_ratio_tost_low", "auc_ratio_tost_high",
                "tost_p_low", "tost_p_high", "tost_p")


def summary_rows(plan: Plan, cs: list[Comparison]) -> list[dict]:
    """summary.csv: one row per task and comparison (empty cells where a side has no runs yet)."""
    rows = []
    for c in cs:
        row = dict(task=c.task, impl=c.impl, reference=c.reference, planned_seeds=len(plan.seeds),
                   impl_seeds=len(c.seeds[0]), ref_seeds=len(c.seeds[1]),
                   grid_end=int(c.grid[-1]) if c.grid is not None else "", grid_spacing=plan.spacing(c.task))
        for prefix, s in zip(("impl", "ref"), c.sides or (None, None)):
            for metric in METRICS:
                for name in plan.statistics.aggregates:
                    estimate, low, high = s.metrics[metric][name] if s else ("", "", "")
                    key = f"{prefix}_{metric}_{name}"
                    row |= {key: estimate, f"{key}_low": low, f"{key}_high": high}
        t = c.test
        values = (t.ratio.estimate, t.ratio.low, t.ratio.high, t.tost_interval.low, t.tost_interval.high, t.p_low,
                  t.p_high, t.p) if t else ("",) * len(TEST_COLUMNS)
        row |= dict(zip(TEST_COLUMNS, values), verdict=t.verdict if t else "planned, not run yet")
        rows.append(row)
    return rows


def markdown(plan_path: pathlib.Path = DEFAULT_PLAN, out: pathlib.Path | None = None) -> str:
    """The summary's markdown from the filed runs alone (the generated block of the results README)."""
    plan = load_plan(plan_path)
    out = out or RESULTS / plan.name
    results = sort_results(plan, out)
    return summary_markdown(plan, results, comparisons(plan, results), out)


def plot_task(plan: Plan, counted: dict[Run, list[dict]], task: str, path: pathlib.Path,
              wall_minutes: dict[str, float]) -> None:
    """Mean and min-max band over seeds per implementation, each seed read on the evaluation grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    max_step = 0
    for impl in plan.tasks[task].impls:
        runs = curves(counted, impl, task)
        if not runs:
            continue
        grid = statistics.common_grid([xs[-1] for xs, _ in runs.values()], plan.spacing(task))
        table = np.array([np.interp(grid, xs, ys) for xs, ys in runs.values()])
        max_step = max(max_step, int(grid[-1]))
        label = f"{impl} ({len(runs)} seed{'s' if len(runs) > 1 else ''}, {wall_minutes[impl]:.0f} min/run)"
        ax.plot(grid, table.mean(0), color=COLORS[impl], marker="o", ms=3, label=label)
        ax.fill_between(grid, table.min(0), table.max(0), color=COLORS[impl], alpha=0.2)
    reference = official_results(task)
    if reference is not None and max_step:
        for i, (xs, ys) in enumerate(zip(*reference.curves)):
            ax.plot(xs[xs <= max_step], ys[xs <= max_step], color="gray", ls="none", marker="x",
                    label="published official 5M" if i == 0 else None)
    ax.set(xlabel="environment steps", ylabel="eval episode return", title=task)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def wall_minutes(results: Results, out: pathlib.Path, task: str) -> dict[str, float]:
    """impl -> mean wall-clock minutes of its finished runs on `task`."""
    walls: dict[str, list[float]] = {}
    for run in results.counted:
        if run.task == task:
            record = json.loads((run.results(out) / "run.json").read_text())
            walls.setdefault(run.impl, []).append(record["wall_clock_s"])
    return {impl: sum(w) / 60 / len(w) for impl, w in walls.items()}


def report(plan: Plan, out: pathlib.Path) -> None:
    """Writes evals.csv, summary.csv, summary.md and a plot per task with finished runs; prints the summary."""
    results = sort_results(plan, out)
    out.mkdir(parents=True, exist_ok=True)
    evals = [dict(impl=run.impl, task=run.task, seed=run.seed, **row)
             for run, rows in sorted(results.counted.items()) for row in rows]
    write_rows(out / "evals.csv", evals, ("impl", "task", "seed", "env_step", "agent_step", "episode_reward"))
    cs = comparisons(plan, results)
    rows = summary_rows(plan, cs)
    write_rows(out / "summary.csv", rows, tuple(rows[0]))
    text = summary_markdown(plan, results, cs, out)
    (out / "summary.md").write_text(text)
    for task in plan.tasks:
        if any(run.task == task for run in results.counted):
            plot_task(plan, results.counted, task, out / f"{task}.png", wall_minutes(results, out, task))
    print(text, end="")


# -------------------------------------------------------------------------------------------- main


FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    flags.DEFINE_string("plan", str(DEFAULT_PLAN), "the plan file")
    flags.DEFINE_string("official_repo", None, "a checkout of nicklashansen/tdmpc2 (to run the official code)")
    flags.DEFINE_string("official_python", str(ROOT / ".venv-official" / "bin" / "python"),
                        "the Python environment that runs the official code")
    flags.DEFINE_list("impls", [], "only these implementations")
    flags.DEFINE_list("tasks", [], "only these tasks")
    flags.DEFINE_list("seeds", [], "only these seeds")
    flags.DEFINE_integer("jobs", 2, "runs side by side, one thread each", lower_bound=1)
    flags.DEFINE_string("out", None, "results directory (default experiments/results/<plan name>)")
    flags.DEFINE_string("scratch", str(ROOT / "runs" / "learning_vs_official"),
                        "work directories (checkpoints, logs) of the runs")
    flags.DEFINE_float("progress_every", 300.0, "seconds between progress lines")
    flags.DEFINE_bool("report", False, "only write the tables and plots")


def parse_flags(argv: list[str]) -> list[str]:
    """absl parsing with one-line errors; a setting on the command line is refused, the plan's are used."""
    settings = [arg for arg in argv[1:] if arg.startswith("--config.") or ("=" in arg and not arg.startswith("-"))]
    if settings:
        print(f"error: the settings are the plan's; refusing {' '.join(settings)}", file=sys.stderr)
        sys.exit(2)
    return cli.parse_flags(argv)


def main(argv: list[str]) -> None:
    if argv[1:]:
        raise app.UsageError(f"unexpected arguments {' '.join(argv[1:])}")
    plan = load_plan(pathlib.Path(FLAGS.plan))
    out = pathlib.Path(FLAGS.out) if FLAGS.out else RESULTS / plan.name
    if not FLAGS.report:
        options = SweepOptions(out, pathlib.Path(FLAGS.scratch), FLAGS.jobs, FLAGS.progress_every,
                               FLAGS.official_repo and pathlib.Path(FLAGS.official_repo), FLAGS.official_python)
        Sweep(plan, options).run(select(plan, FLAGS.impls, FLAGS.tasks, [int(s) for s in FLAGS.seeds]))
    report(plan, out)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
