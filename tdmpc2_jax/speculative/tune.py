"""Chooses among corrector modes on episodes that no evaluation or calibration runs.

    python -m tdmpc2_jax.speculative.tune --config=configs/dmc.py:cheetah-run --checkpoint CKPT \
        --correctors mlp=DIR --candidates mlp-3@0,mlp-3@0.5,mlp-3,mlp-3+critic [--episodes 16] [--seed 0] \
        --out OUT/tuning

Runs every candidate (CORRECTOR-K[@SCALE][+critic]: `@0` executes the stale plan, as naive-K;
`@0.5` takes half of each correction; `+critic` takes a correction only where the agent's critic
prefers it to the stale action) on the same episodes of the tuning seed (`protocol.tuning_seed` of
the evaluation seed --seed), and writes OUT/results.csv (a row per candidate: return mean, std,
median, 5th percentile, planner calls per step) and OUT/chosen.txt, the candidate of the highest
mean return. `python -m tdmpc2_jax.speculative.evaluate --variants NAME` then evaluates it on the
evaluation's episodes.
"""
from __future__ import annotations

from absl import app, flags

from tdmpc2_jax.cli import define_config_flags, episode_progress, error_edge, input_errors, parse_flags, \
    start_command, step_progress

FLAGS = flags.FLAGS


def define_flags() -> None:
    define_config_flags("configs/dmc.py:TASK or configs/mjx.py:TASK", "the trained agent")
    flags.DEFINE_list("correctors", [], "NAME=DIR pairs of trained correctors")
    flags.DEFINE_list("candidates", [], "corrector modes to choose among, CORRECTOR-K[@SCALE][+critic]")
    flags.DEFINE_integer("episodes", 16, "episodes per candidate (the same for every candidate)")
    flags.DEFINE_integer("seed", 0, "the evaluation seed the choice is for (its own episodes never run here)")
    flags.DEFINE_string("out", None, "directory for results.csv and chosen.txt")


def main(argv: list[str]) -> None:
    del argv
    config = start_command("checkpoint", "out")
    from tdmpc2_jax.run_record import resolve
    from tdmpc2_jax.speculative import fitting, protocol
    from tdmpc2_jax.speculative.backend import episodes_on

    with error_edge(FLAGS.out, usage_errors=input_errors()):
        run = resolve(config)
        tuning = protocol.Tuning(FLAGS.checkpoint, fitting.named_dirs(FLAGS.correctors), FLAGS.candidates,
                                 FLAGS.episodes, FLAGS.out, FLAGS.seed)
        episodes = episodes_on(run.backend, step_progress(run.episode_length), episode_progress(FLAGS.episodes))
        protocol.tune(run, tuning, episodes, lambda line: print(line, flush=True))
    print(f"wrote {FLAGS.out}/results.csv, chosen.txt", flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
