"""One implementation of TD-MPC2 timed on request: the worker process of benchmarks/versus_official.py.

    python benchmarks/versus_worker.py IMPLEMENTATION [OFFICIAL_REPO]

IMPLEMENTATION is `ours` (this project, JAX), `official` (the official PyTorch code in eager mode),
`official_1thread` (the same on one torch thread: torch.set_num_threads(1)), `official_compiled`
(the same with its `compile=True` path, torch.compile), `peer` (the JAX reimplementation
ShaneFlandermeyer/tdmpc2-jax, imported from the environment the worker runs in) or `peer_wide` (the
peer with its hidden layers as wide as the official preset's `mlp_dim`, so that it does the work per
call that ours does).
The worker is started as a script, never with `-m`, so that its directory and not this repository
is first on sys.path: the peer's package is also named `tdmpc2_jax`. It imports nothing of this
repository at module level (the JAX builders import benchmarks/_flops.py as a sibling); the driver puts the
repository on PYTHONPATH for `ours` and `official`. The JAX workers report the matrix-product
FLOPs of each call (benchmarks/_flops.py, loops counted as often as they run) with their build.

Requests and replies are JSON lines on stdin and on the worker's original stdout; everything the
implementations print goes to stderr. Requests:

- {"op": "build", "size": 1, "multitask": false, "batch_size": 256}: builds the plan call (one MPPI
  plan of one observation [24], encoder included, as `act` runs it when training) and the update
  call (one gradient step on a batch [horizon + 1, 256, 24]); size "tiny" (ours only) is
  benchmarks/multitask.py's 16-wide architecture. Calls each once and replies
  {"first_call_s": {"plan": s, "update": s}, "info": {...}}; or {"unsupported": why}.
- {"op": "time", "what": "plan" | "update", "calls": n}: replies {"times": [s, ...]}, n warm calls.
- {"op": "quit"}.

A failure replies {"error": one line} and the worker carries on.
"""
from __future__ import annotations

import functools
import json
import os
import sys
import time
from typing import Any, Callable

OBS_DIM, ACTION_DIM = 24, 6
IMPLEMENTATIONS = ("ours", "official", "official_1thread", "official_compiled", "peer", "peer_wide")


def _seconds(call: Callable[[], Any]) -> float:
    """Wall seconds of one call; every builder returns calls that wait for their own results."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------------
# the builders: (plan call, update call, info) for one size


def build_ours(size: int | str, multitask: bool, batch_size: int) -> tuple[Callable, Callable, dict]:
    """This project: the jitted planner (train mode) and the jitted update with its state donated."""
    import jax
    import jax.numpy as jnp
    from _flops import flops  # benchmarks/_flops.py: this script's directory leads sys.path

    from benchmarks._timing import random_batch
    from benchmarks.multitask import TINY, agent_config
    from tdmpc2_jax import xla
    from tdmpc2_jax.agent import Agent
    from tdmpc2_jax.config import make_config
    from tdmpc2_jax.planner import init_plan_state, make_planner
    from tdmpc2_jax.planner import plan as plan_fn

    if multitask:
        cfg = agent_config(size, batch_size, 3)
    else:
        model = dict(model_size=1, **TINY) if size == "tiny" else dict(model_size=size)
        cfg = make_config(dict(model, obs_dim=OBS_DIM, action_dim=ACTION_DIM, batch_size=batch_size))
    agent = Agent(cfg)
    keys = iter(jax.random.split(jax.random.key(1), 100_000))
    planner = make_planner(agent.model, eval_mode=False)
    params = jax.jit(agent.model.init)(jax.random.key(0))
    plan_state, obs, t0 = init_plan_state(cfg.horizon, cfg.action_dim), jnp.ones((cfg.obs_dim,)), jnp.array(False)
    task_args = (jnp.asarray(0, jnp.int32),) if multitask else ()

    def plan():
        jax.block_until_ready(planner(params, obs, plan_state, next(keys), t0, *task_args)[0].action)

    update = xla.jit(agent.update, donate_argnums=0)
    batch = random_batch(cfg, batch_size, jax.random.key(2))
    if multitask:
        batch = batch._replace(task=jnp.arange(batch_size, dtype=jnp.int32) % len(cfg.action_dims))
    holder = {"state": agent.init(jax.random.key(3))}

    def step():
        holder["state"], metrics = update(holder["state"], batch, next(keys))
        jax.block_until_ready(metrics["total_loss"])

    info = dict(framework=f"jax {jax.__version__}", latent_dim=cfg.latent_dim, task_dim=cfg.task_dim,
                params=sum(x.size for x in jax.tree.leaves(params)),
                plan_gflop=flops(functools.partial(plan_fn, agent.model, eval_mode=False), params, obs, plan_state,
                                 jax.random.key(0), t0, *task_args) / 1e9,
                update_gflop=flops(agent.update, holder["state"], batch, jax.random.key(0)) / 1e9)
    return plan, step, info


def official_config(size: int, multitask: bool, batch_size: int, compiled: bool, repo: str) -> Any:
    """The official parser's state config for the preset `size` (mt30 when `multitask`)."""
    from tdmpc2_jax.official_code import default_config, load_official

    _, presets, defaults = load_official(repo)
    cfg = default_config(defaults)
    cfg.update(presets[size])
    cfg.update(model_size=size, batch_size=batch_size, compile=compiled, multitask=multitask,
               obs_shape={"state": [OBS_DIM]}, action_dim=ACTION_DIM, episode_length=1000,
               bin_size=(cfg.vmax - cfg.vmin) / (cfg.num_bins - 1))
    if multitask:
        from benchmarks.multitask import MT30_DIMS  # imports jax: the official worker runs with .venv beside

        tasks = list(MT30_DIMS)
        cfg.update(tasks=tasks, task_dim=96 if size == 1 else 64, action_dims=[MT30_DIMS[t][1] for t in tasks],
                   episode_lengths=[500] * len(tasks), episode_length=500)
        if size == 19:
            cfg.latent_dim = 512  # as benchmarks/multitask.py: the official mt30 19M checkpoint's width
    else:
        cfg.update(tasks=[cfg.task], task_dim=0)
    return cfg


