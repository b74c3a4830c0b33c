#!/usr/bin/env bash
# Downloads the wheels that benchmarks/device_check.sh installs on an accelerator machine whose
# Python (3.12 by default) has jax, flax, optax, chex and orbax but no MuJoCo stack: MuJoCo, MJX,
# Playground (its warp dependency left out: the check uses impl=jax), brax, ml_collections, and
# what they import that the image lacks (trimesh, jaxopt).
#
#   bash benchmarks/device_wheels.sh [DIR] [PYTHON_VERSION]      (default: .whl 3.12)
set -euo pipefail
dir="${1:-.whl}"
version="${2:-3.12}"
mkdir -p "$dir"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$version" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dir" \
    "mujoco==3.17.0" "mujoco-mjx==3.17.0" "playground==0.2.0" "brax==0.14.2" "ml_collections==1.1.0" \
    "trimesh==4.12.2" "jaxopt==0.8.5"
du -sh "$dir"
