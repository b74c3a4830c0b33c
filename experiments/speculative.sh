#!/usr/bin/env bash
# The speculative-execution protocol on MJX for one trained agent:
#   1. collect teacher-labelled tuples from naive K_MAX rollouts (history of 4 steps);
#   2. train the MLP (newest step) and the transformer (4 steps) correctors;
#   3. one DAgger round per corrector: roll out the corrected controller, add its tuples, retrain;
#   4. evaluate every mode for K in KS on the same seeds (calibrating tau first).
# usage: experiments/speculative.sh CHECKPOINT OUT [TASK]
# Sizes are environment variables: ENVS, STEPS, DAGGER_STEPS, EPISODES, KS, K_MAX.
set -euo pipefail
CHECKPOINT=$1
OUT=$2
TASK=${3:-cartpole-balance}
ENVS=${ENVS:-8}
STEPS=${STEPS:-300}
DAGGER_STEPS=${DAGGER_STEPS:-150}
EPISODES=${EPISODES:-4}
KS=${KS:-2,3,4,6}
K_MAX=${K_MAX:-6}
CONFIG=configs/mjx.py:$TASK
DATA=$OUT/data
mkdir -p "$DATA"
run() { echo "+ $*"; "$@"; }

run python -m tdmpc2_jax.speculative.collect --config="$CONFIG" --checkpoint="$CHECKPOINT" --k="$K_MAX" \
    --history=4 --envs="$ENVS" --steps="$STEPS" --out="$DATA/naive.npz"
for KIND in mlp transformer; do
  run python -m tdmpc2_jax.speculative.train_corrector --data="$DATA/naive.npz" --kind=$KIND \
      --out="$OUT/correctors/$KIND-round0"
  run python -m tdmpc2_jax.speculative.collect --config="$CONFIG" --checkpoint="$CHECKPOINT" --k="$K_MAX" \
      --corrector="$OUT/correctors/$KIND-round0" --envs="$ENVS" --steps="$DAGGER_STEPS" --seed=1 \
      --out="$DATA/dagger-$KIND.npz"
  run python -m tdmpc2_jax.speculative.train_corrector --data="$DATA/naive.npz,$DATA/dagger-$KIND.npz" \
      --kind=$KIND --out="$OUT/correctors/$KIND"
done
run python -m tdmpc2_jax.speculative.evaluate --config="$CONFIG" --checkpoint="$CHECKPOINT" --k="$KS" \
    --correctors="mlp=$OUT/correctors/mlp,transformer=$OUT/correctors/transformer" \
    --episodes="$EPISODES" --calibrate --out="$OUT"