def build_official(size: int, multitask: bool, batch_size: int, compiled: bool,
                   repo: str) -> tuple[Callable, Callable, dict]:
    """The official agent on CPU: `act` (which runs `plan`) and `_update` as its `update` calls it."""
    import torch

    from tdmpc2_jax.official_code import load_official

    agent_cls, _, _ = load_official(repo)
    cfg = official_config(size, multitask, batch_size, compiled, repo)
    torch.manual_seed(0)
    agent = agent_cls(cfg)
    h, b = cfg.horizon, batch_size
    obs = torch.randn(h + 1, b, OBS_DIM)
    action = torch.rand(h, b, ACTION_DIM) * 2 - 1
    reward, terminated = torch.rand(h, b, 1), torch.zeros(h, b, 1)
    task = torch.arange(b) % len(cfg.tasks) if multitask else None
    plan_obs, plan_task = torch.ones(OBS_DIM), (0 if multitask else None)

    def plan():
        agent.act(plan_obs, t0=False, task=plan_task)

    def update():
        if compiled:
            torch.compiler.cudagraph_mark_step_begin()  # as the official update() does before _update
        agent._update(obs, action, reward, terminated, task)

    info = dict(framework=f"torch {torch.__version__}", threads=torch.get_num_threads(),
                compile='torch.compile(mode="reduce-overhead")' if compiled else "eager",
                latent_dim=cfg.latent_dim, task_dim=cfg.task_dim,
                params=sum(p.numel() for p in agent.model.parameters()))
    return plan, update, info


