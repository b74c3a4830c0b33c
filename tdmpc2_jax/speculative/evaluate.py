"""The speculative-execution protocol: every mode on the same seeds, a table and a plot.

    python -m tdmpc2_jax.speculative.evaluate --config=configs/mjx.py:cartpole-balance \
        --checkpoint runs/.../checkpoints --k 2,3,4,6 --correctors mlp=correctors/mlp,transformer=correctors/tf \
        --episodes 16 --out experiments/results/speculative/cartpole-balance [--calibrate]

Modes: full replanning (K=1), and for each K: naive-K, fallback only, corrector-K and corrector-K
with fallback for each corrector. Every mode runs the same episodes (same reset and planner keys).
Reported per mode: return mean, std, median and 5th percentile (mean and median as fractions of
full replanning), planner calls per step, the rate of fallbacks at each k, the mean correction
||delta a||_2 on reused steps, measured wall-clock per step (encoder, corrector, planner and
physics included; batched episodes on MJX are timed as a whole and divided by steps), the
distribution of the mismatch, and the mean reward at every step index (by_step.csv, and the plot's
right panel). `--mismatch latent,policy` runs every fallback mode with each mismatch: e_k, and the
distance between the policy prior's action at the observed latent and the planned action (modes
named `...:policy`). `--variants` adds corrector modes: `mlp-3@0.5` takes half of each correction,
`mlp-3+critic` only the corrections the agent's critic prefers to the stale action (such as the one
`python -m tdmpc2_jax.speculative.tune` chose on other episodes).
`--modes full,naive-2` re-runs (or re-times) only those modes and replaces their rows in an
existing OUT/results.csv; evaluations of other modes may share OUT at the same time (each adds its
rows to what the file holds when it writes). `--resume` runs only the modes that OUT/results.csv
does not have yet (a protocol stopped part-way goes on where it stopped). Thresholds tau_k come
from `speculative_calibration.json` beside the checkpoint; `--calibrate` makes the missing ones: a
quantile of e_k per k under full replanning, where e_k compares each observation with the latent
that the plan made k steps earlier predicted for it. `--config=configs/dmc.py:TASK` runs the same
protocol on host MuJoCo, one episode after another.
"""
from __future__ import annotations

from absl import app, flags

from tdmpc2_jax.cli import define_config_flags, episode_progress, error_edge, input_errors, parse_flags, \
    start_command, step_progress

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    define_config_flags("configs/mjx.py:TASK or configs/dmc.py:TASK",
                                  "the trained agent")
    flags.DEFINE_list("k", ["2", "3", "4", "6"], "execution horizons K")
    flags.DEFINE_list("correctors", [], "NAME=DIR pairs of trained correctors")
    flags.DEFINE_integer("episodes", 16, "episodes per mode (the same seeds for every mode)")
    flags.DEFINE_string("out", None, "directory for results.md, results.csv and results.png")
    flags.DEFINE_bool("calibrate", False, "calibrate the missing thresholds tau (and save them)")
    flags.DEFINE_float("quantile", 0.95, "quantile of e_k used as tau_k")
    flags.DEFINE_list("mismatch", ["latent"], "what fallback modes compare with tau_k: latent (e_k) and/or policy")
    flags.DEFINE_integer("seed", 0, "evaluation seed")
    flags.DEFINE_list("modes", [], "run only these modes (e.g. full,naive-2) and replace their rows in OUT/results.csv, "
                      "keeping the others (to re-run or re-time part of the protocol)")
    flags.DEFINE_bool("resume", False, "keep the modes already in OUT/results.csv and run only the others")
    flags.DEFINE_list("variants", [], "corrector modes beyond the protocol's, CORRECTOR-K[@SCALE][+critic] "
                      "(e.g. mlp-3@0.5, or the one tdmpc2_jax.speculative.tune chose)")


def main(argv: list[str]) -> None:
    del argv
    config = start_command("checkpoint", "out")
    from tdmpc2_jax.run_record import resolve
    from tdmpc2_jax.speculative import fitting, protocol
    from tdmpc2_jax.speculative.backend import episodes_on

    say = lambda line: print(line, flush=True)
    with error_edge(FLAGS.out, usage_errors=input_errors()):
        run = resolve(config)
        options = protocol.Options(FLAGS.checkpoint, sorted({int(k) for k in FLAGS.k}),
                                   fitting.named_dirs(FLAGS.correctors), FLAGS.episodes, FLAGS.out, FLAGS.calibrate,
                                   FLAGS.quantile, tuple(FLAGS.mismatch), FLAGS.seed, tuple(FLAGS.modes), FLAGS.resume,
                                   tuple(FLAGS.variants))
        prepared = protocol.prepare(run, options)
        # progress lines: every tenth of the batched episodes' steps, or every host episode
        episodes = episodes_on(run.backend, step_progress(run.episode_length), episode_progress(FLAGS.episodes))
        if prepared.missing:
            protocol.calibrate(run, options, prepared, episodes, say)
        protocol.run_modes(run, options, prepared, episodes, say)
    say(f"wrote {FLAGS.out}/results.md, results.csv, by_step.csv, results.png")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
