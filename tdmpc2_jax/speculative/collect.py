"""Collect corrector training tuples from speculative rollouts of a trained agent, on MJX or on
host MuJoCo (tasks that have no MJX version, such as humanoid or dog).

    python -m tdmpc2_jax.speculative.collect --config=configs/mjx.py:cartpole-balance \
        --checkpoint runs/.../checkpoints --k 4 --envs 16 --steps 1000 --out data/cartpole-k4.npz \
        [--history 4] [--corrector corrector_dir (a DAgger round: roll out the corrected controller)]
    python -m tdmpc2_jax.speculative.collect --config=configs/dmc.py:humanoid-walk \
        --checkpoint runs/.../checkpoints --k 4 --episodes 8 --out data/humanoid-k4.npz

Every reuse step (k = 1..K-1) gives one tuple, labelled with the teacher's MPPI mean action at the
visited state. The file records the task, K, history, agent checkpoint, seed and DAgger round;
`--append` adds a round to an existing file (same task, K and history).
"""
from __future__ import annotations

import os

from absl import app, flags

from tdmpc2_jax.cli import define_config_flags, episode_progress, fail, parse_flags, start_command, step_progress

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    define_config_flags("configs/mjx.py:TASK (batched MJX rollouts) or configs/dmc.py:TASK (host episodes)",
                                  "the trained agent (orbax checkpoint directory or official .pt)")
    flags.DEFINE_integer("k", 4, "execution horizon K")
    flags.DEFINE_integer("envs", 16, "MJX: environments rolled out at once")
    flags.DEFINE_integer("steps", 1000, "MJX: batched steps (episodes of episode_length steps follow each other)")
    flags.DEFINE_integer("episodes", 4, "host: episodes, one after another")
    flags.DEFINE_integer("history", 1, "steps of history per tuple (1 for the MLP corrector)")
    flags.DEFINE_string("corrector", None, "roll out with this corrector (DAgger round)")
    flags.DEFINE_string("out", None, "output .npz")
    flags.DEFINE_bool("append", False, "add the tuples to an existing --out file")
    flags.DEFINE_integer("seed", 0, "rollout seed")


def main(argv: list[str]) -> None:
    del argv
    config = start_command("checkpoint", "out")
    import jax

    from tdmpc2_jax.loading import load_for_task
    from tdmpc2_jax.speculative import dataset, fitting
    from tdmpc2_jax.speculative.controller import SpecSettings, Speculator
    from tdmpc2_jax.world_model import WorldModel

    mjx = config.get("backend") == "mjx"
    try:
        if config.obs != "state":
            raise ValueError("speculative execution runs on state observations (obs=state)")
        if mjx:
            from tdmpc2_jax.envs.mjx import MJXEnv

            env = MJXEnv(config.task, impl=config.impl, episode_length=config.episode_length)
        else:
            from tdmpc2_jax.envs.registry import make_host_env

            env = make_host_env(config.task, config.seed + FLAGS.seed, config.episode_length)
        agent_cfg, params = load_for_task(FLAGS.checkpoint, config, env.obs_dim, env.action_dim)
        corrector, corrector_params, round_ = None, None, 0
        if FLAGS.corrector:
            corrector, corrector_params, corrector_meta = fitting.load(FLAGS.corrector, config.task,
                                                                        agent_cfg.latent_dim, FLAGS.k)
            round_ = int(corrector_meta.get("dagger_round", 0)) + 1
        settings = SpecSettings(horizon_k=FLAGS.k, corrector=corrector is not None)
        speculator = Speculator(WorldModel(agent_cfg), settings, corrector=corrector, history=FLAGS.history)
        meta = dict(task=config.task, K=FLAGS.k, history=speculator.history, checkpoint=os.path.abspath(FLAGS.checkpoint),
                    seed=FLAGS.seed, latent_dim=agent_cfg.latent_dim, action_dim=agent_cfg.action_dim,
                    dagger_round=round_)
        parts = []
        if FLAGS.append and os.path.exists(FLAGS.out):
            previous, old_meta = dataset.load(FLAGS.out)
            differs = [k for k in ("task", "K", "history", "latent_dim") if old_meta.get(k) != meta[k]]
            if differs:
                raise ValueError(f"{FLAGS.out} holds tuples for another {', '.join(differs)}: "
                                 f"{ {k: old_meta.get(k) for k in differs} }")
            parts.append(previous)
            meta["dagger_round"] = max(round_, int(old_meta.get("dagger_round", 0)))
    except (ValueError, FileNotFoundError, ImportError) as err:
        fail(str(err))
    size = f"{FLAGS.envs} envs x {FLAGS.steps} steps" if mjx else f"{FLAGS.episodes} host episodes"
    print(f"collecting: {config.task}, K={FLAGS.k}, {size}, "
          f"{'corrected' if corrector else 'naive'} rollouts (DAgger round {round_}) ...", flush=True)
    key = jax.random.key(FLAGS.seed)
    if mjx:
        new = dataset.label_rollouts(env, speculator, params, corrector_params, key, FLAGS.envs, FLAGS.steps,
                                     step_progress(FLAGS.steps))
    else:
        new = dataset.label_host(env, speculator, params, corrector_params, key, FLAGS.episodes,
                                 episode_progress(FLAGS.episodes))
    tuples = dataset.concatenate(parts + [new]) if parts else new
    dataset.save(FLAGS.out, tuples, meta)
    print(f"wrote {FLAGS.out}: {new.label.shape[0]:,} new tuples, {tuples.label.shape[0]:,} in all")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
