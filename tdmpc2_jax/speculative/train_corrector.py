"""Train a corrector on collected tuples.

    python -m tdmpc2_jax.speculative.train_corrector --data data/cartpole-k4.npz --kind mlp --out correctors/mlp-k4 \
        [--epochs 200 --batch 256 --lr 1e-3 --delta_penalty 1e-3 --val_fraction 0.1 --patience 10 --hidden 256]

The MLP reads the newest step of each tuple's history; the transformer reads the shortest history
among the files. MSE to the teacher's action plus `delta_penalty` * ||delta||^2, Adam, a validation
split, early stopping; the best validation epoch is saved as an orbax checkpoint with the corrector's spec and
the data's task, K and agent checkpoint (a corrector for another task, latent size or K is refused
when it is loaded).
"""
from __future__ import annotations

from absl import app, flags

from tdmpc2_jax.cli import fail, parse_flags, setup_process

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    flags.DEFINE_list("data", None, "one or more .npz files from tdmpc2_jax.speculative.collect")
    flags.DEFINE_enum("kind", "mlp", ["mlp", "transformer"], "corrector architecture")
    flags.DEFINE_string("out", None, "output checkpoint directory")
    flags.DEFINE_integer("epochs", 200, "maximum epochs")
    flags.DEFINE_integer("batch", 256, "batch size")
    flags.DEFINE_float("lr", 1e-3, "Adam learning rate")
    flags.DEFINE_float("delta_penalty", 1e-3, "weight of ||delta||^2")
    flags.DEFINE_float("val_fraction", 0.1, "held-out fraction")
    flags.DEFINE_integer("patience", 10, "epochs without validation improvement before stopping")
    flags.DEFINE_integer("hidden", 256, "hidden width")
    flags.DEFINE_bool("use_std", False, "give the corrector the plan's std at step k")
    flags.DEFINE_integer("seed", 0, "seed for the split, init and shuffling")


def main(argv: list[str]) -> None:
    del argv
    if not FLAGS.data or FLAGS.out is None:
        fail("--data and --out are required")
    setup_process()
    import jax

    from tdmpc2_jax.speculative import dataset, fitting
    from tdmpc2_jax.speculative.correctors import Corrector, CorrectorSpec

    try:
        loaded = [dataset.load(path) for path in FLAGS.data]
        metas = [m for _, m in loaded]
        keys = ("task", "K", "latent_dim", "action_dim")
        if any(tuple(m.get(k) for k in keys) != tuple(metas[0].get(k) for k in keys) for m in metas):
            raise ValueError("the data files are for different tasks, K or latent sizes: "
                             + "; ".join(f"{p}: { {k: m.get(k) for k in keys} }" for p, m in zip(FLAGS.data, metas)))
        meta = metas[0]
        history = 1 if FLAGS.kind == "mlp" else min(m["history"] for m in metas)
        spec = CorrectorSpec(kind=FLAGS.kind, latent_dim=meta["latent_dim"], action_dim=meta["action_dim"],
                             max_k=meta["K"] - 1, history=history, hidden=FLAGS.hidden, use_std=FLAGS.use_std)
    except (ValueError, FileNotFoundError, KeyError) as err:
        fail(str(err))
    tuples = dataset.concatenate([dataset.trim(d, spec.history) for d, _ in loaded])
    print(f"{tuples.label.shape[0]:,} tuples for {meta['task']} (K={meta['K']}); training a {FLAGS.kind} corrector")
    result = fitting.fit(Corrector(spec), tuples, jax.random.key(FLAGS.seed), epochs=FLAGS.epochs,
                          batch_size=FLAGS.batch, lr=FLAGS.lr, delta_penalty=FLAGS.delta_penalty,
                          val_fraction=FLAGS.val_fraction, patience=FLAGS.patience)
    fitting.save(FLAGS.out, result.params, spec, dict(
        task=meta["task"], K=meta["K"], checkpoint=meta.get("checkpoint"), data=FLAGS.data,
        dagger_round=max(int(m.get("dagger_round", 0)) for m in metas), best_epoch=result.best_epoch,
        val_mse=min(result.val_loss) if result.val_loss else None))
    print(f"wrote {FLAGS.out} (best epoch {result.best_epoch}, validation MSE "
          f"{min(result.val_loss) if result.val_loss else float('nan'):.5f})")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
