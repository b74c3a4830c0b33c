"""Whole-loop throughput: this project's host training loop beside the official one, and the MJX loop.

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
    python -m benchmarks.versus_loop --official_repo=PATH [--task=cartpole-swingup] [--episodes=3]
        [--model_size=0] [--num_envs=1,16,64] [--out=experiments/results/speed/loop.json]

- Host loops: this project's `tdmpc2_jax.train` and the official `train.py` (a copy of PATH patched
  for CPU by experiments/learning_vs_official.py, eager, run by --official_python) train the same
  task with the same settings (--model_size=0: experiments/plans/learning_vs_official.json's small
  model and planner; else that model-size preset with the official planner), side by side, one
  thread each, as the learning comparison runs them. Each runs the seed
  phase (max(1000, 5 x episode length) random steps), the burst of that many updates, then
  --episodes more episodes of act + environment step + one update per step; evaluation only at step
  0. The figure is agent steps per second from the end of the first episode after the burst to the
  end of the last, read from each loop's own per-episode log (ours: train.csv's elapsed_time; the
  official: its console's elapsed time, whole seconds).
- MJX loop, after the host loops, on the same task with the same model and planner: at each
  --num_envs, transitions/s of the loop as it trains at the official ratio (one compiled chunk of
  --steps batched steps, each batched MPPI + MJX step + buffer insert + one update per transition),
  and apart, transitions/s while only acting and updates/s from the device buffer
  (benchmarks/mjx_throughput.py), medians of --repeats warm calls. Each figure is set beside the
  official loop's agent steps/s (one transition and one update each). The XLA_FLAGS above keep
  this process, like the host loops, on one thread (recorded in the results as `mjx.threads`).
"""
from __future__ import annotations

import csv
import os
import pathlib
import re
import subprocess
import tempfile
from typing import Any

from absl import app, flags

from benchmarks._flags import define_int_list
from benchmarks._timing import write_results
from benchmarks.mjx_throughput import device_figures
from benchmarks.multitask import machine
from experiments import learning_vs_official as lvo
from tdmpc2_jax.cli import fail, parse_flags, setup_process
from tdmpc2_jax.envs.registry import task_defaults

FLAGS = flags.FLAGS
# the official console's train line: "I: 3,000 ... T: 0:01:05" (colour codes removed)
OFFICIAL_LINE = re.compile(r"^\s*train\s.*?I:\s*([\d,]+).*?T:\s*(\d+):(\d\d):(\d\d)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def steps_per_second(points: list[tuple[int, float]], after: int) -> tuple[float, int]:
    """(agent steps/s, steps counted) between the first (step, elapsed s) point past `after` and the
    last point."""
    later = [p for p in points if p[0] > after]
    if len(later) < 2:
        raise ValueError(f"fewer than two episode ends after agent step {after} in the log")
    (s0, t0), (s1, t1) = later[0], later[-1]
    return (s1 - s0) / (t1 - t0), s1 - s0


def official_points(console: str) -> list[tuple[int, float]]:
    """(agent step, elapsed s) of each train line of the official console output."""
    points = []
    for line in ANSI.sub("", console).splitlines():
        match = OFFICIAL_LINE.match(line)
        if match:
            h, m, s = (int(x) for x in match.groups()[1:])
            points.append((int(match.group(1).replace(",", "")), 3600.0 * h + 60 * m + s))
    return points


def our_points(train_csv: pathlib.Path) -> list[tuple[int, float]]:
    """(agent step, elapsed s) of each row of this project's train.csv."""
    with open(train_csv) as f:
        return [(int(float(r["agent_step"])), float(r["elapsed_time"])) for r in csv.DictReader(f)]


def model_overrides(model_size: int) -> dict[str, str]:
    """The model and planner keys both loops get: the learning comparison's (0) or a preset's."""
    if model_size == 0:
        return {k: v for k, v in lvo.load_plan(lvo.DEFAULT_PLAN).overrides.items()
                if k not in ("eval_freq", "eval_episodes")}
    return {"model_size": str(model_size)}


def host_loops(task: str, episodes: int) -> dict[str, Any]:
    """Both host loops on `task`, side by side; their agent steps/s after the seed phase's burst."""
    episode = task_defaults(task).get("episode_length", 1000) // lvo.action_repeat_of(task)
    seed_steps = max(1000, 5 * episode)
    steps = seed_steps + (episodes + 1) * episode
    overrides = dict(model_overrides(FLAGS.model_size), eval_freq=str(10 * steps), eval_episodes="1")
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="versus_loop_"))
    lvo.patch_official(pathlib.Path(FLAGS.official_repo), scratch / "official_src")
    runs = {impl: lvo.Run(impl, task, 1) for impl in ("official", "tdmpc2_jax")}
    commands = {"official": lvo.official_command(os.path.abspath(FLAGS.official_python), scratch / "official_src", runs["official"],
                                                 steps, overrides),
                "tdmpc2_jax": lvo.our_command(runs["tdmpc2_jax"], steps, scratch / "ours", overrides, 0)}
    print(f"host loops on {task}: {steps} agent steps each ({seed_steps} seed steps), side by side", flush=True)
    processes = {impl: subprocess.Popen(cmd, cwd=scratch, env=lvo.one_thread_env(impl), stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True) for impl, cmd in commands.items()}
    output = {impl: p.communicate()[0] for impl, p in processes.items()}
    for impl, p in processes.items():
        if p.returncode:
            fail(f"the {impl} training run failed (exit {p.returncode}): {output[impl].strip().splitlines()[-1:]}")
    points = {"official": official_points(output["official"]), "tdmpc2_jax": our_points(scratch / "ours" / "train.csv")}
    record: dict[str, Any] = dict(task=task, agent_steps=steps, seed_steps=seed_steps, overrides=overrides)
    for impl, pts in points.items():
        rate, counted = steps_per_second(pts, seed_steps)
        record[impl] = dict(steps_per_s=rate, steps_counted=counted, episode_ends=pts)
        print(f"{impl:<12} {rate:6.1f} agent steps/s over {counted} steps after the seed phase", flush=True)
    record["ratio"] = record["tdmpc2_jax"]["steps_per_s"] / record["official"]["steps_per_s"]
    return record


