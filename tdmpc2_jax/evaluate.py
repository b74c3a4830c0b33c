"""Evaluate a checkpoint on a DMControl task or on every task of a task set, on host MuJoCo or on MJX.

    python -m tdmpc2_jax.evaluate --config=configs/dmc.py:TASK --checkpoint PATH --episodes N [--video out.mp4]
    python -m tdmpc2_jax.evaluate --config=configs/mjx.py:TASK --checkpoint PATH --episodes N [--video out.mp4]
    python -m tdmpc2_jax.evaluate --config=configs/dmc.py:mt30 --checkpoint mt30-48M.pt [--tasks a,b] [--csv F]

PATH is an orbax checkpoint directory of this project (a run's `checkpoints/` folder or a converted
model) or an official `.pt` file (converted on the fly; needs the `torch` extra). The architecture
comes from the checkpoint; planning settings (horizon, samples, ...) from the config. Host and MJX
tasks share observation layouts, so a model trained on one backend evaluates on the other. On MJX
the episodes run at once, in one compiled program, and the video is drawn on host MuJoCo from the
first episode's physics states.

A multitask checkpoint runs every task of its set (`mt30`, `mt80`, or `--config.tasks=a,b,...` in
embedding order), or those of `--tasks`, one line per task and their mean, and writes the rows to a
CSV. A single task name (`configs/dmc.py:walker-walk`) runs that task of a multitask checkpoint
whose set is known (it names its tasks, or has as many as mt30 or mt80).
"""
from __future__ import annotations


from absl import app, flags

from tdmpc2_jax.cli import define_config_flags, fail, parse_flags, start_command, step_progress
from tdmpc2_jax.loading import for_task

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    define_config_flags("config file, e.g. configs/dmc.py:cheetah-run",
                                  "orbax checkpoint directory or official .pt file")
    flags.DEFINE_integer("episodes", 10, "number of evaluation episodes")
    flags.DEFINE_string("video", None, "write the first episode to this .mp4")
    flags.DEFINE_integer("seed", None, "evaluation seed (default: the config's seed)")
    flags.DEFINE_string("tasks", None, "multitask: comma-separated tasks of the set to evaluate (default: all)")
    flags.DEFINE_string("csv", None, "multitask: per-task results CSV (default: evaluation-<set>.csv)")


def main(argv: list[str]) -> None:
    del argv
    config = start_command("checkpoint")
    seed = config.seed if FLAGS.seed is None else FLAGS.seed
    from tdmpc2_jax.envs.task_sets import task_set_of
    from tdmpc2_jax.loading import read_checkpoint

    try:
        task_set = task_set_of(config)
        checkpoint = read_checkpoint(FLAGS.checkpoint)
    except (ValueError, FileNotFoundError, ImportError) as err:
        fail(str(err))
    if task_set is not None or checkpoint[0].multitask:
        return _evaluate_set(config, checkpoint, task_set, seed)
    if FLAGS.tasks:
        fail("--tasks selects tasks of a task set: give one, e.g. --config=configs/dmc.py:mt30")
    if config.backend == "mjx":
        if config.obs == "rgb":
            fail("obs=rgb evaluates on host MuJoCo: use --config=configs/dmc.py:" + config.task)
        returns, lengths, frames = _evaluate_mjx(config, checkpoint, seed)
        success = None
    else:
        returns, lengths, success, frames = _evaluate_host(config, checkpoint, seed)
    print(f"{config.task}: {FLAGS.episodes} episodes, return mean {returns.mean():.1f}, std {returns.std():.1f}, "
          f"min {returns.min():.1f}; episode lengths {sorted(set(lengths))}"
          + ("" if success is None else f"; success {success:.2f}"))
    if FLAGS.video:
        import imageio

        imageio.mimsave(FLAGS.video, frames, fps=30)
        print(f"wrote {FLAGS.video} ({len(frames)} frames)")


