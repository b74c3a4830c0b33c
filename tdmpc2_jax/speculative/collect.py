"""Collect corrector training tuples from speculative rollouts of a trained agent, on MJX or on
host MuJoCo (tasks that have no MJX version, such as humanoid or dog).

    python -m tdmpc2_jax.speculative.collect --config=configs/mjx.py:cartpole-balance \
        --checkpoint runs/.../checkpoints --k 4 --envs 16 --steps 1000 --out data/cartpole-k4.npz \
        [--history 4] [--corrector corrector_dir (a DAgger round: roll out the corrected controller)]
    python -m tdmpc2_jax.speculative.collect --config=configs/dmc.py:humanoid-walk \
        --checkpoint runs/.../checkpoints --k 4 --episodes 8 --out data/humanoid-k4.npz

Every reuse step (k = 1..K-1) gives one tuple, labelled with the teacher's MPPI mean action at the
visited state. The file records the task, K, history, agent checkpoint, seed and DAgger round;
`--append` adds a round to an existing file (same task, K and history).
"""
from __future__ import annotations

from absl import app, flags

from tdmpc2_jax.cli import define_config_flags, episode_progress, error_edge, input_errors, parse_flags, \
    start_command, step_progress

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    define_config_flags("configs/mjx.py:TASK (batched MJX rollouts) or configs/dmc.py:TASK (host episodes)",
                                  "the trained agent (orbax checkpoint directory or official .pt)")
    flags.DEFINE_integer("k", 4, "execution horizon K")
    flags.DEFINE_integer("envs", 16, "MJX: environments rolled out at once")
    flags.DEFINE_integer("steps", 1000, "MJX: batched steps (episodes of episode_length steps follow each other)")
    flags.DEFINE_integer("episodes", 4, "host: episodes, one after another")
    flags.DEFINE_integer("history", 1, "steps of history per tuple (1 for the MLP corrector)")
    flags.DEFINE_string("corrector", None, "roll out with this corrector (DAgger round)")
    flags.DEFINE_string("out", None, "output .npz")
    flags.DEFINE_bool("append", False, "add the tuples to an existing --out file")
    flags.DEFINE_integer("seed", 0, "rollout seed")


def main(argv: list[str]) -> None:
    del argv
    config = start_command("checkpoint", "out")
    from tdmpc2_jax.run_record import resolve
    from tdmpc2_jax.speculative import collection
    from tdmpc2_jax.speculative.backend import episodes_on

    with error_edge(usage_errors=input_errors()):
        run = resolve(config)
        mjx = run.backend == "mjx"
        options = collection.Options(FLAGS.checkpoint, FLAGS.k, FLAGS.steps if mjx else FLAGS.episodes, FLAGS.out,
                                     FLAGS.history, FLAGS.corrector, FLAGS.append, FLAGS.seed, FLAGS.envs)
        episodes = episodes_on(run.backend, step_progress(FLAGS.steps), episode_progress(FLAGS.episodes), FLAGS.envs)
        collection.collect(run, options, episodes, lambda line: print(line, flush=True))


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
