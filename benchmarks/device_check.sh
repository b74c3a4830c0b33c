#!/usr/bin/env bash
# The device check in one command, on an accelerator machine: installs the wheels carried in .whl
# (benchmarks/device_wheels.sh makes them) and writes benchmarks/device_check.py's figures to $OUT.
#
#   bash benchmarks/device_check.sh [--budget_s=510] [--smoke]
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
out="${OUT:-device_check_out}"
mkdir -p "$out"
"$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "${WHEELS:-.whl}"/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 MUJOCO_GL=egl
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv > "$out/gpu.csv" 2>/dev/null || true
"$python" -m benchmarks.device_check --out="$out" "$@" 2>&1 | tee "$out/log.txt"
