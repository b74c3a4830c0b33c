#!/usr/bin/env bash
# A Python environment that runs the official TD-MPC2 training code (nicklashansen/tdmpc2) on CPU,
# for experiments/learning_vs_official.py. It is not a dependency of this package.
#
#   bash experiments/official_env.sh [VENV]       (default VENV: .venv-official)
#
# The pins are the official docker/environment.yaml's tensordict and torchrl, the torch this project
# tests against, and the mujoco this project uses (dm_control's physics). wandb is left out: the
# benchmark runs with enable_wandb=false.
set -euo pipefail
venv="${1:-.venv-official}"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q \
    "torch==2.13.0" "tensordict==0.8.3" "torchrl==0.8.1" \
    "hydra-core==1.3.2" "hydra-submitit-launcher==1.2.0" "omegaconf==2.3.0" \
    "dm-control>=1.0.30" "mujoco==3.17.*" "gymnasium==0.29.1" \
    termcolor tqdm pandas imageio imageio-ffmpeg
"$venv/bin/python" -c "import torch, tensordict, torchrl, hydra, dm_control; print('official environment ready:', '$venv', 'torch', torch.__version__)"
