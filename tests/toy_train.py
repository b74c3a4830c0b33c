"""`python -m tdmpc2_jax.train` with every MJX task's physics replaced by toy_env's point mass
(cartpole's observation and action sizes), for tests of what the run does around the physics
(processes, devices, checkpoints) that would otherwise spend their minutes compiling MJX.

    python tests/toy_train.py --config=configs/mjx.py:cartpole-balance [--config.key=value ...]
"""
from absl import app

from tdmpc2_jax import train
from tdmpc2_jax.cli import parse_flags
from tdmpc2_jax.envs.mjx import MJXEnv

from toy_env import point_mass_physics

if __name__ == "__main__":
    MJXEnv.__init__ = point_mass_physics(MJXEnv.__init__)
    train.define_flags()
    app.run(train.main, flags_parser=parse_flags)
