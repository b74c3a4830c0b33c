"""This project against the implementations a user could pick instead, on the same CPU, in the same minutes.

    python -m benchmarks.versus_official [--official_repo=PATH] [--peer_repo=PATH] [--sizes=1,5,19]
        [--multitask_sizes=1,5] [--rounds=6] [--calls=5] [--out=experiments/results/speed/versus.json]

Six implementations, each in its own long-lived worker process (benchmarks/versus_worker.py):

- ours: this project (JAX), with this interpreter;
- official: the official PyTorch TD-MPC2 (PATH, a checkout of github.com/nicklashansen/tdmpc2), eager,
  loaded by tdmpc2_jax/official_code.py with the CPU patches of the parity fixtures, run by
  --official_python (torch 2.13 + tensordict: experiments/official_env.sh);
- official_1thread: the same on one torch thread (torch.set_num_threads(1)); on a machine whose
  cores other jobs share, torch's threads wait on each other in every operator;
- official_compiled: the same with its `compile=True` path (torch.compile(mode="reduce-overhead") of
  `_update` and `_plan`, which on CPU has no CUDA graphs and compiles with inductor);
- peer: ShaneFlandermeyer/tdmpc2-jax, run by --peer_python (benchmarks/peer_env.sh); single-task only;
- peer_wide: the same with its hidden layers as wide as the preset's mlp_dim (the peer makes them
  latent_dim wide), so that its calls do the work of ours.

Every implementation gets obs 24, action 6, batch 256, horizon 3, 6 MPPI iterations of 512 samples
(24 from the policy), 64 elites, and the preset's widths. The plan call is one MPPI plan of one
observation, encoder included, as `act` runs it in training; the update call is one gradient step.
Each worker builds and calls both once (first call: compile + run), then rounds alternate: in each
round every worker times --calls plans, then every worker --calls updates. A machine whose speed
drifts from minute to minute slows all alike, and each ratio (theirs / ours, of the medians) comes
from the same rounds.
"""
from __future__ import annotations

import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile
from typing import Any

from absl import app, flags

from benchmarks._flags import define_int_list
from benchmarks._timing import spread, write_results
from benchmarks.multitask import machine
from tdmpc2_jax.cli import fail, parse_flags

REPO = pathlib.Path(__file__).resolve().parent.parent
WORKER = REPO / "benchmarks" / "versus_worker.py"
IMPLEMENTATIONS = ("ours", "official", "official_1thread", "official_compiled", "peer", "peer_wide")
CALLS = ("plan", "update")
FLAGS = flags.FLAGS


class WorkerError(RuntimeError):
    """A worker that exited or answered out of protocol."""


class Worker:
    """One implementation's worker process, spoken to in JSON lines."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None):
        self.name = name
        self.log = tempfile.NamedTemporaryFile("w+", prefix=f"versus_{name}_", suffix=".log", delete=False)
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                        text=True, env=env, cwd=REPO)

    def request(self, message: dict) -> dict:
        """The worker's reply to `message`; a WorkerError (with the end of its stderr) if it died."""
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            tail = " | ".join(self.log.read().strip().splitlines()[-2:])
            raise WorkerError(f"the {self.name} worker exited ({tail or 'no output'}; log {self.log.name})")
        return json.loads(line)

    def request_quit(self) -> None:
        try:
            self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.process.stdin.close()
        except BrokenPipeError:
            pass


