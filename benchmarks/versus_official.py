"""This project against the official PyTorch TD-MPC2 on the same CPU, in the same minutes.

    python -m benchmarks.versus_official --official_repo=PATH [--sizes=1,5] [--rounds=6] [--calls=5]

PATH is a checkout of github.com/nicklashansen/tdmpc2 (needs `pip install torch==2.13.0
tensordict==0.8.3`), loaded by tdmpc2_jax/official_code.py with the same CPU patches as the parity
fixtures ('cuda:0' -> 'cpu', Adam(capturable=False)) and no torch.compile (eager). Both agents get
the official defaults for the preset (obs 24, action 6, batch 256, dropout 0.01).

The two implementations alternate: each round times --calls plans and updates of ours, then of the
official code. A machine whose speed drifts from minute to minute then slows both alike, and the
ratio of the medians is what to compare across machines.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from absl import app, flags

from benchmarks._flags import define_int_list
from benchmarks._timing import first_call, random_batch, spread, warm_times
from tdmpc2_jax import xla
from tdmpc2_jax.agent import Agent
from tdmpc2_jax.cli import fail, parse_flags, setup_process
from tdmpc2_jax.config import make_config
from tdmpc2_jax.official_code import OfficialConfig, default_config, load_official
from tdmpc2_jax.planner import init_plan_state, make_planner

OBS_DIM, ACTION_DIM = 24, 6
FLAGS = flags.FLAGS


def official_config(defaults: dict, presets: dict, size: int, batch_size: int) -> OfficialConfig:
    """The official parser's single-task state config for the preset `size`."""
    cfg = default_config(defaults)
    cfg.update(presets[size])
    cfg.update(model_size=size, batch_size=batch_size, compile=False, multitask=False, task_dim=0,
               tasks=[cfg.task], obs_shape={"state": [OBS_DIM]}, action_dim=ACTION_DIM, episode_length=1000,
               bin_size=(cfg.vmax - cfg.vmin) / (cfg.num_bins - 1))
    return cfg


def ours(size: int, batch_size: int) -> tuple[Callable[[], Any], Callable[[], Any], float, float]:
    """(plan call, update call, plan first call s, update first call s) of this project."""
    cfg = make_config(dict(model_size=size, obs_dim=OBS_DIM, action_dim=ACTION_DIM, batch_size=batch_size))
    agent = Agent(cfg)
    keys = iter(jax.random.split(jax.random.key(1), 100_000))
    planner = make_planner(agent.model, eval_mode=False)
    params = jax.jit(agent.model.init)(jax.random.key(0))
    plan_state, obs, t0 = init_plan_state(cfg.horizon, cfg.action_dim), jnp.ones((OBS_DIM,)), jnp.array(False)
    plan = lambda: planner(params, obs, plan_state, next(keys), t0)[0].action

    update = xla.jit(agent.update, donate_argnums=0)
    batch = random_batch(cfg, batch_size, jax.random.key(2))
    holder = {"state": agent.init(jax.random.key(3))}

    def step():
        holder["state"], metrics = update(holder["state"], batch, next(keys))
        return metrics["total_loss"]

    return plan, step, first_call(plan), first_call(step)


def official(agent_cls: type, cfg: OfficialConfig) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(plan call, update call) of the official agent (eager PyTorch on CPU)."""
    import torch

    torch.manual_seed(0)
    agent = agent_cls(cfg)
    h, b = cfg.horizon, cfg.batch_size
    obs = torch.randn(h + 1, b, OBS_DIM)
    action = torch.rand(h, b, ACTION_DIM) * 2 - 1
    reward, terminated = torch.rand(h, b, 1), torch.zeros(h, b, 1)
    plan_obs = torch.ones(OBS_DIM)
    plan = lambda: agent.act(plan_obs, t0=False)
    update = lambda: agent._update(obs, action, reward, terminated)
    plan(), update()
    return plan, update


def _summary(times: list[float]) -> str:
    stats = spread(times)
    return f"{stats['median_s'] * 1e3:7.1f} ms (p10 {stats['p10_s'] * 1e3:.1f}, p90 {stats['p90_s'] * 1e3:.1f})"


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    flags.DEFINE_string("official_repo", None, "a checkout of github.com/nicklashansen/tdmpc2", required=True)
    define_int_list("sizes", [1, 5], "model-size presets")
    flags.DEFINE_integer("batch_size", 256, "update batch size")
    flags.DEFINE_integer("rounds", 6, "rounds of alternating timings")
    flags.DEFINE_integer("calls", 5, "calls of each program per round")


def compare(agent_cls: type, presets: dict, defaults: dict, size: int) -> None:
    """Prints the plan and update figures of both implementations at one preset, timed in alternation."""
    our_plan, our_update, plan_compile, update_compile = ours(size, FLAGS.batch_size)
    their_plan, their_update = official(agent_cls, official_config(defaults, presets, size, FLAGS.batch_size))
    times: dict[str, list[float]] = {name: [] for name in ("our plan", "official plan", "our update",
                                                            "official update")}
    for _ in range(FLAGS.rounds):
        for name, fn in (("our plan", our_plan), ("official plan", their_plan), ("our update", our_update),
                         ("official update", their_update)):
            times[name] += warm_times(fn, FLAGS.calls)
    for what, first in (("plan", plan_compile), ("update", update_compile)):
        mine, theirs = times[f"our {what}"], times[f"official {what}"]
        ratio = spread(theirs)["median_s"] / spread(mine)["median_s"]
        print(f"{size}M {what:<6}  tdmpc2_jax {_summary(mine)}, first call {first:5.2f} s   "
              f"official {_summary(theirs)}   official / ours {ratio:4.2f}x")


def main(argv: list[str]) -> None:
    del argv
    setup_process()  # as the command lines do: freed memory kept (malloc.py), logging at WARNING
    try:
        agent_cls, presets, defaults = load_official(FLAGS.official_repo)
    except (ValueError, ImportError) as err:
        fail(str(err))
    import torch

    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); torch {torch.__version__} "
          f"on {torch.get_num_threads()} threads; {FLAGS.rounds} rounds x {FLAGS.calls} calls, alternating")
    for size in FLAGS.sizes:
        compare(agent_cls, presets, defaults, size)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
