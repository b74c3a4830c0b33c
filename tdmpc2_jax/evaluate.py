"""Evaluate a checkpoint on a DMControl task or on every task of a task set, on host MuJoCo or on MJX.

    python -m tdmpc2_jax.evaluate --config=configs/dmc.py:TASK --checkpoint PATH --episodes N [--video out.mp4]
    python -m tdmpc2_jax.evaluate --config=configs/mjx.py:TASK --checkpoint PATH --episodes N [--video out.mp4]
    python -m tdmpc2_jax.evaluate --config=configs/dmc.py:mt30 --checkpoint mt30-48M.pt [--tasks a,b] [--csv F]

PATH is an orbax checkpoint directory of this project (a run's `checkpoints/` folder or a converted
model) or an official `.pt` file (converted on the fly; needs the `torch` extra). The architecture
comes from the checkpoint; planning settings (horizon, samples, ...) from the config. Host and MJX
tasks share observation layouts, so a model trained on one backend evaluates on the other. On MJX
the episodes run at once, in one compiled program, and the video is drawn on host MuJoCo from the
first episode's physics states.

A multitask checkpoint runs every task of its set (`mt30`, `mt80`, or `--config.tasks=a,b,...` in
embedding order), or those of `--tasks`, one line per task and their mean, and writes the rows to a
CSV. A single task name (`configs/dmc.py:walker-walk`) runs that task of a multitask checkpoint
whose set is known (it names its tasks, or has as many as mt30 or mt80).
"""
from __future__ import annotations


from absl import app, flags

from tdmpc2_jax.cli import define_config_flags, error_edge, input_errors, parse_flags, start_command, step_progress

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    define_config_flags("config file, e.g. configs/dmc.py:cheetah-run",
                                  "orbax checkpoint directory or official .pt file")
    flags.DEFINE_integer("episodes", 10, "number of evaluation episodes")
    flags.DEFINE_string("video", None, "write the first episode to this .mp4")
    flags.DEFINE_integer("seed", None, "evaluation seed (default: the config's seed)")
    flags.DEFINE_string("tasks", None, "multitask: comma-separated tasks of the set to evaluate (default: all)")
    flags.DEFINE_string("csv", None, "multitask: per-task results CSV (default: evaluation-<set>.csv)")


def main(argv: list[str]) -> None:
    del argv
    config = start_command("checkpoint")
    from tdmpc2_jax import evaluation
    from tdmpc2_jax.loading import read_checkpoint
    from tdmpc2_jax.run_record import resolve

    seed, episodes, video = config.seed if FLAGS.seed is None else FLAGS.seed, FLAGS.episodes, bool(FLAGS.video)
    with error_edge(usage_errors=input_errors()):
        run, checkpoint = resolve(config), read_checkpoint(FLAGS.checkpoint)
        if run.task_set is not None or checkpoint[0].multitask:
            tasks = FLAGS.tasks.split(",") if FLAGS.tasks else None
            result = evaluation.evaluate_set(run, FLAGS.checkpoint, checkpoint, tasks, episodes, seed, video,
                                             on_task=print_task)
            write_set(result, FLAGS.csv or f"evaluation-{result.name}.csv")
        elif FLAGS.tasks:
            raise ValueError("--tasks selects tasks of a task set: give one, e.g. --config=configs/dmc.py:mt30")
        else:
            result = evaluation.evaluate_task(run, FLAGS.checkpoint, checkpoint, episodes, seed, video,
                                              step_progress(run.episode_length))
            print(f"{run.task}: {episodes} episodes, return mean {result.returns.mean():.1f}, std "
                  f"{result.returns.std():.1f}, min {result.returns.min():.1f}; episode lengths "
                  f"{sorted(set(result.lengths))}" + ("" if result.success is None else f"; success {result.success:.2f}"))
    if video:
        import imageio

        imageio.mimsave(FLAGS.video, result.frames, fps=30)
        print(f"wrote {FLAGS.video} ({len(result.frames)} frames)")


def print_task(row: dict) -> None:
    """One line per evaluated task of a set."""
    if not row["episodes"]:
        print(f"{row['task']:<26} not evaluated: {row['note']}", flush=True)
        return
    success = "" if row["success"] == "" else f", success {row['success']:.2f}"
    print(f"{row['task']:<26} return {row['return_mean']:8.1f} +- {row['return_std']:6.1f} "
          f"({row['episodes']} episodes){success}", flush=True)


def write_set(result, path: str) -> None:
    """The mean over the evaluated tasks, and every task's row in a CSV at `path`."""
    import csv

    done = [r["return_mean"] for r in result.rows if r["episodes"]]
    if done:
        print(f"mean over {len(done)} of {len(result.rows)} tasks: {sum(done) / len(done):.1f}")
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(result.rows[0]))
        writer.writeheader()
        writer.writerows(result.rows)
    print(f"wrote {path}")


def run() -> None:
    """The `tdmpc2-evaluate` console script, and `python -m tdmpc2_jax.evaluate`."""
    define_flags()
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
