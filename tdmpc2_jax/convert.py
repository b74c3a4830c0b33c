"""Converts an official TD-MPC2 checkpoint to this project's parameters, saved as an orbax checkpoint.

    python -m tdmpc2_jax.convert OFFICIAL.pt OUT_DIR [--tasks a,b,...] [--episode-lengths 500,...]

Reads both official layouts (current, and the older one of the checkpoints released with the paper),
single-task and multitask. The architecture is read off the weights; what weights cannot tell
(multitask task names and episode lengths, which set the per-task discount) can be given as flags.
The `.pt` file is read without torch and nothing in it runs: a file that holds anything but tensors
in plain containers is refused. A `.npz` of arrays under the official key names is accepted too.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import jax

from tdmpc2_jax import checkpoints, official
from tdmpc2_jax.checkpoints import tree_mismatches
from tdmpc2_jax.config import Config, make_config
from tdmpc2_jax.world_model import WorldModel


def read_state_dict(path: str) -> official.StateDict:
    """{official key: array} of an official `.pt` checkpoint (either saved layout) or a `.npz`."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if path.endswith(".npz"):
        return official.read_npz_state_dict(path)
    return official.read_torch_checkpoint(path)


def to_project(state: official.StateDict, overrides: dict[str, Any] | None = None) -> tuple[Config, dict, dict]:
    """(config, params, target_qs) of an official state dict; shapes checked against the config."""
    try:
        arch = official.infer_architecture(state)
    except (KeyError, IndexError) as err:
        raise ValueError(f"not an official TD-MPC2 state dict (missing {err})") from err
    cfg = make_config({**arch, **(overrides or {})})
    params, target_qs, _ = official.to_params(state)
    expected = jax.eval_shape(WorldModel(cfg).init, jax.random.key(0))
    diffs = tree_mismatches(expected, params) + tree_mismatches(expected["qs"], target_qs)
    if diffs:
        raise ValueError("the weights do not form a TD-MPC2 model: " + "; ".join(diffs[:10]))
    return cfg, params, target_qs


def convert(src: str, out_dir: str, overrides: dict[str, Any] | None = None, force: bool = False) -> Config:
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not force:
        raise FileExistsError(f"{out_dir} is not empty (pass --force to overwrite)")
    cfg, params, target_qs = to_project(read_state_dict(src), overrides)
    checkpoints.save(out_dir, 0, {"params": params, "target_qs": target_qs}, cfg,
                     extra_meta={"source": os.path.abspath(src), "format": "official-tdmpc2"})
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="official .pt (torch.save of {'model': state_dict} or of a state_dict) "
                        "or .npz")
    parser.add_argument("out_dir", help="orbax checkpoint directory to write")
    parser.add_argument("--tasks", help="comma-separated task names of a multitask checkpoint")
    parser.add_argument("--episode-lengths", help="comma-separated episode lengths (agent steps) per task")
    parser.add_argument("--episode-length", type=int, help="episode length of a single-task checkpoint")
    parser.add_argument("--force", action="store_true", help="overwrite a non-empty OUT_DIR")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.tasks:
        overrides["tasks"] = tuple(args.tasks.split(","))
    if args.episode_lengths:
        overrides["episode_lengths"] = tuple(int(x) for x in args.episode_lengths.split(","))
    if args.episode_length:
        overrides["episode_length"] = args.episode_length
    try:
        cfg = convert(args.checkpoint, args.out_dir, overrides, args.force)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    arch = ", ".join(f"{k}={v}" for k, v in cfg.architecture().items())
    print(f"wrote {args.out_dir} ({arch})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