def _evaluate_set(config, checkpoint, task_set, seed: int) -> None:
    """Every selected task of a multitask checkpoint on host MuJoCo: a line each, the mean, a CSV."""
    import csv

    import jax
    import numpy as np

    from tdmpc2_jax.agent import Agent
    from tdmpc2_jax.config import close_matches
    from tdmpc2_jax.envs.multitask import PaddedEnv
    from tdmpc2_jax.envs.registry import make_host_env
    from tdmpc2_jax.loading import for_set
    from tdmpc2_jax.loops.host import Planners, evaluate
    from tdmpc2_jax.loops.run import eval_seed, set_episode_length

    if config.backend != "dmc":
        fail("multitask evaluation runs on host MuJoCo: use --config=configs/dmc.py:" + config.task)
    if config.obs != "state":
        fail("multitask agents take state observations (the official code has no multitask pixel agent)")
    try:
        model = for_set(FLAGS.checkpoint, checkpoint, config, task_set)
    except ValueError as err:
        fail(str(err))
    tasks = model.task_set.tasks
    selected = FLAGS.tasks.split(",") if FLAGS.tasks else list(tasks) if task_set else [config.task]
    unknown = [t for t in selected if t not in tasks]
    if unknown:
        fail(f"{', '.join(unknown)} not in the checkpoint's task set {model.task_set.name}"
             f"{close_matches(unknown[0], tasks)}")
    if FLAGS.video and len(selected) != 1:
        fail("--video records one task: select it with --tasks TASK")
    cfg, planners, key = model.agent_cfg, Planners(Agent(model.agent_cfg)), jax.random.key(seed)
    rows, frames = [], []
    for task in selected:
        index = tasks.index(task)
        row = dict(task=task, index=index, episodes=0, return_mean="", return_std="", success="", note="")
        try:
            env = make_host_env(task, eval_seed(seed) + index, set_episode_length(config))
            env = PaddedEnv(env, cfg.obs_dim, cfg.action_dim)
            if env.inner.action_dim > cfg.action_dims[index]:
                raise ValueError(f"{task} has {env.inner.action_dim} actions, the checkpoint's task {index} "
                                 f"{cfg.action_dims[index]}")
        except ValueError as err:
            print(f"{task:<26} not evaluated: {err}")
            rows.append({**row, "note": str(err)})
            continue
        stats = evaluate(env, planners, model.params, jax.random.fold_in(key, index), FLAGS.episodes,
                         on_frame=frames.append if FLAGS.video else None, task=index)
        success = stats.get("episode_success")
        print(f"{task:<26} return {stats['episode_reward']:8.1f} +- {stats['episode_reward_std']:6.1f} "
              f"({FLAGS.episodes} episodes)" + ("" if success is None else f", success {success:.2f}"), flush=True)
        rows.append({**row, "episodes": FLAGS.episodes, "return_mean": stats["episode_reward"],
                     "return_std": stats["episode_reward_std"], "success": "" if success is None else success})
    done = [r["return_mean"] for r in rows if r["episodes"]]
    if done:
        print(f"mean over {len(done)} of {len(selected)} tasks: {np.mean(done):.1f}")
    path = FLAGS.csv or f"evaluation-{model.task_set.name}.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}")
    if FLAGS.video:
        import imageio

        imageio.mimsave(FLAGS.video, frames, fps=30)
        print(f"wrote {FLAGS.video} ({len(frames)} frames)")


def _evaluate_host(config, checkpoint, seed: int):
    import jax
    import numpy as np

    from tdmpc2_jax.agent import Agent
    from tdmpc2_jax.envs.maniskill import ManiSkillUnavailable
    from tdmpc2_jax.envs.pixels import RendererUnavailable, select_renderer
    from tdmpc2_jax.envs.registry import make_host_env
    from tdmpc2_jax.loops.host import Planners, evaluate
    from tdmpc2_jax.loops.run import eval_seed

    try:
        if config.obs == "rgb":
            select_renderer()
        env = make_host_env(config.task, eval_seed(seed), config.episode_length, config.obs)
        agent_cfg, params = for_task(FLAGS.checkpoint, checkpoint, config, env.obs_shape, env.action_dim)
    except (ValueError, FileNotFoundError, ImportError, RendererUnavailable, ManiSkillUnavailable) as err:
        fail(str(err))
    frames: list[np.ndarray] = []
    result = evaluate(env, Planners(Agent(agent_cfg)), params, jax.random.key(seed), FLAGS.episodes,
                      on_frame=frames.append if FLAGS.video else None)
    return np.asarray(result["returns"]), [int(n) for n in result["lengths"]], result.get("episode_success"), frames


def _evaluate_mjx(config, checkpoint, seed: int):
    import jax
    import numpy as np

    from tdmpc2_jax import xla
    from tdmpc2_jax.agent import Agent
    from tdmpc2_jax.envs.mjx import MJXEnv
    from tdmpc2_jax.loops.device import DeviceLoop
    from tdmpc2_jax.loops.run import eval_seed

    try:
        env = MJXEnv(config.task, impl=config.impl, episode_length=config.episode_length)
        agent_cfg, params = for_task(FLAGS.checkpoint, checkpoint, config, env.obs_dim, env.action_dim)
    except (ValueError, FileNotFoundError, ImportError) as err:
        fail(str(err))
    loop = DeviceLoop(Agent(agent_cfg), env, num_envs=FLAGS.episodes, seed_steps=0)
    trace = env.physics if FLAGS.video else None
    progress = step_progress(env.episode_length)  # a line at every tenth of the batched steps
    result = xla.jit(lambda p, k: loop.evaluate(p, k, FLAGS.episodes, trace, progress))(
        params, jax.random.key(eval_seed(seed)))
    lengths = [int(n) for n in np.asarray(result.lengths)]
    # the video: the first episode, drawn on host MuJoCo from its physics states
    frames = env.draw(jax.tree.map(lambda x: np.asarray(x[:lengths[0], 0]), result.trace)) if FLAGS.video else []
    return np.asarray(result.returns), lengths, frames


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)


def run() -> None:
    """The `tdmpc2-evaluate` console script: the command line above."""
    define_flags()
    app.run(main, flags_parser=parse_flags)
