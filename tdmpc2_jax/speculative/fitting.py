"""Fitting a corrector to teacher labels: MSE to the teacher plus a small penalty on delta, Adam,
a held-out validation split, early stopping on the validation loss; orbax checkpoints with the
corrector's spec and provenance (task, K, agent checkpoint)."""
from __future__ import annotations

import dataclasses
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from tdmpc2_jax import xla
from tdmpc2_jax.speculative.correctors import Corrector, CorrectorSpec
from tdmpc2_jax.speculative.dataset import Dataset


class FitResult(NamedTuple):
    params: Any
    train_loss: list[float]  # per epoch
    val_loss: list[float]  # per epoch
    best_epoch: int


def loss_fn(corrector: Corrector, delta_penalty: float):
    """loss(params, inputs [B, ...], label [B, A]) = mean ||a_corr - label||^2 + penalty mean ||delta||^2."""
    def loss(params, inputs, label):
        action, delta = jax.vmap(corrector.correct, in_axes=(None, 0))(params, inputs)
        mse = jnp.mean(jnp.sum(jnp.square(action - label), axis=-1))
        return mse + delta_penalty * jnp.mean(jnp.sum(jnp.square(delta), axis=-1)), mse
    return loss


def fit(corrector: Corrector, data: Dataset, key: jax.Array, epochs: int = 100, batch_size: int = 256,
        lr: float = 1e-3, delta_penalty: float = 1e-3, val_fraction: float = 0.1, patience: int = 10,
        log=print) -> FitResult:
    """Trains on a random (1 - val_fraction) of the tuples; keeps the parameters of the best
    validation epoch and stops after `patience` epochs without improvement."""
    n = int(data.label.shape[0])
    n_val = max(1, int(round(n * val_fraction)))
    if n - n_val < 1:
        raise ValueError(f"{n} tuples are too few to train and validate a corrector")
    k_split, k_init, k_epochs = jax.random.split(key, 3)
    order = np.asarray(jax.random.permutation(k_split, n))
    take = lambda idx: jax.tree.map(lambda x: jnp.asarray(np.asarray(x)[idx]), data)
    train, val = take(order[n_val:]), take(order[:n_val])
    batch_size = min(batch_size, n - n_val)
    batches = (n - n_val) // batch_size
    loss = loss_fn(corrector, delta_penalty)
    optimizer = optax.adam(lr)

    @xla.jit
    def epoch(params, opt_state, key):
        perm = jax.random.permutation(key, n - n_val)[: batches * batch_size].reshape(batches, batch_size)

        def one(carry, idx):
            params, opt_state = carry
            batch = jax.tree.map(lambda x: x[idx], train)
            (value, _), grads = jax.value_and_grad(loss, has_aux=True)(params, batch.inputs, batch.label)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), value

        (params, opt_state), values = jax.lax.scan(one, (params, opt_state), perm)
        return params, opt_state, jnp.mean(values)

    val_loss = xla.jit(lambda p: loss(p, val.inputs, val.label)[1])
    params = corrector.init(k_init)
    opt_state = optimizer.init(params)
    best = (float(val_loss(params)), params, 0)
    train_curve, val_curve = [], []
    for e, k in enumerate(jax.random.split(k_epochs, epochs), start=1):
        params, opt_state, train_value = epoch(params, opt_state, k)
        train_curve.append(float(train_value))
        val_curve.append(float(val_loss(params)))
        log(f"epoch {e}: train loss {train_curve[-1]:.5f}, validation MSE {val_curve[-1]:.5f}")
        if val_curve[-1] < best[0]:
            best = (val_curve[-1], params, e)
        elif e - best[2] >= patience:
            log(f"early stop: no improvement for {patience} epochs (best epoch {best[2]})")
            break
    return FitResult(best[1], train_curve, val_curve, best[2])


def save(directory: str, params, spec: CorrectorSpec, meta: dict) -> None:
    """An orbax checkpoint of the corrector: `state` (params) and `meta` (spec + provenance)."""
    meta = {"spec": dataclasses.asdict(spec), **meta}
    with ocp.CheckpointManager(os.path.abspath(directory), options=ocp.CheckpointManagerOptions(create=True)) as m:
        m.save(0, args=ocp.args.Composite(state=ocp.args.StandardSave(params), meta=ocp.args.JsonSave(meta)),
               force=True)
        m.wait_until_finished()


def named_dirs(values: list[str]) -> list[tuple[str, str]]:
    """(name, directory) of each NAME=DIR of a --correctors flag; ValueError on anything else."""
    pairs = [tuple(v.split("=", 1)) for v in values]
    if any(len(p) != 2 for p in pairs):
        raise ValueError(f"--correctors takes NAME=DIR pairs, got {values}")
    return pairs


def load(directory: str, task: str | None = None, latent_dim: int | None = None, horizon_k: int | None = None):
    """(Corrector, params, meta); refuses one made for another task, latent size or K, and names the
    damaged file of a damaged one (`checkpoints.DamagedCheckpoint`)."""
    from tdmpc2_jax import checkpoints

    step, meta = checkpoints.read_meta(directory)
    if "spec" not in meta:
        raise ValueError(f"{directory} is not a corrector checkpoint (no spec in its metadata)")
    spec = CorrectorSpec(**meta["spec"])
    problems = []
    if task is not None and meta.get("task") != task:
        problems.append(f"task {meta.get('task')!r}, not {task!r}")
    if latent_dim is not None and spec.latent_dim != latent_dim:
        problems.append(f"latent size {spec.latent_dim}, not {latent_dim}")
    if horizon_k is not None and spec.max_k < horizon_k - 1:
        problems.append(f"K up to {spec.max_k + 1}, not {horizon_k}")
    if problems:
        raise ValueError(f"corrector {directory} was trained for " + ", ".join(problems))
    corrector = Corrector(spec)
    like = jax.eval_shape(corrector.init, jax.random.key(0))
    params = jax.tree.map(jnp.asarray, checkpoints.restore_exact(directory, step, like))
    return corrector, params, meta
