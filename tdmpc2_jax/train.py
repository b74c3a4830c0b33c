"""Train TD-MPC2 on a DMControl task, on host MuJoCo or on batched MJX environments.

    python -m tdmpc2_jax.train --config=configs/dmc.py:dog-run [--config.key=value ...]
    python -m tdmpc2_jax.train --config=configs/mjx.py:walker-walk --config.num_envs=64
    python -m tdmpc2_jax.train --config=configs/dmc.py:mt30 --config.data_dir=DIR    (offline, multitask)
    python -m tdmpc2_jax.train --config=configs/dmc.py --config.tasks=walker-walk,cheetah-run   (online, multitask)

Writes eval.csv, train.csv, TensorBoard scalars and orbax checkpoints under work_dir
(default runs/<task or set>/<seed>/<exp_name>); `--config.resume=True` continues a killed run.
"""
from __future__ import annotations

import sys

from absl import app, flags

from tdmpc2_jax import process_guard
from tdmpc2_jax.cli import define_config_flags, error_edge, input_errors, parse_flags, print_run_config, start_command

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    define_config_flags("config file, e.g. configs/dmc.py:cheetah-run")


def main(argv: list[str]) -> None:
    del argv
    config = start_command()
    from tdmpc2_jax.run_record import resolve

    run = None
    with error_edge(lambda: run and run.work_dir, usage_errors=input_errors()):
        run = resolve(config)
        if config.get("distributed") and not process_guard.is_child():
            sys.exit(process_guard.watch(run.work_dir, config.process_id, config.num_processes))
        print_run_config(run.config)
        result = train(run, config)
    if result:
        at = (f"{result['agent_step']:,} agent steps" if "agent_step" in result
              else f"{result['update']:,} updates" if "update" in result
              else f"{result['transitions']:,} transitions")
        print(f"last eval (at {at}): return {result['episode_reward']:.1f} (std {result['episode_reward_std']:.1f}, "
              f"min {result['episode_reward_min']:.1f}) over {len(result['returns'])} episodes")


def train(run, config) -> dict:
    """Runs the loop of the run's backend; returns its last evaluation. `config` supplies only the
    several-host settings that start JAX's distributed runtime (a side effect of this command)."""
    if run.backend == "offline":
        from tdmpc2_jax.loops import offline

        return offline.train(run)
    if run.backend == "host":
        from tdmpc2_jax.loops import host

        return host.train(run)
    if config.distributed:
        from tdmpc2_jax.sharding import initialize_distributed

        process_guard.die_with_parent()
        initialize_distributed(config.coordinator_address, config.num_processes, config.process_id)
    from tdmpc2_jax.loops import mjx_run

    return mjx_run.train(run)[0]


def run() -> None:
    """The `tdmpc2-train` console script, and `python -m tdmpc2_jax.train`."""
    define_flags()
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
