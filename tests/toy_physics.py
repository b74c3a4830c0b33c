"""A command line (`python -m MODULE`) with every MJX task's physics replaced by toy_env's point mass
(cartpole's observation and action sizes), for tests of what a command does around the physics
(processes, devices, checkpoints, the speculative workflow) that would otherwise spend their
minutes compiling MJX.

    python tests/toy_physics.py tdmpc2_jax.train --config=configs/mjx.py:cartpole-balance [--config.key=value ...]
"""
import importlib
import sys

from absl import app

from tdmpc2_jax.cli import parse_flags
from tdmpc2_jax.envs.mjx import MJXEnv

from toy_env import point_mass_physics

if __name__ == "__main__":
    MJXEnv.__init__ = point_mass_physics(MJXEnv.__init__)
    command = importlib.import_module(sys.argv.pop(1))
    command.define_flags()
    app.run(command.main, flags_parser=parse_flags)
