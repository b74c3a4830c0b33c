#!/usr/bin/env bash
# This project against the JAX peer on an accelerator machine, plan and update at 1M, 5M and 19M, in
# alternating rounds (benchmarks/versus_official.py with ours, peer and peer_wide). The official
# PyTorch code is not timed there: the device image has no torch, and a CUDA build of torch is far
# larger than what can be carried to it. Needs the wheels of `bash benchmarks/device_wheels.sh .whl
# 3.12 PEER_CHECKOUT` (the peer's in .whl/peer, installed apart from this project's).
#
#   bash benchmarks/device_versus.sh [--sizes=1,5,19] [--rounds=3] [--calls=3]
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(command -v "${PYTHON:-python3}")"
out="${OUT:-device_check_out}"
wheels="${WHEELS:-.whl}"
test -d "$wheels/peer" || { echo "no $wheels/peer: make it with bash benchmarks/device_wheels.sh $wheels 3.12 PEER_CHECKOUT" >&2; exit 2; }
mkdir -p "$out"
"$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$wheels"/*.whl
"$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/peer_site \
    "$wheels"/peer/*.whl
export PYTHONPATH="/tmp/site" PYTHONUNBUFFERED=1
"$python" -m benchmarks.versus_official --implementations=ours,peer,peer_wide --peer_python="$python" \
    --peer_path=/tmp/peer_site --peer_commit="$(cat "$wheels/peer/COMMIT")" --sizes=1,5,19 --multitask_sizes= --rounds=3 --calls=3 --out="$out/versus_device.json" \
    "$@" 2>&1 | tee "$out/versus_log.txt"
