"""Helpers shared by the end-to-end tests."""
import csv
import importlib.util
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
# planner flags that keep a command line's compiled programs small
SMALL = ["--config.episode_length=10", "--config.num_samples=16", "--config.num_elites=4", "--config.num_pi_trajs=2",
         "--config.iterations=2"]


def load_config(config_file: str, task: str):
    """get_config(task) of configs/<config_file>, as the command lines load it."""
    spec = importlib.util.spec_from_file_location(config_file.removesuffix(".py") + "_config",
                                                  ROOT / "configs" / config_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(task)


def rows(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def speculative_cli(module: str, *args: str) -> subprocess.CompletedProcess:
    """python -m tdmpc2_jax.speculative.<module> ARGS from the repository root."""
    return subprocess.run([sys.executable, "-m", f"tdmpc2_jax.speculative.{module}", *args], capture_output=True,
                          text=True, timeout=900, cwd=ROOT)


def tiny_agent(directory) -> str:
    """An untrained tiny agent for cartpole (obs 5, action 1) saved as a model checkpoint in `directory`."""
    import jax

    from tdmpc2_jax import checkpoints
    from tdmpc2_jax.agent import Agent
    from tdmpc2_jax.config import make_config

    cfg = make_config(dict(obs_dim=5, action_dim=1, enc_dim=16, mlp_dim=16, latent_dim=16, num_q=2))
    state = Agent(cfg).init(jax.random.key(0))
    checkpoints.save(str(directory), 1, {"params": state.params, "target_qs": state.target_qs}, cfg)
    return str(directory)
