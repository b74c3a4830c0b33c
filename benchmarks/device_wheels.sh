#!/usr/bin/env bash
# Downloads the wheels that benchmarks/device_check.sh installs on an accelerator machine whose
# Python (3.12 by default) has jax, flax, optax, chex and orbax but no MuJoCo stack: MuJoCo, MJX,
# Playground (its warp dependency left out: the check uses impl=jax), brax, ml_collections, and
# what they import that the image lacks (trimesh, jaxopt), each at its version in constraints.txt.
#
#   bash benchmarks/device_wheels.sh [DIR] [PYTHON_VERSION] [PEER_CHECKOUT]      (default: .whl 3.12)
#
# With PEER_CHECKOUT (a clone of github.com/ShaneFlandermeyer/tdmpc2-jax), also DIR/peer: that
# package's wheel and what it imports beyond the image's JAX (benchmarks/peer_requirements.txt),
# for benchmarks/device_versus.sh. Kept apart: its package is also named tdmpc2_jax.
set -euo pipefail
dir="${1:-.whl}"
version="${2:-3.12}"
constraints="$(dirname "$0")/../constraints.txt"
packages=(mujoco mujoco-mjx playground brax ml_collections trimesh jaxopt)
# name==version of each package as constraints.txt pins it (names compared as pip does: case and -_. alike)
mapfile -t pins < <(python3 - "$constraints" "${packages[@]}" <<'PY'
import re, sys
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
pins = {norm(line.split("==")[0]): line.strip() for line in open(sys.argv[1]) if "==" in line and not line.startswith("#")}
missing = [name for name in sys.argv[2:] if norm(name) not in pins]
if missing:
    sys.exit(f"constraints.txt pins no version of {', '.join(missing)}")
print("\n".join(pins[norm(name)] for name in sys.argv[2:]))
PY
)
[ "${#pins[@]}" -eq "${#packages[@]}" ] || exit 1
mkdir -p "$dir"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$version" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dir" "${pins[@]}"
if [ -n "${3:-}" ]; then
    test -f "$3/tdmpc2_jax/tdmpc2.py" || { echo "$3 is not a clone of ShaneFlandermeyer/tdmpc2-jax" >&2; exit 2; }
    mkdir -p "$dir/peer"
    python3 -m pip wheel -q --no-deps -w "$dir/peer" "$3"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$version" --implementation cp \
        -d "$dir/peer" -r "$(dirname "$0")/peer_requirements.txt"
    git -C "$3" rev-parse HEAD > "$dir/peer/COMMIT"
fi
du -sh "$dir"
