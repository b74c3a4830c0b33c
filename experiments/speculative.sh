#!/usr/bin/env bash
# The speculative-execution protocol for one trained agent, on MJX (default) or host MuJoCo
# (BACKEND=host: tasks without an MJX version, such as humanoid-walk):
#   1. collect teacher-labelled tuples from naive K_MAX rollouts (history of 4 steps);
#   2. train the MLP (newest step) and the transformer (4 steps) correctors;
#   3. one DAgger round per corrector: roll out the corrected controller, add its tuples, retrain;
#   4. with TUNE=CANDIDATES (corrector modes such as mlp-3@0.5,mlp-3+critic): choose among them on
#      episodes apart from the evaluation's (tdmpc2_jax.speculative.tune), and evaluate the chosen one too;
#   5. evaluate every mode for K in KS on the same seeds (calibrating tau first).
# usage: experiments/speculative.sh CHECKPOINT OUT [TASK]
# Sizes are environment variables: ENVS, STEPS, DAGGER_STEPS (MJX collection), COLLECT_EPISODES,
# DAGGER_EPISODES (host collection), EPISODES, KS, K_MAX, TUNE; MISMATCH (latent, policy or latent,policy)
# picks what the fallback compares with tau_k.
# Started again with the same OUT, the script skips the steps that finished (each leaves a mark in
# OUT/done) and the evaluation runs only the modes missing from OUT/results.csv: a protocol stopped
# part-way goes on where it stopped. Remove OUT (or OUT/done) to start over. The final correctors
# (OUT/correctors/mlp and OUT/correctors/transformer) and OUT/done are committed with the results;
# the tuples (OUT/data) and the round-0 correctors, which only collect the DAgger tuples, are not.
# A clone evaluates the remaining modes without collecting and training again.
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
MISMATCH=${MISMATCH:-latent}
if [ "${BACKEND:-mjx}" = host ]; then
  CONFIG=configs/dmc.py:$TASK
  COLLECT=(--episodes="${COLLECT_EPISODES:-4}")
  DAGGER=(--episodes="${DAGGER_EPISODES:-2}")
else
  CONFIG=configs/mjx.py:$TASK
  COLLECT=(--envs="$ENVS" --steps="$STEPS")
  DAGGER=(--envs="$ENVS" --steps="$DAGGER_STEPS")
fi
DATA=$OUT/data
if [ -e "$OUT/results.csv" ] && [ ! -e "$OUT/done/train-mlp" ]; then
  echo "error: $OUT/results.csv holds modes of correctors this protocol did not train; remove it (and" \
       "by_step.csv, results.md, results.png) to start the protocol over" >&2
  exit 2
fi
mkdir -p "$DATA"
step() {  # step NAME COMMAND...: run COMMAND unless the step NAME finished before
  local name=$1; shift
  if [ -e "$OUT/done/$name" ]; then echo "= $name: done before"; return; fi
  echo "+ $*"; "$@"
  mkdir -p "$OUT/done" && touch "$OUT/done/$name"
}

step collect-naive python -m tdmpc2_jax.speculative.collect --config="$CONFIG" --checkpoint="$CHECKPOINT" --k="$K_MAX" \
    --history=4 "${COLLECT[@]}" --out="$DATA/naive.npz"
for KIND in mlp transformer; do
  step train-$KIND-round0 python -m tdmpc2_jax.speculative.train_corrector --data="$DATA/naive.npz" --kind=$KIND \
      --out="$OUT/correctors/$KIND-round0"
  step collect-dagger-$KIND python -m tdmpc2_jax.speculative.collect --config="$CONFIG" --checkpoint="$CHECKPOINT" \
      --k="$K_MAX" --corrector="$OUT/correctors/$KIND-round0" "${DAGGER[@]}" --seed=1 \
      --out="$DATA/dagger-$KIND.npz"
  step train-$KIND python -m tdmpc2_jax.speculative.train_corrector --data="$DATA/naive.npz,$DATA/dagger-$KIND.npz" \
      --kind=$KIND --out="$OUT/correctors/$KIND"
done
VARIANTS=()
if [ -n "${TUNE:-}" ]; then
  step tune python -m tdmpc2_jax.speculative.tune --config="$CONFIG" --checkpoint="$CHECKPOINT" \
      --correctors="mlp=$OUT/correctors/mlp,transformer=$OUT/correctors/transformer" --candidates="$TUNE" \
      --episodes="$EPISODES" --out="$OUT/tuning"
  VARIANTS=(--variants="$(cat "$OUT/tuning/chosen.txt")")
fi
echo "+ evaluate (modes missing from $OUT/results.csv)"
python -m tdmpc2_jax.speculative.evaluate --config="$CONFIG" --checkpoint="$CHECKPOINT" --k="$KS" \
    --correctors="mlp=$OUT/correctors/mlp,transformer=$OUT/correctors/transformer" \
    --episodes="$EPISODES" --mismatch="$MISMATCH" "${VARIANTS[@]}" --calibrate --resume --out="$OUT"
