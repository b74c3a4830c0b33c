"""What multitask costs beyond its larger model: mt30 against single-task at one size, in the same minutes.

    python -m benchmarks.multitask_overhead [--size=1] [--rounds=6] [--calls=5] [--out=PATH]

Both agents have obs 24, action 6, batch 256 and the official planning settings; the mt30 agent is
benchmarks/multitask.py's (30 tasks, the official task-embedding width, each task's action mask and
discount). For each of the plan call (train mode, one observation) and the update call the command
prints and records:

- the matrix-product FLOPs of one call (benchmarks/_flops.py, loops counted as often as they run),
  so that the time ratio can be set against the work ratio: what the larger inputs (the task
  embedding concatenated to every network's input) cost by themselves;
- the compiled program's gathers, dynamic slices and concatenations (the task-embedding lookups and
  the padding of inputs), counted in its HLO text;
- how many programs each jitted function holds after all the warm calls (1: no recompiles, one
  program for every task index);
- warm-call times, the two agents alternating in each round, and the ratio mt30 / single-task.
"""
from __future__ import annotations

import functools
import re
from typing import Any

import jax
import jax.numpy as jnp
from absl import app, flags

from benchmarks._flops import flops
from benchmarks._timing import first_call, random_batch, spread, warm_times, write_results
from benchmarks.multitask import agent_config, machine
from tdmpc2_jax import xla
from tdmpc2_jax.agent import Agent
from tdmpc2_jax.cli import parse_flags, setup_process
from tdmpc2_jax.config import make_config
from tdmpc2_jax.planner import init_plan_state, make_planner
from tdmpc2_jax.planner import plan as plan_fn

BATCH, OBS_DIM, ACTION_DIM = 256, 24, 6
HLO_OPS = ("gather", "dynamic-slice", "concatenate", "dot", "fusion")
FLAGS = flags.FLAGS


def program_stats(fn, jitted, *args) -> dict[str, Any]:
    """Matrix-product GFLOP of one call of fn(*args) (loops counted as often as they run) and the
    counts of HLO_OPS in the text of jitted(*args)'s compiled program (jitted: fn under xla.jit)."""
    text = jitted.lower(*args).compile().as_text()
    counts = {op: len(re.findall(rf"= \S+ {op}\(", text)) for op in HLO_OPS}
    return dict(gflop=flops(fn, *args) / 1e9, hlo_ops=counts)


def build(multitask: bool, size: int) -> dict[str, Any]:
    """The plan and update calls of one agent, with the stats of their compiled programs."""
    cfg = (agent_config(size, BATCH, 3) if multitask else
           make_config(dict(model_size=size, obs_dim=OBS_DIM, action_dim=ACTION_DIM, batch_size=BATCH)))
    agent = Agent(cfg)
    keys = iter(jax.random.split(jax.random.key(1), 100_000))
    planner = make_planner(agent.model, eval_mode=False)
    params = jax.jit(agent.model.init)(jax.random.key(0))
    task = (jnp.asarray(3, jnp.int32),) if multitask else ()
    plan_args = (params, jnp.ones((cfg.obs_dim,)), init_plan_state(cfg.horizon, cfg.action_dim), next(keys),
                 jnp.array(False), *task)
    update = xla.jit(agent.update, donate_argnums=0)
    batch = random_batch(cfg, BATCH, jax.random.key(2))
    if multitask:
        batch = batch._replace(task=jnp.arange(BATCH, dtype=jnp.int32) % len(cfg.action_dims))
    holder = {"state": agent.init(jax.random.key(3))}
    stats = dict(plan=program_stats(functools.partial(plan_fn, agent.model, eval_mode=False), planner, *plan_args),
                 update=program_stats(agent.update, update, holder["state"], batch, next(keys)))

    def plan():
        return planner(params, plan_args[1], plan_args[2], next(keys), plan_args[4], *task)[0].action

    def step():
        holder["state"], metrics = update(holder["state"], batch, next(keys))
        return metrics["total_loss"]

    return dict(calls=dict(plan=plan, update=step), jitted=dict(plan=planner, update=update), stats=stats,
                params=sum(x.size for x in jax.tree.leaves(params)), task_dim=cfg.task_dim)


def compare(size: int, rounds: int, calls: int) -> dict[str, Any]:
    """Both agents built, then timed in alternating rounds; a record per call kind."""
    agents = {"single": build(False, size), "mt30": build(True, size)}
    record: dict[str, Any] = {name: dict(params=a["params"], task_dim=a["task_dim"]) for name, a in agents.items()}
    for what in ("plan", "update"):
        first = {name: first_call(a["calls"][what]) for name, a in agents.items()}
        times: dict[str, list[float]] = {name: [] for name in agents}
        for _ in range(rounds):
            for name, a in agents.items():
                times[name] += warm_times(a["calls"][what], calls)
        for name, a in agents.items():
            record[name][what] = dict(first_call_s=first[name], programs=a["jitted"][what]._cache_size(),
                                      **a["stats"][what], **spread(times[name]))
        mt, single = record["mt30"][what], record["single"][what]
        record[f"{what}_time_ratio"] = mt["median_s"] / single["median_s"]
        record[f"{what}_flop_ratio"] = mt["gflop"] / single["gflop"]
        print(f"{size}M {what:<6} single {single['median_s'] * 1e3:7.1f} ms ({single['gflop']:.3f} GFLOP)   "
              f"mt30 {mt['median_s'] * 1e3:7.1f} ms ({mt['gflop']:.3f} GFLOP, {mt['programs']} program(s))   "
              f"time x{record[f'{what}_time_ratio']:.2f}, work x{record[f'{what}_flop_ratio']:.2f}   "
              f"HLO mt30 {mt['hlo_ops']} single {single['hlo_ops']}", flush=True)
    return record


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    flags.DEFINE_integer("size", 1, "model-size preset")
    flags.DEFINE_integer("rounds", 6, "rounds of alternating timings")
    flags.DEFINE_integer("calls", 5, "calls of each agent per round")
    flags.DEFINE_string("out", None, "results file (JSON)")


def main(argv: list[str]) -> None:
    del argv
    setup_process()
    results = dict(machine=machine(), size=FLAGS.size, rounds=FLAGS.rounds, calls=FLAGS.calls,
                   **compare(FLAGS.size, FLAGS.rounds, FLAGS.calls))
    write_results(results, FLAGS.out)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
