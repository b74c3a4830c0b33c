"""Evaluate a checkpoint on a DMControl task, on host MuJoCo or on MJX.

    python -m tdmpc2_jax.evaluate --config=configs/dmc.py:TASK --checkpoint PATH --episodes N [--video out.mp4]
    python -m tdmpc2_jax.evaluate --config=configs/mjx.py:TASK --checkpoint PATH --episodes N

PATH is an orbax checkpoint directory of this project (a run's `checkpoints/` folder or a converted
model) or an official `.pt` file (converted on the fly; needs the `torch` extra). The architecture
comes from the checkpoint; planning settings (horizon, samples, ...) from the config. Host and MJX
tasks share observation layouts, so a model trained on one backend evaluates on the other. On MJX
the episodes run at once, in one compiled program.
"""
from __future__ import annotations


from absl import app, flags

from tdmpc2_jax.cli import define_config_flags, fail, parse_flags, start_command
from tdmpc2_jax.loading import load_for_task

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    define_config_flags("config file, e.g. configs/dmc.py:cheetah-run",
                                  "orbax checkpoint directory or official .pt file")
    flags.DEFINE_integer("episodes", 10, "number of evaluation episodes")
    flags.DEFINE_string("video", None, "write the first episode to this .mp4")
    flags.DEFINE_integer("seed", None, "evaluation seed (default: the config's seed)")

def main(argv: list[str]) -> None:
    del argv
    config = start_command("checkpoint")
    seed = config.seed if FLAGS.seed is None else FLAGS.seed
    if config.backend == "mjx":
        if FLAGS.video:
            fail("--video renders on host MuJoCo: use --config=configs/dmc.py:" + config.task)
        returns, lengths = _evaluate_mjx(config, seed)
    else:
        returns, lengths, frames = _evaluate_host(config, seed)
    print(f"{config.task}: {FLAGS.episodes} episodes, return mean {returns.mean():.1f}, std {returns.std():.1f}, "
          f"min {returns.min():.1f}; episode lengths {sorted(set(lengths))}")
    if FLAGS.video:
        import imageio

        imageio.mimsave(FLAGS.video, frames, fps=30)
        print(f"wrote {FLAGS.video} ({len(frames)} frames)")


def _evaluate_host(config, seed: int):
    import jax
    import numpy as np

    from tdmpc2_jax.agent import Agent
    from tdmpc2_jax.envs.dmc import DMCEnv
    from tdmpc2_jax.loops.host import Planners, evaluate
    from tdmpc2_jax.loops.run import eval_seed

    try:
        env = DMCEnv(config.task, eval_seed(seed), episode_length=config.episode_length)
        agent_cfg, params = load_for_task(FLAGS.checkpoint, config, env.obs_dim, env.action_dim)
    except (ValueError, FileNotFoundError, ImportError) as err:
        fail(str(err))
    frames: list[np.ndarray] = []
    result = evaluate(env, Planners(Agent(agent_cfg)), params, jax.random.key(seed), FLAGS.episodes,
                      on_frame=frames.append if FLAGS.video else None)
    return np.asarray(result["returns"]), [int(n) for n in result["lengths"]], frames


def _evaluate_mjx(config, seed: int):
    import jax
    import numpy as np

    from tdmpc2_jax import xla
    from tdmpc2_jax.agent import Agent
    from tdmpc2_jax.envs.mjx import MJXEnv
    from tdmpc2_jax.loops.device import DeviceLoop
    from tdmpc2_jax.loops.run import eval_seed

    try:
        env = MJXEnv(config.task, impl=config.impl, episode_length=config.episode_length)
        agent_cfg, params = load_for_task(FLAGS.checkpoint, config, env.obs_dim, env.action_dim)
    except (ValueError, FileNotFoundError, ImportError) as err:
        fail(str(err))
    loop = DeviceLoop(Agent(agent_cfg), env, num_envs=FLAGS.episodes, seed_steps=0)
    result = xla.jit(loop.evaluate, static_argnums=2)(params, jax.random.key(eval_seed(seed)), FLAGS.episodes)
    return np.asarray(result.returns), [int(n) for n in np.asarray(result.lengths)]


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
