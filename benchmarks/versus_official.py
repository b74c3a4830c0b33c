"""This project against the official PyTorch TD-MPC2 on the same CPU, in the same minutes.

    python -m benchmarks.versus_official --official-repo PATH [--sizes 1 5] [--rounds 6] [--calls 5]

PATH is a checkout of github.com/nicklashansen/tdmpc2 (needs `pip install torch==2.13.0
tensordict==0.8.3`). Its `tdmpc2/tdmpc2.py` and `tdmpc2/common/` are copied to a temporary directory
with the same CPU patches as the parity fixtures: 'cuda:0' -> 'cpu', Adam(capturable=False), no
torch.compile (eager). Both agents get the official defaults for the preset (obs 24, action 6,
batch 256, dropout 0.01).

The two implementations alternate: each round times --calls plans and updates of ours, then of the
official code. A machine whose speed drifts from minute to minute then slows both alike, and the
ratio of the medians is what to compare across machines.
"""
from __future__ import annotations

import argparse
import importlib
import pathlib
import shutil
import sys
import tempfile
from typing import Any, Callable

import jax
import jax.numpy as jnp
import yaml

from benchmarks._timing import first_call, random_batch, spread, warm_times
from tdmpc2_jax import xla
from tdmpc2_jax.agent import Agent
from tdmpc2_jax.config import make_config
from tdmpc2_jax.malloc import reuse_freed_memory
from tdmpc2_jax.planner import init_plan_state, make_planner

OBS_DIM, ACTION_DIM = 24, 6
# (file, text, replacement, how many times the text must occur)
CPU_PATCHES = (
    ("tdmpc2.py", "'cuda:0'", "'cpu'", 2),
    ("tdmpc2.py", "capturable=True", "capturable=False", 2),
    ("common/scale.py", "'cuda:0'", "'cpu'", 2),
)


def load_official(repo: pathlib.Path) -> tuple[type, dict, dict]:
    """(TDMPC2 class, MODEL_SIZE presets, config.yaml defaults) from a patched copy of the checkout."""
    source = repo / "tdmpc2"
    if not (source / "tdmpc2.py").is_file():
        raise SystemExit(f"{repo} is not a checkout of nicklashansen/tdmpc2 (no tdmpc2/tdmpc2.py)")
    try:
        import tensordict  # noqa: F401
        import torch  # noqa: F401
    except ImportError as err:
        raise SystemExit(f"the official code needs torch and tensordict ({err}); "
                         "pip install torch==2.13.0 tensordict==0.8.3") from err
    copy = pathlib.Path(tempfile.mkdtemp(prefix="tdmpc2_official_"))
    shutil.copytree(source / "common", copy / "common")
    shutil.copy(source / "tdmpc2.py", copy / "tdmpc2.py")
    for name, text, replacement, count in CPU_PATCHES:
        path = copy / name
        content = path.read_text()
        if content.count(text) != count:
            raise SystemExit(f"{name}: expected {count} x {text!r} to patch for CPU, found {content.count(text)} "
                             "(the official code changed; update CPU_PATCHES)")
        path.write_text(content.replace(text, replacement))
    sys.path.insert(0, str(copy))
    official = importlib.import_module("tdmpc2")
    presets = importlib.import_module("common").MODEL_SIZE
    defaults = yaml.safe_load((source / "config.yaml").read_text())
    return official.TDMPC2, presets, defaults


class _Config(dict):
    """The attribute access the official code expects of its OmegaConf config."""

    __getattr__ = dict.__getitem__

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value


def official_config(defaults: dict, presets: dict, size: int, batch_size: int) -> _Config:
    """The official parser's single-task state config for the preset `size`."""
    cfg = _Config({k: _number(v) for k, v in defaults.items() if k != "defaults"})
    cfg.update(presets[size])
    cfg.update(model_size=size, batch_size=batch_size, compile=False, multitask=False, task_dim=0,
               tasks=[cfg.task], obs_shape={"state": [OBS_DIM]}, action_dim=ACTION_DIM, episode_length=1000,
               bin_size=(cfg.vmax - cfg.vmin) / (cfg.num_bins - 1))
    return cfg


def _number(value: Any) -> Any:
    """YAML 1.1 reads '3e-4' as a string; OmegaConf reads it as a float."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


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


def official(agent_cls: type, cfg: _Config) -> tuple[Callable[[], Any], Callable[[], Any]]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official-repo", type=pathlib.Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=5, help="calls of each program per round")
    args = parser.parse_args()
    reuse_freed_memory()  # as the command lines do (malloc.py)
    agent_cls, presets, defaults = load_official(args.official_repo)
    import torch

    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); torch {torch.__version__} "
          f"on {torch.get_num_threads()} threads; {args.rounds} rounds x {args.calls} calls, alternating")
    for size in args.sizes:
        our_plan, our_update, plan_compile, update_compile = ours(size, args.batch_size)
        their_plan, their_update = official(agent_cls, official_config(defaults, presets, size, args.batch_size))
        times: dict[str, list[float]] = {name: [] for name in ("our plan", "official plan", "our update",
                                                                "official update")}
        for _ in range(args.rounds):
            for name, fn in (("our plan", our_plan), ("official plan", their_plan), ("our update", our_update),
                             ("official update", their_update)):
                times[name] += warm_times(fn, args.calls)
        for what, first in (("plan", plan_compile), ("update", update_compile)):
            mine, theirs = times[f"our {what}"], times[f"official {what}"]
            ratio = spread(theirs)["median_s"] / spread(mine)["median_s"]
            print(f"{size}M {what:<6}  tdmpc2_jax {_summary(mine)}, first call {first:5.2f} s   "
                  f"official {_summary(theirs)}   official / ours {ratio:4.2f}x")


if __name__ == "__main__":
    main()