def worker_argv(name: str, python: str, official_repo: str | None,
                peer_path: str | None = None) -> tuple[list[str], dict[str, str]]:
    """(command line, environment) of one implementation's worker. `ours` and `official` import this
    repository (the official worker with this environment's site-packages behind its own, for
    jax, as tdmpc2_jax/official_code.py's fixture generators run); the peer's worker must not, and
    gets `peer_path` (where its package is installed outside its interpreter) as its only path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if name.startswith("peer"):
        if peer_path:
            env["PYTHONPATH"] = peer_path
        return [python, str(WORKER), name], env
    if name == "ours":  # this repository first, then whatever path the command was given
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    else:
        site = next(p for p in sys.path if p.endswith("site-packages"))
        env["PYTHONPATH"] = f"{REPO}{os.pathsep}{site}"
    return [python, str(WORKER), name] + ([official_repo] if official_repo else []), env


def measure(workers: list[Worker], size: Any, multitask: bool, batch_size: int, rounds: int,
            calls: int) -> dict[str, Any]:
    """Builds one configuration in every worker, then times them in alternating rounds.

    Returns {"first_call_s": {name: {plan, update}}, "info": {name: ...}, "skipped": {name: why},
    "times": {name: {plan: [[s] * calls] * rounds, update: ...}}}.
    """
    label = f"{size}M {'mt30' if multitask else 'single-task'}"
    result: dict[str, Any] = {"first_call_s": {}, "info": {}, "skipped": {}, "times": {}}
    present = []
    for worker in workers:
        reply = worker.request({"op": "build", "size": size, "multitask": multitask, "batch_size": batch_size})
        if "first_call_s" not in reply:
            result["skipped"][worker.name] = reply.get("unsupported") or reply.get("error")
            print(f"{label}: {worker.name} skipped: {result['skipped'][worker.name]}", flush=True)
            continue
        result["first_call_s"][worker.name], result["info"][worker.name] = reply["first_call_s"], reply["info"]
        result["times"][worker.name] = {what: [] for what in CALLS}
        present.append(worker)
        first = reply["first_call_s"]
        print(f"{label}: {worker.name} built, first plan {first['plan']:.2f} s, first update {first['update']:.2f} s",
              flush=True)
    for r in range(rounds):
        for what in CALLS:
            for worker in present:
                reply = worker.request({"op": "time", "what": what, "calls": calls})
                if "times" not in reply:
                    raise WorkerError(f"the {worker.name} worker failed to time {what}: {reply.get('error')}")
                result["times"][worker.name][what].append(reply["times"])
        print(f"{label}: round {r + 1}/{rounds} done", flush=True)
    return result


def summarize(measurement: dict[str, Any], size: Any, multitask: bool) -> list[dict[str, Any]]:
    """One row per implementation and call: first call, spread of the warm calls, and against ours
    the ratio of the medians and the median of the per-round ratios (theirs / ours, same rounds)."""
    rows = []
    ours = measurement["times"].get("ours")
    for name, per_call in measurement["times"].items():
        for what, rounds in per_call.items():
            row = dict(implementation=name, size=size, multitask=multitask, call=what,
                       first_call_s=measurement["first_call_s"][name][what], calls=sum(len(r) for r in rounds),
                       **spread([t for r in rounds for t in r]))
            if ours is not None:
                mine = ours[what]
                row["ratio_to_ours"] = row["median_s"] / spread([t for r in mine for t in r])["median_s"]
                per_round = [spread(theirs)["median_s"] / spread(m)["median_s"] for theirs, m in zip(rounds, mine)]
                row["round_ratios"] = per_round
                row["median_round_ratio"] = spread(per_round)["median_s"]
            rows.append(row)
    return rows


def _line(row: dict[str, Any]) -> str:
    ms = lambda s: f"{s * 1e3:.1f}"  # noqa: E731
    ratio = f"   {row['ratio_to_ours']:5.2f}x ours" if "ratio_to_ours" in row else ""
    return (f"{row['size']}M {'mt30' if row['multitask'] else 'single'} {row['call']:<6} "
            f"{row['implementation']:<18} first {row['first_call_s']:7.2f} s   median {ms(row['median_s']):>8} ms "
            f"(p10 {ms(row['p10_s'])}, p90 {ms(row['p90_s'])}){ratio}")


def git_commit(path: str | pathlib.Path | None) -> str | None:
    """HEAD of the checkout at `path` (None without one)."""
    if not path:
        return None
    done = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or None


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    flags.DEFINE_string("official_repo", None, "a checkout of github.com/nicklashansen/tdmpc2 (needed for the "
                        "official implementations)")
    flags.DEFINE_string("official_python", ".venv-official/bin/python",
                        "interpreter with torch 2.13 + tensordict (experiments/official_env.sh)")
    flags.DEFINE_string("peer_python", ".venv-peer/bin/python",
                        "interpreter with ShaneFlandermeyer/tdmpc2-jax installed (benchmarks/peer_env.sh)")
    flags.DEFINE_string("peer_repo", None, "the peer checkout installed there (its commit is recorded)")
    flags.DEFINE_string("peer_commit", None, "the peer's commit where there is no checkout to read it from")
    flags.DEFINE_string("peer_path", None, "PYTHONPATH of the peer workers, where the peer is installed outside "
                        "--peer_python's environment (benchmarks/device_versus.sh)")
    flags.DEFINE_list("implementations", list(IMPLEMENTATIONS), f"which of {', '.join(IMPLEMENTATIONS)}")
    define_int_list("sizes", [1, 5, 19], "single-task model-size presets")
    define_int_list("multitask_sizes", [1], "mt30 model sizes (empty: none)")
    flags.DEFINE_integer("batch_size", 256, "update batch size")
    flags.DEFINE_integer("rounds", 6, "rounds of alternating timings")
    flags.DEFINE_integer("calls", 5, "calls of each program per worker and round")
    flags.DEFINE_string("out", None, "results file (JSON)")


def start_workers() -> list[Worker]:
    unknown = set(FLAGS.implementations) - set(IMPLEMENTATIONS)
    if unknown or "ours" not in FLAGS.implementations:
        fail(f"--implementations must include ours and name only {', '.join(IMPLEMENTATIONS)}; got "
             f"{','.join(FLAGS.implementations)}")
    official = [n for n in FLAGS.implementations if n.startswith("official")]
    if official and not FLAGS.official_repo:
        fail(f"--official_repo is needed for {', '.join(official)}")
    if official and not (pathlib.Path(FLAGS.official_repo) / "tdmpc2" / "tdmpc2.py").is_file():
        fail(f"{FLAGS.official_repo} is not a checkout of nicklashansen/tdmpc2 (no tdmpc2/tdmpc2.py)")
    pythons = dict(ours=sys.executable, official=FLAGS.official_python, official_1thread=FLAGS.official_python,
                   official_compiled=FLAGS.official_python, peer=FLAGS.peer_python, peer_wide=FLAGS.peer_python)
    workers = []
    for name in (n for n in IMPLEMENTATIONS if n in FLAGS.implementations):
        if not os.access(pythons[name], os.X_OK):
            fail(f"{name}: no interpreter at {pythons[name]} (see benchmarks/versus_official.py's docstring)")
        argv, env = worker_argv(name, os.path.abspath(pythons[name]) if name != "ours" else pythons[name],
                                FLAGS.official_repo and os.path.abspath(FLAGS.official_repo), FLAGS.peer_path)
        workers.append(Worker(name, argv, env))
    return workers


def main(argv: list[str]) -> None:
    del argv
    workers = start_workers()
    configs = [(s, False) for s in FLAGS.sizes] + [(s, True) for s in FLAGS.multitask_sizes]
    print(f"{', '.join(w.name for w in workers)}; {FLAGS.rounds} rounds x {FLAGS.calls} calls, alternating; "
          f"sizes {configs}", flush=True)
    results: dict[str, Any] = dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), machine=machine(),
        settings=dict(batch_size=FLAGS.batch_size, rounds=FLAGS.rounds, calls=FLAGS.calls, obs_dim=24,
                      action_dim=6, horizon=3, iterations=6, num_samples=512, num_pi_trajs=24, num_elites=64),
        commits=dict(ours=git_commit(REPO), official=git_commit(FLAGS.official_repo),
                     peer=git_commit(FLAGS.peer_repo) or FLAGS.peer_commit),
        configs=[], rows=[])
    try:
        for size, multitask in configs:
            measurement = measure(workers, size, multitask, FLAGS.batch_size, FLAGS.rounds, FLAGS.calls)
            rows = summarize(measurement, size, multitask)
            results["configs"].append(dict(size=size, multitask=multitask, info=measurement["info"],
                                           skipped=measurement["skipped"]))
            results["rows"] += rows
            for row in rows:
                print(_line(row), flush=True)
            results["machine"]["load_average_end"] = list(os.getloadavg())
            write_results(results, FLAGS.out)  # after every configuration: a run cut short keeps what it measured
    except WorkerError as err:
        fail(str(err))
    finally:
        for worker in workers:
            worker.request_quit()


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
