"""Train TD-MPC2 on a DMControl task, on host MuJoCo or on batched MJX environments.

    python -m tdmpc2_jax.train --config=configs/dmc.py:dog-run [--config.key=value ...]
    python -m tdmpc2_jax.train --config=configs/mjx.py:walker-walk --config.num_envs=64
    python -m tdmpc2_jax.train --config=configs/dmc.py:mt30 --config.data_dir=DIR    (offline, multitask)
    python -m tdmpc2_jax.train --config=configs/dmc.py --config.tasks=walker-walk,cheetah-run   (online, multitask)

Writes eval.csv, train.csv, TensorBoard scalars and orbax checkpoints under work_dir
(default runs/<task or set>/<seed>/<exp_name>); `--config.resume=True` continues a killed run.
"""
from __future__ import annotations

from absl import app, flags

from tdmpc2_jax.cli import define_config_flags, fail, parse_flags, start_command

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    define_config_flags("config file, e.g. configs/dmc.py:cheetah-run")


def main(argv: list[str]) -> None:
    del argv
    config = start_command()
    from tdmpc2_jax.envs.maniskill import ManiSkillUnavailable
    from tdmpc2_jax.envs.pixels import RendererUnavailable
    from tdmpc2_jax.loops.run import NonFiniteLoss

    try:
        result = _train(config)
    except NonFiniteLoss as err:
        fail(str(err), code=1)
    except (ValueError, FileNotFoundError, ImportError, RendererUnavailable, ManiSkillUnavailable) as err:
        fail(str(err))
    if result:
        at = (f"{result['agent_step']:,} agent steps" if "agent_step" in result
              else f"{result['update']:,} updates" if "update" in result
              else f"{result['transitions']:,} transitions")
        print(f"last eval (at {at}): return {result['episode_reward']:.1f} (std {result['episode_reward_std']:.1f}, "
              f"min {result['episode_reward_min']:.1f}) over {len(result['returns'])} episodes")


def _train(config):
    from tdmpc2_jax.envs.task_sets import task_set_of
    from tdmpc2_jax.loops import host

    if config.backend == "dmc":
        from tdmpc2_jax.envs.registry import check_task

        task_set = task_set_of(config)
        for task in task_set.tasks if task_set else [config.task]:
            check_task(task)
        if config.data_dir:
            from tdmpc2_jax.loops import offline

            return offline.train(config)
        return host.train(config)
    if config.backend == "mjx" and "num_envs" in config:
        if config.distributed:
            from tdmpc2_jax.sharding import initialize_distributed

            initialize_distributed(config.coordinator_address, config.num_processes, config.process_id)
        from tdmpc2_jax.envs.mjx import playground_name
        from tdmpc2_jax.loops import mjx_run

        task_set = task_set_of(config)
        for task in task_set.tasks if task_set else [config.task]:
            playground_name(task, config.impl)
        return mjx_run.train(config)[0]
    raise ValueError(f"backend={config.backend!r}: use --config=configs/dmc.py:TASK (host MuJoCo) or "
                     "--config=configs/mjx.py:TASK (MJX)")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)


def run() -> None:
    """The `tdmpc2-train` console script: the command line above."""
    define_flags()
    app.run(main, flags_parser=parse_flags)
