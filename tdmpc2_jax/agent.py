"""TrainState and the one TD-MPC2 update: TD targets, model step, policy step, target soft update.

`Agent(cfg).update(state, batch, key)` is pure and jittable, and vmappable over independent seeds
(vmap `state`, `batch` and `key` together). Every random draw of an update is collected in
`UpdateDraws`, so `update_with_draws` reproduces the official numbers exactly when the draws are
injected.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from tdmpc2_jax import ops, optim, xla
from tdmpc2_jax.config import Config
from tdmpc2_jax.types import Batch, Params
from tdmpc2_jax.world_model import WorldModel, sample_pair

SHIFT_STREAM = 1  # the update key's fold-in for the image shifts (pixel observations)


class UpdateDraws(NamedTuple):
    """The random numbers of one update, in the official call order."""

    td_eps: jax.Array  # [H, B, A] policy noise for the TD target
    td_pair: jax.Array  # [2] target-Q heads for the TD target
    pi_eps: jax.Array  # [H+1, B, A] policy noise for the policy loss
    pi_pair: jax.Array  # [2] Q heads for the policy loss
    dropout: jax.Array  # PRNG key for Q dropout (model and policy loss)
    shift: jax.Array | None = None  # [H+1, B, 2] shifts of the image at each step (pixels only)


class TrainState(NamedTuple):
    params: Params  # world model incl. policy prior
    target_qs: Params  # target Q heads, stacked [num_q, ...]
    model_opt_state: optim.AdamState  # over ravel(model_part(params))
    pi_opt_state: optim.AdamState  # over ravel(params["pi"])
    scale: jax.Array  # [] running scale of the policy loss
    step: jax.Array  # [] int32 number of updates done
    # Multitask only: the policy loss's gradient on the task table. The official code leaves it in
    # `.grad` (only the policy's gradients are cleared), so it joins the NEXT model gradient.
    task_emb_grad: jax.Array | None = None


class UpdateInternals(NamedTuple):
    """Intermediate quantities of an update (for parity checks and diagnostics)."""

    next_z: jax.Array  # [H, B, L]
    td_targets: jax.Array  # [H, B]
    zs: jax.Array  # [H+1, B, L]
    model_grads: Params  # after clipping
    pi_grads: Params  # after clipping
    pi_entropy: jax.Array  # [H+1, B]
    pi_scaled_entropy: jax.Array  # [H+1, B]


def model_part(params: Params) -> Params:
    """Everything the model optimizer trains (all but the policy prior)."""
    return {k: v for k, v in params.items() if k != "pi"}


class Agent:
    """Static pieces of an agent (world model, optimizers) and the pure functions over a TrainState."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.model = WorldModel(cfg)
        # The learning rates live in the optimizer states (`with_learning_rate`), so that one program
        # can train a population of agents with different rates.
        self.model_optimizer = optim.Adam(eps=1e-8, lr_scale={"encoder": cfg.enc_lr_scale})
        self.pi_optimizer = optim.Adam(eps=1e-5)
        self._compiled_init = xla.jit(self.fresh_state)

    # ------------------------------------------------------------------ state
    def init(self, key: jax.Array) -> TrainState:
        """A fresh TrainState with the official initialisation (one compiled program)."""
        return self._compiled_init(key)

    def fresh_state(self, key: jax.Array) -> TrainState:
        """`init` without its own compilation, to call inside a larger program (vmap, scan)."""
        params = self.model.init(key)
        return self.state_from_params(params, params["qs"])

    def state_from_params(self, params: Params, target_qs: Params) -> TrainState:
        """A fresh TrainState (new optimizer states, scale 1) around given parameters."""
        return TrainState(
            params=params,
            target_qs=target_qs,
            model_opt_state=self.model_optimizer.init(model_part(params), self.cfg.lr),
            pi_opt_state=self.pi_optimizer.init(params["pi"], self.cfg.lr),
            scale=jnp.ones((), jnp.float32),
            step=jnp.zeros((), jnp.int32),
            task_emb_grad=jnp.zeros_like(params["task_emb"]) if self.cfg.multitask else None,
        )

    def with_learning_rate(self, state: TrainState, lr: jax.Array) -> TrainState:
        """The state with learning rate `lr` (encoder: lr * enc_lr_scale); works under vmap and jit."""
        lr = jnp.asarray(lr, jnp.float32)
        return state._replace(model_opt_state=state.model_opt_state._replace(learning_rate=lr),
                              pi_opt_state=state.pi_opt_state._replace(learning_rate=lr))

    def sample_draws(self, key: jax.Array, batch_size: int) -> UpdateDraws:
        cfg = self.cfg
        k1, k2, k3, k4, k5 = jax.random.split(key, 5)
        return UpdateDraws(
            td_eps=jax.random.normal(k1, (cfg.horizon, batch_size, cfg.action_dim)),
            td_pair=sample_pair(k2, cfg.num_q),
            pi_eps=jax.random.normal(k3, (cfg.horizon + 1, batch_size, cfg.action_dim)),
            pi_pair=sample_pair(k4, cfg.num_q),
            dropout=k5,
            shift=self.model.draw_shift(jax.random.fold_in(key, SHIFT_STREAM), (cfg.horizon + 1, batch_size)),
        )

    # ------------------------------------------------------------------ pieces of the update
    def td_target(self, params: Params, target_qs: Params, next_z: jax.Array, reward: jax.Array,
                  terminated: jax.Array, task: jax.Array | None, eps: jax.Array, pair: jax.Array) -> jax.Array:
        """r + discount (1 - terminated) min(Q_target pair)(z', pi(z')): [H, B]."""
        m = self.model
        action = m.pi(params, next_z, eps, task).action
        q = m.q_pair(target_qs, next_z, action, pair, task, reduce="min", params=params)
        return reward + m.discount(task) * (1.0 - terminated) * q

    def model_loss(self, trainable: Params, frozen: Params, batch: Batch, next_z: jax.Array,
                   td_targets: jax.Array, dropout_key: jax.Array, shift: jax.Array | None
                   ) -> tuple[jax.Array, dict[str, Any]]:
        """20 consistency + 0.1 reward + 0.1 value (+ termination), rho^t weighted over the horizon."""
        cfg, m = self.cfg, self.model
        params = {**frozen, **trainable}
        task = batch.task
        z0 = m.encode(params, batch.obs[0], task, None if shift is None else shift[0])

        def rollout_step(z, action):
            z = m.next(params, z, action, task)
            return z, z

        _, z_next = jax.lax.scan(rollout_step, z0, batch.action)  # [H, B, L]
        zs = jnp.concatenate([z0[None], z_next], axis=0)
        rho = cfg.rho ** jnp.arange(cfg.horizon, dtype=jnp.float32)

        consistency = jnp.sum(rho * jnp.mean(jnp.square(z_next - next_z), axis=(1, 2))) / cfg.horizon
        reward_logits = m.reward(params, zs[:-1], batch.action, task)
        reward_loss = jnp.sum(rho * jnp.mean(m.soft_ce(reward_logits, batch.reward), axis=1)) / cfg.horizon
        q_logits = m.q_logits(params["qs"], zs[:-1], batch.action, task, params=params, dropout_key=dropout_key)
        value_ce = jnp.mean(m.soft_ce(q_logits, td_targets[None]), axis=2)  # [num_q, H]
        value_loss = jnp.sum(rho * jnp.sum(value_ce, axis=0)) / (cfg.horizon * cfg.num_q)
        if cfg.episodic:
            logits = m.termination(params, zs[1:], task)
            termination_loss = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, batch.terminated))
        else:
            termination_loss = jnp.zeros(())
        total = (cfg.consistency_coef * consistency + cfg.reward_coef * reward_loss
                 + cfg.termination_coef * termination_loss + cfg.value_coef * value_loss)
        info = dict(consistency_loss=consistency, reward_loss=reward_loss, value_loss=value_loss,
                    termination_loss=termination_loss, total_loss=total, zs=zs)
        return total, info

    def pi_loss(self, differentiated: Params, params: Params, zs: jax.Array, task: jax.Array | None, eps: jax.Array,
                pair: jax.Array, scale: jax.Array, dropout_key: jax.Array) -> tuple[jax.Array, tuple]:
        """mean_t rho^t mean_B -(entropy_coef * entropy term + Q_avg / scale), scale updated on Q at t=0.

        `differentiated` holds the policy parameters (and, multitask, the task table).
        """
        cfg, m = self.cfg, self.model
        params = {**params, **differentiated}
        policy = m.pi(params, zs, eps, task)
        q = m.q_pair(params["qs"], zs, policy.action, pair, task, reduce="avg", params=params,
                     dropout_key=dropout_key)  # [H+1, B]
        scale = ops.update_scale(scale, jax.lax.stop_gradient(q[0]), cfg.tau)
        rho = cfg.rho ** jnp.arange(cfg.horizon + 1, dtype=jnp.float32)
        per_step = jnp.mean(-(cfg.entropy_coef * policy.scaled_entropy + q / scale), axis=1)
        return jnp.mean(per_step * rho), (scale, policy)

    # ------------------------------------------------------------------ the update
    def update_with_draws(self, state: TrainState, batch: Batch, draws: UpdateDraws
                          ) -> tuple[TrainState, dict[str, jax.Array], UpdateInternals]:
        """One update with every random draw given: (new state, scalar metrics, internals)."""
        cfg, m = self.cfg, self.model
        self._check_batch(batch)
        params, task = state.params, batch.task
        k_model, k_pi = jax.random.split(draws.dropout)

        # 1. TD targets from the online encoder and the target Q heads (no gradient, dropout off).
        next_z = m.encode(params, batch.obs[1:], task, None if draws.shift is None else draws.shift[1:])
        td_targets = self.td_target(params, state.target_qs, next_z, batch.reward, batch.terminated, task,
                                    draws.td_eps, draws.td_pair)
        next_z, td_targets = jax.lax.stop_gradient((next_z, td_targets))

        # 2-3. Model step: latent rollout losses, clip, Adam (encoder lr scaled).
        trainable = model_part(params)
        grads, info = jax.grad(self.model_loss, has_aux=True)(trainable, {"pi": params["pi"]}, batch, next_z,
                                                               td_targets, k_model, draws.shift)
        if cfg.multitask:
            grads["task_emb"] = grads["task_emb"] + state.task_emb_grad
        trainable, model_opt_state, grad_norm, clip = self.model_optimizer.clipped_step(
            trainable, grads, state.model_opt_state, cfg.grad_clip_norm)
        params = {**params, **trainable}

        # 4. Policy step on the detached rollout latents and the UPDATED Q heads.
        zs = jax.lax.stop_gradient(info.pop("zs"))
        differentiated = {k: params[k] for k in ("pi", "task_emb") if k in params}
        (pi_loss, (scale, policy)), pi_grads = jax.value_and_grad(self.pi_loss, has_aux=True)(
            differentiated, params, zs, task, draws.pi_eps, draws.pi_pair, state.scale, k_pi)
        task_emb_grad = pi_grads.get("task_emb")
        pi_grads = pi_grads["pi"]
        pi_params, pi_opt_state, pi_grad_norm, pi_clip = self.pi_optimizer.clipped_step(
            params["pi"], pi_grads, state.pi_opt_state, cfg.grad_clip_norm)
        params = {**params, "pi": pi_params}

        # 5. Target Q heads follow the online heads.
        target_qs = jax.tree.map(lambda t, o: ops.lerp(t, o, cfg.tau), state.target_qs, params["qs"])

        new_state = TrainState(params, target_qs, model_opt_state, pi_opt_state, scale, state.step + 1, task_emb_grad)
        metrics = dict(info, grad_norm=grad_norm, pi_loss=pi_loss, pi_grad_norm=pi_grad_norm,
                       pi_entropy=jnp.mean(policy.entropy), pi_scaled_entropy=jnp.mean(policy.scaled_entropy),
                       pi_scale=scale)
        clipped = lambda tree, coef: jax.tree.map(lambda g: g * coef, tree)
        internals = UpdateInternals(next_z, td_targets, zs, clipped(grads, clip), clipped(pi_grads, pi_clip),
                                    policy.entropy, policy.scaled_entropy)
        return new_state, metrics, internals

    def update(self, state: TrainState, batch: Batch, key: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
        """One TD-MPC2 update with fresh random draws from `key`."""
        draws = self.sample_draws(key, batch.obs.shape[1])
        state, metrics, _ = self.update_with_draws(state, batch, draws)
        return state, metrics

    def _check_batch(self, batch: Batch) -> None:
        cfg = self.cfg
        h = cfg.horizon
        b = batch.obs.shape[1] if batch.obs.ndim == 2 + len(cfg.obs_shape) else -1
        expected = dict(obs=(h + 1, b, *cfg.obs_shape), action=(h, b, cfg.action_dim), reward=(h, b),
                        terminated=(h, b))
        for name, shape in expected.items():
            got = tuple(getattr(batch, name).shape)
            if got != shape:
                raise ValueError(f"batch.{name} must have shape {shape} [H(+1), B, ...], got {got}")
        if cfg.multitask and (batch.task is None or tuple(batch.task.shape) != (b,)):
            raise ValueError(f"a multitask batch needs task of shape ({b},)")
