#!/usr/bin/env bash
# A Python environment for the JAX reimplementation of TD-MPC2 that benchmarks/versus_official.py
# times beside this project: github.com/ShaneFlandermeyer/tdmpc2-jax. Its package is also named
# `tdmpc2_jax`, so it lives in its own environment and is never importable from this project's.
#
#   bash benchmarks/peer_env.sh CHECKOUT [VENV]      (default VENV: .venv-peer)
#
# CHECKOUT is a clone of that repository (the benchmark records its commit). jax, jaxlib, flax,
# optax and numpy are pinned to constraints.txt, the versions this project is timed with, so that
# the two programs are compiled by the same XLA. The package is installed without its declared
# dependencies: gymnasium[mujoco]==1.0.0 serves its training script and environments only, which the
# benchmark does not import (it builds TDMPC2 and WorldModel and calls plan and update).
set -euo pipefail
checkout="${1:?usage: bash benchmarks/peer_env.sh CHECKOUT [VENV]}"
venv="${2:-.venv-peer}"
here="$(cd "$(dirname "$0")/.." && pwd)"
test -f "$checkout/tdmpc2_jax/tdmpc2.py" || { echo "$checkout is not a clone of ShaneFlandermeyer/tdmpc2-jax" >&2; exit 2; }
pin() { grep -E "^$1==" "$here/constraints.txt"; }
python3.11 -m venv "$venv"
venv="$(cd "$venv" && pwd)"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q "$(pin jax)" "$(pin jaxlib)" "$(pin flax)" "$(pin optax)" "$(pin numpy)" \
    "$(pin absl-py)" -r "$here/benchmarks/peer_requirements.txt"
"$venv/bin/pip" install -q --no-deps "$checkout"
(cd / && "$venv/bin/python" -c "import jax, tdmpc2_jax; from tdmpc2_jax import TDMPC2, WorldModel; print('peer environment ready:', '$venv', 'jax', jax.__version__, tdmpc2_jax.__file__)")