def mjx_loop(task: str, official_steps_per_s: float) -> list[dict[str, Any]]:
    """The MJX loop's figures at each --num_envs, with `task` and the host loops' model and planner."""
    sizes = {k: int(v) for k, v in model_overrides(FLAGS.model_size).items()}
    rows = []
    for n in FLAGS.num_envs:
        figures = device_figures(task, sizes, n, FLAGS.steps, FLAGS.updates, FLAGS.repeats, whole_loop=True)
        rows.append(dict(num_envs=n, loop_transitions_per_s=figures["loop_transitions_per_s"],
                         ratio_to_official=figures["loop_transitions_per_s"] / official_steps_per_s,
                         transitions_per_s=figures["transitions_per_s"], updates_per_s=figures["updates_per_s"],
                         loop=figures["loop"], acting=figures["acting"], updates=figures["updates"],
                         batch_size=figures["batch_size"]))
        print(f"MJX N={n:<4} {figures['loop_transitions_per_s']:8.1f} transitions/s training at the official ratio "
              f"({rows[-1]['ratio_to_official']:.2f}x the official loop), {figures['transitions_per_s']:8.1f} acting "
              f"only, {figures['updates_per_s']:6.2f} updates/s", flush=True)
    return rows


def one_thread() -> bool:
    """Whether XLA_FLAGS keep this process's XLA on one thread."""
    return "intra_op_parallelism_threads=1" in os.environ.get("XLA_FLAGS", "")


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    flags.DEFINE_string("official_repo", None, "a checkout of github.com/nicklashansen/tdmpc2", required=True)
    flags.DEFINE_string("official_python", ".venv-official/bin/python",
                        "interpreter of the official training code (experiments/official_env.sh)")
    flags.DEFINE_string("task", "cartpole-swingup", "DMControl task of the host loops")
    flags.DEFINE_integer("episodes", 3, "episodes timed after the seed phase")
    flags.DEFINE_integer("model_size", 0, "model-size preset of both loops (0: the learning comparison's small "
                         "model and planner)")
    define_int_list("num_envs", [1, 16, 64], "MJX environment counts (empty: skip)")
    flags.DEFINE_integer("steps", 3, "batched MJX steps per timed chunk")
    flags.DEFINE_integer("updates", 5, "updates per timed MJX call")
    flags.DEFINE_integer("repeats", 3, "warm MJX calls per figure")
    flags.DEFINE_string("out", None, "results file (JSON)")


def main(argv: list[str]) -> None:
    del argv
    setup_process()
    lvo.check_official_python(FLAGS.official_python)
    results = dict(machine=machine(), host=host_loops(FLAGS.task, FLAGS.episodes))
    write_results(results, FLAGS.out)  # the host figures kept if the MJX part is cut short
    host = results["host"]
    results["mjx"] = dict(task=FLAGS.task, overrides=host["overrides"], steps=FLAGS.steps, updates=FLAGS.updates,
                          repeats=FLAGS.repeats, threads=1 if one_thread() else "all",
                          rows=mjx_loop(FLAGS.task, host["official"]["steps_per_s"]))
    results["machine"]["load_average_end"] = list(os.getloadavg())
    write_results(results, FLAGS.out)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
