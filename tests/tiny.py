"""The test suite's one tiny setting: the agent every test builds on and the schedules of the
end-to-end runs (host and MJX), small enough that the whole suite runs in minutes on a 2-core CPU.
A test that needs something else says so by overriding a key where it builds its config."""
from __future__ import annotations

import importlib.util
import pathlib

from ml_collections import ConfigDict

from tdmpc2_jax.config import Config, make_config

ROOT = pathlib.Path(__file__).resolve().parents[1]

# the planner: 16 samples (2 from the policy) x 2 iterations
PLANNER = dict(num_samples=16, num_pi_trajs=2, num_elites=4, iterations=2)
# the agent: 16-wide layers, two Q heads, a 3-step horizon, batches of 8, and the planner above
AGENT = dict(enc_dim=16, mlp_dim=16, latent_dim=16, num_q=2, horizon=3, batch_size=8, **PLANNER)
# a host run: 300 agent steps of 50-step episodes, evaluated twice and checkpointed every 100 steps
HOST_RUN = dict(steps=300, seed_steps=100, episode_length=50, eval_freq=150, eval_episodes=1, checkpoint_every=100,
                progress=False)
# an MJX run: 4 envs x 10-step episodes, 8 seed transitions, chunks of 5 batched steps (20 transitions)
MJX_RUN = dict(num_envs=4, steps=68, seed_steps=8, episode_length=10, eval_freq=40, eval_episodes=2, chunk_steps=5,
               buffer_size=40, checkpoint_every=40, progress=False, tensorboard=False)
RUNS = {"dmc.py": HOST_RUN, "mjx.py": MJX_RUN}


def agent_config(obs_dim: int = 5, action_dim: int = 1, **changes) -> Config:
    """The tiny agent's Config (cartpole's sizes unless given)."""
    return make_config({**AGENT, "obs_dim": obs_dim, "action_dim": action_dim, **changes})


def load_config(config_file: str, task: str) -> ConfigDict:
    """get_config(task) of configs/<config_file>, as the command lines load it."""
    spec = importlib.util.spec_from_file_location(config_file.removesuffix(".py") + "_config",
                                                  ROOT / "tdmpc2_jax" / "configs" / config_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(task)


def run_config(config_file: str, task: str, work_dir, **changes) -> ConfigDict:
    """A tiny run of `task` with configs/<config_file> (dmc.py: host, mjx.py: MJX) writing to `work_dir`."""
    config = load_config(config_file, task)
    config.update({**AGENT, **RUNS[config_file], "work_dir": str(work_dir), **changes})
    return config


def flags(*groups: dict, **changes) -> list[str]:
    """The --config.key=value flags of the given settings (later ones win)."""
    values = {k: v for group in groups for k, v in group.items()}
    values.update(changes)
    return [f"--config.{k}={v}" for k, v in values.items()]
