#!/usr/bin/env bash
# Every speculative-execution protocol behind the docs' tables, one after another, and the host
# speed benchmarks their speed-ups are scaled from: the command that remakes
# experiments/results/speculative from the committed agents (experiments/results/agents).
#   experiments/speculative_all.sh            (from the repository root, the venv's python on PATH)
# Each protocol goes on where it stopped (experiments/speculative.sh: finished steps are skipped, and
# the evaluation runs the modes missing from results.csv and the fallback modes whose thresholds
# came from other episodes than its calibration seed's); a host protocol whose correctors were not
# kept starts over. A benchmark whose speed.json times the protocol's chosen corrector mode is
# skipped: remove the file to time it again, with nothing else running.
set -euo pipefail
cd "$(dirname "$0")/.."
AGENTS=experiments/results/agents
OUT=experiments/results/speculative

TUNE=mlp-3@0,mlp-3@0.5,mlp-3,mlp-3+critic,mlp-3@0.5+critic  # host: chosen on the tuning seed's episodes

host() {  # host TASK: data, correctors and evaluation on host MuJoCo, both mismatches, a tuned MLP mode
  if [ ! -e "$OUT/$1-host/done/train-mlp" ]; then  # rows of correctors that were not kept: start over
    rm -f "$OUT/$1-host"/{results.csv,results.md,results.png,by_step.csv,speed.json}
  fi
  BACKEND=host COLLECT_EPISODES=16 DAGGER_EPISODES=4 EPISODES=16 MISMATCH=latent,policy TUNE=$TUNE \
    experiments/speculative.sh "$AGENTS/$1-1M/model" "$OUT/$1-host" "$1"
}

mjx() {  # mjx TASK: the same agent on Playground's MJX task, 16 environments at once
  ENVS=16 STEPS=500 DAGGER_STEPS=125 EPISODES=16 MISMATCH=latent \
    experiments/speculative.sh "$AGENTS/$1-1M/model" "$OUT/$1" "$1"
}

speed() {  # speed TASK: every host mode in 5 alternating rounds of 120 steps, the trained correctors
  local chosen
  chosen=$(cat "$OUT/$1-host/tuning/chosen.txt")
  if [ -e "$OUT/$1-host/speed.json" ] && grep -q "\"mode\": \"$chosen\"" "$OUT/$1-host/speed.json"; then
    echo "= speed $1: done before"; return
  fi
  python -m benchmarks.speculative_speed --config="configs/dmc.py:$1" --checkpoint="$AGENTS/$1-1M/model" \
    --k=2,3,4,6 --steps=120 --rounds=5 --variants="$chosen" \
    --correctors="mlp=$OUT/$1-host/correctors/mlp,transformer=$OUT/$1-host/correctors/transformer" \
    --out="$OUT/$1-host/speed.json"
}

for task in cheetah-run walker-walk; do
  host "$task"
  speed "$task"
done
# every step of the MLP corrector's mode on the cheetah's evaluation episodes (docs/speculative.md)
[ -e "$OUT/cheetah-run-host/trace-mlp-3/summary.json" ] || python -m experiments.speculative_trace --task=cheetah-run --mode=mlp-3
for task in cheetah-run walker-walk; do
  mjx "$task"
done