def build_peer(size: int, multitask: bool, batch_size: int, wide: bool) -> tuple[Callable, Callable, dict]:
    """ShaneFlandermeyer/tdmpc2-jax as its train.py builds it, with the official preset's encoder
    width and depth, latent width and Q count and the official planning settings. Its world model's
    hidden layers are `latent_dim` wide; with `wide`, they are the preset's `mlp_dim` wide instead
    (the mish layers of its dynamics, reward, policy and Q networks; output layers unchanged)."""
    if multitask:
        raise NotImplementedError("the peer has no task embedding or multitask training")
    from functools import partial

    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from _flops import flops  # benchmarks/_flops.py: this script's directory leads sys.path
    from flax.training.train_state import TrainState
    from tdmpc2_jax import TDMPC2, WorldModel
    from tdmpc2_jax import world_model as peer_world_model
    from tdmpc2_jax.common.activations import mish, simnorm
    from tdmpc2_jax.networks import NormedLinear

    # enc_dim, latent, enc layers, Qs, mlp_dim of the official MODEL_SIZE presets
    preset = {1: (256, 128, 2, 2, 384), 5: (256, 512, 2, 5, 512), 19: (1024, 768, 3, 5, 1024)}
    if size not in preset:
        raise ValueError(f"no peer preset for size {size}")
    enc_dim, latent_dim, enc_layers, num_q, mlp_dim = preset[size]
    hidden_width = mlp_dim if wide else latent_dim

    def hidden_layer(features: int, activation: Callable, **kwargs) -> NormedLinear:
        """The peer's NormedLinear, a mish hidden layer widened to `hidden_width`."""
        return NormedLinear(hidden_width if activation is mish else features, activation=activation, **kwargs)

    peer_world_model.NormedLinear = hidden_layer  # the name its WorldModel.create builds every layer with
    layers = [NormedLinear(enc_dim, activation=mish) for _ in range(enc_layers - 1)]
    encoder_module = nn.Sequential(layers + [NormedLinear(latent_dim, activation=partial(simnorm, simplex_dim=8))])
    key = jax.random.key(0)
    tx = optax.chain(optax.zero_nans(), optax.clip_by_global_norm(20), optax.adam(3e-4))
    encoder = TrainState.create(apply_fn=encoder_module.apply, tx=tx,
                                params=encoder_module.init(key, jnp.zeros(OBS_DIM))["params"])
    model = WorldModel.create(action_dim=ACTION_DIM, encoder=encoder, latent_dim=latent_dim, value_dropout=0.01,
                              num_value_nets=num_q, num_bins=101, symlog_min=-10, symlog_max=10, simnorm_dim=8,
                              predict_continues=False, symlog_obs=False, learning_rate=3e-4, key=key)
    holder = {"agent": TDMPC2.create(
        world_model=model, mpc=True, horizon=3, mppi_iterations=6, population_size=512, policy_prior_samples=24,
        num_elites=64, min_plan_std=0.05, max_plan_std=2, temperature=0.5, discount=0.99, batch_size=batch_size,
        rho=0.5, consistency_coef=20, reward_coef=0.1, value_coef=0.1, continue_coef=1.0, entropy_coef=1e-4,
        tau=0.01)}
    keys = iter(jax.random.split(jax.random.key(1), 100_000))
    rng = np.random.default_rng(2)
    h = 3
    obs = jnp.asarray(rng.standard_normal((h + 1, batch_size, OBS_DIM), np.float32))
    actions = jnp.asarray(rng.uniform(-1, 1, (h, batch_size, ACTION_DIM)).astype(np.float32))
    rewards = jnp.asarray(rng.uniform(0, 1, (h, batch_size)).astype(np.float32))
    done = jnp.zeros((h, batch_size), bool)
    plan_obs = np.ones(OBS_DIM, np.float32)

    def plan():
        holder["agent"].act(plan_obs, None, train=True, key=next(keys))  # returns a NumPy action: waited for

    def update():
        holder["agent"], info = holder["agent"].update(obs[:-1], actions, rewards, obs[1:], done, done,
                                                       key=next(keys))
        jax.block_until_ready(info["total_loss"])

    trained = [getattr(model, name).params for name in ("encoder", "dynamics_model", "reward_model",
                                                        "policy_model", "value_model")]
    agent, key = holder["agent"], jax.random.key(0)
    z = model.encode(jnp.asarray(plan_obs), model.encoder.params, key=key)
    info = dict(framework=f"jax {jax.__version__}", latent_dim=latent_dim, hidden_width=hidden_width,
                params=sum(x.size for x in jax.tree.leaves(trained)),
                plan_gflop=(flops(lambda o: model.encode(o, model.encoder.params, key=key), jnp.asarray(plan_obs))
                            + flops(lambda z: agent.plan(z, None, train=True, key=key)[0], z)) / 1e9,
                update_gflop=flops(lambda a: a.update(obs[:-1], actions, rewards, obs[1:], done, done, key=key)[1]
                                   ["total_loss"], agent) / 1e9)
    return plan, update, info


def build(implementation: str, request: dict, repo: str | None) -> tuple[Callable, Callable, dict]:
    size, multitask, batch_size = request["size"], bool(request["multitask"]), int(request["batch_size"])
    if implementation == "ours":
        return build_ours(size, multitask, batch_size)
    if implementation.startswith("official"):
        if implementation == "official_1thread":
            import torch

            torch.set_num_threads(1)
        return build_official(size, multitask, batch_size, implementation == "official_compiled", repo)
    return build_peer(size, multitask, batch_size, wide=implementation == "peer_wide")


# ---------------------------------------------------------------------------------------------------
# the request loop


def serve(implementation: str, repo: str | None, requests, replies) -> None:
    """Answers `requests` (lines) on `replies` until a quit request or the end of input."""
    calls: dict[str, Callable] = {}

    def answer(reply: dict) -> None:
        replies.write(json.dumps(reply) + "\n")
        replies.flush()

    for line in requests:
        request = json.loads(line)
        try:
            if request["op"] == "quit":
                return
            if request["op"] == "build":
                calls.clear()
                try:
                    plan, update, info = build(implementation, request, repo)
                except NotImplementedError as err:
                    answer({"unsupported": str(err)})
                    continue
                calls.update(plan=plan, update=update)
                answer({"first_call_s": {"plan": _seconds(plan), "update": _seconds(update)}, "info": info})
            elif request["op"] == "time":
                answer({"times": [_seconds(calls[request["what"]]) for _ in range(int(request["calls"]))]})
            else:
                answer({"error": f"unknown request {request['op']!r}"})
        except Exception as err:  # one line to the driver; the worker stays up for the next size
            answer({"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"})


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in IMPLEMENTATIONS:
        sys.exit(f"usage: versus_worker.py {{{','.join(IMPLEMENTATIONS)}}} [OFFICIAL_REPO]")
    replies = os.fdopen(os.dup(1), "w")  # the protocol's channel; whatever else is printed goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(argv[1], argv[2] if len(argv) > 2 else None, sys.stdin, replies)


if __name__ == "__main__":
    main(sys.argv)
