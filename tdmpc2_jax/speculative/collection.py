"""Collecting corrector training tuples from a trained agent (the library behind
`python -m tdmpc2_jax.speculative.collect`): naive speculative rollouts, or in a DAgger round the
rollouts of the corrected controller, labelled by the teacher."""
from __future__ import annotations

import os
from typing import Callable, NamedTuple

import jax

from tdmpc2_jax.environments import make_env
from tdmpc2_jax.loading import load_for_task
from tdmpc2_jax.run_record import Run
from tdmpc2_jax.speculative import dataset, fitting
from tdmpc2_jax.speculative.backend import Episodes
from tdmpc2_jax.speculative.controller import SpecSettings, Speculator
from tdmpc2_jax.world_model import WorldModel


class Options(NamedTuple):
    checkpoint: str  # the trained agent
    k: int  # execution horizon K
    size: int  # host: episodes; MJX: batched steps
    out: str  # the .npz the tuples go to
    history: int = 1  # steps of history per tuple
    corrector: str | None = None  # roll out with this corrector (a DAgger round)
    append: bool = False  # add to the tuples already in `out`
    seed: int = 0  # rollout seed
    envs: int = 1  # MJX: environments rolled out at once


def collect(run: Run, options: Options, episodes: Episodes, say: Callable[[str], None]) -> dataset.Dataset:
    """Rolls out, labels and writes the tuples to `options.out` (with those already there when
    appending); returns the new tuples. Host environments take the run's training-side seed plus
    `options.seed`, apart from every evaluation's."""
    if run.obs != "state":
        raise ValueError("speculative execution runs on state observations (obs=state)")
    env = make_env(run, run.seed + options.seed)
    agent_cfg, params = load_for_task(options.checkpoint, run, env.obs_dim, env.action_dim)
    corrector, corrector_params, round_ = None, None, 0
    if options.corrector:
        corrector, corrector_params, corrector_meta = fitting.load(options.corrector, run.task, agent_cfg.latent_dim,
                                                                   options.k)
        round_ = int(corrector_meta.get("dagger_round", 0)) + 1
    speculator = Speculator(WorldModel(agent_cfg), SpecSettings(horizon_k=options.k, corrector=corrector is not None),
                            corrector=corrector, history=options.history)
    meta = dict(task=run.task, K=options.k, history=speculator.history, checkpoint=os.path.abspath(options.checkpoint),
                seed=options.seed, latent_dim=agent_cfg.latent_dim, action_dim=agent_cfg.action_dim,
                dagger_round=round_)
    parts = []
    if options.append and os.path.exists(options.out):
        previous, old_meta = dataset.load(options.out)
        differs = [k for k in ("task", "K", "history", "latent_dim") if old_meta.get(k) != meta[k]]
        if differs:
            raise ValueError(f"{options.out} holds tuples for another {', '.join(differs)}: "
                             f"{ {k: old_meta.get(k) for k in differs} }")
        parts.append(previous)
        meta["dagger_round"] = max(round_, int(old_meta.get("dagger_round", 0)))
    size = f"{options.envs} envs x {options.size} steps" if run.backend == "mjx" else f"{options.size} host episodes"
    say(f"collecting: {run.task}, K={options.k}, {size}, {'corrected' if corrector else 'naive'} rollouts "
        f"(DAgger round {round_}) ...")
    new = episodes.label(env, speculator, params, corrector_params, jax.random.key(options.seed), options.size)
    tuples = dataset.concatenate(parts + [new]) if parts else new
    dataset.save(options.out, tuples, meta)
    say(f"wrote {options.out}: {new.label.shape[0]:,} new tuples, {tuples.label.shape[0]:,} in all")
    return new
