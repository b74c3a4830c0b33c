"""Train TD-MPC2 on a DMControl task on host MuJoCo.

    python -m tdmpc2_jax.train --config=configs/dmc.py:dog-run [--config.key=value ...]

Writes eval.csv, train.csv, TensorBoard scalars and orbax checkpoints under work_dir
(default runs/<task>/<seed>/<exp_name>); `--config.resume=True` continues a killed run.
"""
from __future__ import annotations

from absl import app
from ml_collections import config_flags

from tdmpc2_jax.cli import fail, parse_flags, quiet_libraries

_CONFIG = config_flags.DEFINE_config_file("config", None, "config file, e.g. configs/dmc.py:cheetah-run",
                                          lock_config=True)


def main(argv: list[str]) -> None:
    del argv
    config = _CONFIG.value
    if config is None:
        fail("--config is required, e.g. --config=configs/dmc.py:cartpole-balance")
    quiet_libraries()
    from tdmpc2_jax.envs.dmc import resolve
    from tdmpc2_jax.loops import host

    try:
        resolve(config.task)
        result = host.train(config)
    except host.NonFiniteLoss as err:
        fail(str(err), code=1)
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))
    if result:
        print(f"final eval: return {result['episode_reward']:.1f} (std {result['episode_reward_std']:.1f}, "
              f"min {result['episode_reward_min']:.1f}) over {len(result['returns'])} episodes")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
