"""MPPI planning in the latent space of the world model, as pure jittable functions.

`plan` plans one action for ONE observation; `plan_batch` is it vmapped over observations, states
and keys, to plan for many environments at once. The warm start
(the previous MPPI mean) is carried explicitly in `PlanState`.

The model is any object with the WorldModel methods used here (encode_observation, pi, next, step,
step_shared, q_pair, termination, action_mask, discount) and a `cfg`; tests plug in hand-built ones.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from tdmpc2_jax import xla
from tdmpc2_jax.types import Params
from tdmpc2_jax.world_model import sample_pair

ENCODE_STREAM = 1  # the plan key's fold-in for the encoder's own draws (the shift of pixel observations)

class PlanState(NamedTuple):
    mean: jax.Array  # [H, A] MPPI mean of the previous plan (the warm start)


class Plan(NamedTuple):
    action: jax.Array  # [A] the action to execute
    mean: jax.Array  # [H, A] final MPPI mean
    std: jax.Array  # [H, A] final MPPI std
    sequence: jax.Array  # [H, A] the sampled elite sequence whose first action is executed
    z: jax.Array  # [L] latent of the observation


def init_plan_state(horizon: int, action_dim: int) -> PlanState:
    return PlanState(jnp.zeros((horizon, action_dim), jnp.float32))


def warm_start(prev_mean: jax.Array, t0: jax.Array) -> jax.Array:
    """prev_mean [H, A] shifted one step earlier with a zero last step; zeros at t0 of an episode."""
    shifted = jnp.concatenate([prev_mean[1:], jnp.zeros_like(prev_mean[:1])], axis=0)
    return jnp.where(t0, jnp.zeros_like(prev_mean), shifted)


def rollout(model, params: Params, z: jax.Array, actions: jax.Array, task=None, *, shared_start: bool = False):
    """Discounted model return of action sequences: (returns [N], z_H [N, L], discount^H [], alive [N]).

    z is [N, L], or [L] shared by all N sequences when shared_start. actions: [H, N, A].
    alive is 1 - (predicted termination so far) for episodic agents, else ones.
    """
    gamma = model.discount(task)
    step0 = model.step_shared if shared_start else model.step
    reward, z = step0(params, z, actions[0], task)
    episodic = model.cfg.episodic

    def terminated(z):
        return (jax.nn.sigmoid(model.termination(params, z, task)) > 0.5).astype(jnp.float32)

    alive = jnp.ones_like(reward)
    returns = reward
    if episodic:
        alive = 1.0 - terminated(z)

    def body(carry, action):
        z, returns, discount, alive = carry
        reward, z = model.step(params, z, action, task)
        returns = returns + discount * alive * reward
        discount = discount * gamma
        if episodic:
            alive = 1.0 - jnp.minimum(1.0 - alive + terminated(z), 1.0)
        return (z, returns, discount, alive), None

    (z, returns, discount, alive), _ = jax.lax.scan(body, (z, returns, gamma * jnp.ones(()), alive), actions[1:])
    return returns, z, discount, alive


def terminal_value(model, params: Params, z: jax.Array, eps: jax.Array, pair: jax.Array, task=None) -> jax.Array:
    """Q_avg(z, pi(z)) of a random head pair with the online heads: [N]."""
    action = model.pi(params, z, eps, task).action
    return model.q_pair(params["qs"], z, action, pair, task, reduce="avg", params=params)


def estimate_value(model, params: Params, z: jax.Array, actions: jax.Array, eps: jax.Array, pair: jax.Array,
                   task=None) -> jax.Array:
    """Official `_estimate_value`: sum_t gamma^t r_t + gamma^H Q_avg(z_H, pi(z_H)).

    z: [N, L], actions: [H, N, A], eps: [N, A] policy draws at z_H, pair: [2] Q heads -> [N].
    """
    returns, z_h, discount, alive = rollout(model, params, z, actions, task)
    return returns + discount * alive * terminal_value(model, params, z_h, eps, pair, task)


def prior_actions(model, params: Params, z: jax.Array, key: jax.Array, task=None) -> jax.Array:
    """Action sequences of the policy prior rolled through the dynamics from z [L]: [H, P, A]."""
    cfg = model.cfg
    eps = jax.random.normal(key, (cfg.horizon, cfg.num_pi_trajs, cfg.action_dim))
    z = jnp.broadcast_to(z, (cfg.num_pi_trajs, z.shape[-1]))

    def body(z, eps_t):
        action = model.pi(params, z, eps_t, task).action
        return model.next(params, z, action, task), action

    z, actions = jax.lax.scan(body, z, eps[:-1])
    last = model.pi(params, z, eps[-1], task).action
    return jnp.concatenate([actions, last[None]], axis=0)


def prior_plan(model, params: Params, obs: jax.Array, state: PlanState, key: jax.Array, task=None, *,
               eval_mode: bool) -> Plan:
    """The policy prior's action for one observation (no planning)."""
    cfg = model.cfg
    z = model.encode_observation(params, obs, jax.random.fold_in(key, ENCODE_STREAM), task)
    eps = jnp.zeros((cfg.action_dim,)) if eval_mode else jax.random.normal(key, (cfg.action_dim,))
    action = model.pi(params, z, eps, task).action
    sequence = jnp.concatenate([action[None], state.mean[1:]], axis=0)
    return Plan(action, state.mean, jnp.zeros_like(state.mean), sequence, z)


