"""Importing the library or any command line changes nothing in the process; the command lines set
the process up themselves (cli.setup_process) and name missing flags in one line."""
import subprocess
import sys

from helpers import ROOT

PROGRAM = """
import jax
from absl import flags
async_dispatch = jax.config.read("jax_cpu_enable_async_dispatch")
import tdmpc2_jax, tdmpc2_jax.train, tdmpc2_jax.evaluate, tdmpc2_jax.loops.host, tdmpc2_jax.loops.mjx_run
import tdmpc2_jax.speculative.evaluate, tdmpc2_jax.speculative.collect, tdmpc2_jax.speculative.train_corrector
import tdmpc2_jax.sweep
assert jax.config.read("jax_cpu_enable_async_dispatch") == async_dispatch
assert [name for name in ("config", "checkpoint", "episodes", "out", "data") if name in flags.FLAGS] == []
from tdmpc2_jax.cli import setup_process
setup_process()
print(async_dispatch, jax.config.read("jax_cpu_enable_async_dispatch"))
"""


def test_imports_define_no_flags_and_leave_jax_alone_until_a_command_line_sets_up():
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "False"]  # JAX's default, then the command lines' setting


def test_missing_required_flags_are_named_in_one_line():
    def run(module, *args):
        return subprocess.run([sys.executable, "-m", f"tdmpc2_jax.{module}", *args], capture_output=True, text=True,
                              cwd=ROOT, timeout=300)

    out = run("train")
    assert out.returncode == 2
    assert out.stderr == "error: --config is required, e.g. --config=configs/dmc.py:cartpole-balance\n"
    out = run("speculative.evaluate", "--config=configs/mjx.py:cartpole-balance")
    assert out.returncode == 2 and out.stderr == "error: --checkpoint and --out are required\n"
