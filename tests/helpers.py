"""Helpers shared by the end-to-end tests."""
import csv
import signal
import subprocess
import sys
import time

import tiny
from tiny import ROOT

# planner flags that keep a command line's compiled programs small
SMALL = tiny.flags(tiny.PLANNER, episode_length=10)


def rows(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def speculative_cli(module: str, *args: str, toy_physics: bool = False) -> subprocess.CompletedProcess:
    """python -m tdmpc2_jax.speculative.<module> ARGS from the repository root; with `toy_physics`, MJX
    tasks step toy_env's point mass (toy_physics.py)."""
    command = [str(ROOT / "tests" / "toy_physics.py")] if toy_physics else ["-m"]
    return subprocess.run([sys.executable, *command, f"tdmpc2_jax.speculative.{module}", *args], capture_output=True,
                          text=True, timeout=900, cwd=ROOT)


def tiny_agent(directory) -> str:
    """An untrained tiny agent for cartpole (obs 5, action 1) saved as a model checkpoint in `directory`."""
    import jax

    from tdmpc2_jax import checkpoints
    from tdmpc2_jax.agent import Agent

    cfg = tiny.agent_config()
    state = Agent(cfg).init(jax.random.key(0))
    checkpoints.save(str(directory), 1, {"params": state.params, "target_qs": state.target_qs}, cfg)
    return str(directory)


def kill_9_once(command: list[str], written, env=None, timeout_s: float = 600) -> None:
    """Starts `command` and kills it with SIGKILL as soon as the path `written` exists (or it ends)."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout_s
    while not written.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
