"""Converts an official TD-MPC2 checkpoint to this project's parameters, saved as an orbax checkpoint.

    python -m tdmpc2_jax.convert OFFICIAL.pt OUT_DIR [--tasks=a,b,...] [--episode_lengths=500,...]

Reads both official layouts (current, and the older one of the checkpoints released with the paper),
single-task and multitask. The architecture is read off the weights; what weights cannot tell
(multitask task names and episode lengths, which set the per-task discount) can be given as flags.
The `.pt` file is read without torch and nothing in it runs: a file that holds anything but tensors
in plain containers is refused. A `.npz` of arrays under the official key names is accepted too.
"""
from __future__ import annotations

import os
import sys
from typing import Any

import jax
from absl import app, flags

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


FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    flags.DEFINE_list("tasks", None, "comma-separated task names of a multitask checkpoint")
    flags.DEFINE_list("episode_lengths", None, "comma-separated episode lengths (agent steps) per task")
    flags.DEFINE_integer("episode_length", None, "episode length of a single-task checkpoint")
    flags.DEFINE_bool("force", False, "overwrite a non-empty OUT_DIR")


def parse_flags(argv: list[str]) -> list[str]:
    """absl parsing with one-line errors (exit 2); the two arguments CHECKPOINT and OUT_DIR stay.
    This module's flags are the program's key flags, so that --help lists them under any name."""
    for flag in flags.FLAGS.get_flags_for_module(__name__):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as err:
        refuse(str(err))
    if len(rest) != 3:
        refuse("give the official checkpoint (.pt or .npz) and the directory to write: "
               "python -m tdmpc2_jax.convert OFFICIAL.pt OUT_DIR [--tasks=a,b,...]")
    return rest


def refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def overrides_of(tasks: list[str] | None, episode_lengths: list[str] | None,
                 episode_length: int | None) -> dict[str, Any]:
    """The Config keys that the weights cannot tell, from the command line's values."""
    overrides: dict[str, Any] = {}
    if tasks:
        overrides["tasks"] = tuple(tasks)
    if episode_lengths:
        overrides["episode_lengths"] = tuple(int(x) for x in episode_lengths)
    if episode_length:
        overrides["episode_length"] = episode_length
    return overrides


def command(checkpoint: str, out_dir: str, overrides: dict[str, Any] | None = None, force: bool = False) -> int:
    """Converts `checkpoint` into `out_dir`, printing what it wrote or one error line; the exit status."""
    try:
        cfg = convert(checkpoint, out_dir, overrides, force)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    arch = ", ".join(f"{k}={v}" for k, v in cfg.architecture().items())
    print(f"wrote {out_dir} ({arch})")
    return 0


def main(argv: list[str]) -> None:
    overrides = overrides_of(FLAGS.tasks, FLAGS.episode_lengths, FLAGS.episode_length)
    sys.exit(command(argv[1], argv[2], overrides, FLAGS.force))


def run() -> None:
    """The `tdmpc2-convert` console script, and `python -m tdmpc2_jax.convert`."""
    define_flags()
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