def plan(model, params: Params, obs: jax.Array, state: PlanState, key: jax.Array, t0: jax.Array, task=None, *,
         eval_mode: bool) -> tuple[Plan, PlanState]:
    """One MPPI solve for one observation obs [obs_dim] (or an image [C, H, W]); returns the plan and
    the next warm start.

    Each iteration: num_samples - num_pi_trajs Gaussian sequences clamp(mean + std N(0, 1)) plus the
    policy-prior sequences; value = model return + discounted Q; softmax(temperature * value) over the
    top num_elites gives the new mean and std (std in [min_std, max_std]). The executed action is
    the first of an elite drawn by score (plus std[0] noise unless eval_mode), clamped to [-1, 1].
    With cfg.mpc False (the official switch) the policy prior acts instead: a sample, or its mean in
    eval_mode; the warm start is left as it is.
    """
    cfg = model.cfg
    if obs.shape != cfg.obs_shape:
        raise ValueError(f"plan takes one observation of shape {cfg.obs_shape}, got {tuple(obs.shape)}; "
                         "plan_batch plans for a batch")
    if state.mean.shape != (cfg.horizon, cfg.action_dim):
        raise ValueError(f"the plan state's mean must have shape (horizon, action_dim) = "
                         f"({cfg.horizon}, {cfg.action_dim}), got {tuple(state.mean.shape)}")
    if not cfg.mpc:
        return prior_plan(model, params, obs, state, key, task, eval_mode=eval_mode), state
    horizon, num_pi = cfg.horizon, cfg.num_pi_trajs
    num_gauss = cfg.num_samples - num_pi
    k_prior, k_mppi, k_select, k_noise = jax.random.split(key, 4)
    z = model.encode_observation(params, obs, jax.random.fold_in(key, ENCODE_STREAM), task)
    mask = model.action_mask(task)

    # The prior's sequences are drawn once; their model rollout is deterministic, so it is done once.
    if num_pi:
        pi_actions = prior_actions(model, params, z, k_prior, task)
        pi_returns, pi_z, _, pi_alive = rollout(model, params, z, pi_actions, task, shared_start=True)

    def iteration(i, carry):
        mean, std, _, _ = carry
        k_sample, k_eps, k_pair = jax.random.split(jax.random.fold_in(k_mppi, i), 3)
        noise = jax.random.normal(k_sample, (horizon, num_gauss, cfg.action_dim))
        actions = jnp.clip(mean[:, None] + std[:, None] * noise, -1.0, 1.0) * mask
        returns, z_h, discount, alive = rollout(model, params, z, actions, task, shared_start=True)
        if num_pi:
            actions = jnp.concatenate([pi_actions, actions], axis=1)
            returns = jnp.concatenate([pi_returns, returns])
            z_h = jnp.concatenate([pi_z, z_h])
            alive = jnp.concatenate([pi_alive, alive])
        eps = jax.random.normal(k_eps, (cfg.num_samples, cfg.action_dim))
        q = terminal_value(model, params, z_h, eps, sample_pair(k_pair, cfg.num_q), task)
        value = jnp.nan_to_num(returns + discount * alive * q, nan=0.0)
        elite_value, elite_idx = jax.lax.top_k(value, cfg.num_elites)
        elites = actions[:, elite_idx]  # [H, K, A]
        score = jnp.exp(cfg.temperature * (elite_value - jnp.max(elite_value)))
        score = score / jnp.sum(score)
        total = jnp.sum(score) + 1e-9
        mean = jnp.sum(score[:, None] * elites, axis=1) / total
        std = jnp.sqrt(jnp.sum(score[:, None] * jnp.square(elites - mean[:, None]), axis=1) / total)
        std = jnp.clip(std, cfg.min_std, cfg.max_std)
        return mean * mask, std * mask, score, elites

    init = (warm_start(state.mean, t0), jnp.full((horizon, cfg.action_dim), cfg.max_std, jnp.float32),
            jnp.zeros((cfg.num_elites,)), jnp.zeros((horizon, cfg.num_elites, cfg.action_dim)))
    mean, std, score, elites = jax.lax.fori_loop(0, cfg.plan_iterations, iteration, init)

    sequence = elites[:, jax.random.categorical(k_select, jnp.log(score))]
    action = sequence[0]
    if not eval_mode:
        action = action + std[0] * jax.random.normal(k_noise, (cfg.action_dim,))
    return Plan(jnp.clip(action, -1.0, 1.0), mean, std, sequence, z), PlanState(mean)


def plan_batch(model, params: Params, obs: jax.Array, state: PlanState, key: jax.Array, t0: jax.Array,
               task: jax.Array | None = None, *, eval_mode: bool = False) -> tuple[Plan, PlanState]:
    """`plan` for N observations with one set of parameters: obs [N, *obs_shape], state.mean [N, H, A],
    key [N] keys, t0 [N], task [N] or None; every field of the Plan and PlanState gets a leading [N]."""
    single = functools.partial(plan, model, eval_mode=eval_mode)
    return jax.vmap(single, in_axes=(None, 0, 0, 0, 0, 0))(params, obs, state, key, t0, task)


def make_planner(model, *, eval_mode: bool, batched: bool = False) -> Callable[..., Any]:
    """jitted plan(params, obs, state, key, t0, task=None); batched=True: `plan_batch`."""
    return xla.jit(functools.partial(plan_batch if batched else plan, model, eval_mode=eval_mode))
