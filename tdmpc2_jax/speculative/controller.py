"""Speculative execution: reuse one MPPI plan for up to K steps, check every new observation against
the plan's predicted latent, and replan only when needed.

At every step (one environment): encode the observation, z; compare it with the plan buffer's
prediction for this step, e_k = ||z - zhat_k||_2; optionally correct the planned action a_plan_k
with a learned corrector. Replan (one MPPI solve, whose first action is executed) when the
episode starts, when k reached K, when fallback is on and e_k > tau_k, or when the corrector
moves the action by more than `delta_cap` (max-norm); otherwise execute the (corrected) planned
action. With `critic_check`, a correction is taken only where the agent's critic (the mean of its Q
heads at z) values the corrected action at least as much as the planned one. The mismatch that the fallback compares with tau_k is e_k by default (`mismatch="latent"`);
`mismatch="policy"` uses the distance in action space instead, ||pi(z) - a_plan_k||_2 between the
policy prior's mean action at the observed latent and the planned action. `step` decides with
`lax.cond`; `step_batch` decides per environment and runs the planner for the batch only when some
environment needs it. The batch's solve costs the same whoever asked for it, so by default
(`batch_refresh`) every environment then takes its fresh plan: the batch stays on one plan cycle
instead of drifting into per-env cycles that each trigger a batch solve.
With K = 1 every step replans with the same key and warm start as the plain planner, so the actions
are exactly the baseline's.
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from tdmpc2_jax.planner import PlanState, plan
from tdmpc2_jax.speculative import plan_buffer
from tdmpc2_jax.speculative.correctors import Corrector, CorrectorInput, empty_history, push
from tdmpc2_jax.types import Params
from tdmpc2_jax.world_model import WorldModel

EXTENSIONS = ("prior", "plan", "none")
MISMATCHES = ("latent", "policy")


@dataclasses.dataclass(frozen=True)
class SpecSettings:
    horizon_k: int = 3  # K: steps executed from one plan at most
    source: str = "mean"  # buffer actions after the first: the MPPI "mean" or the sampled "elite"
    extension: str = "prior"  # K > H: roll the policy prior's mean ("prior"), plan with horizon K ("plan"), or refuse
    fallback: bool = False  # replan when the mismatch exceeds tau_k
    mismatch: str = "latent"  # what the fallback compares with tau_k: "latent" (e_k) or "policy" (action space)
    corrector: bool = False  # correct the planned action with a learned corrector
    correction_scale: float = 1.0  # the share of the corrector's correction taken
    critic_check: bool = False  # take a correction only where the critic values it above the stale action
    delta_cap: float = math.inf  # replan when the corrector moves any action entry by more than this
    batch_refresh: bool = True  # on a batch: when the planner runs for some env, every env takes its fresh plan


class SpecState(NamedTuple):
    buffer: plan_buffer.PlanBuffer
    plan_mean: jax.Array  # [H', A] MPPI mean of the last plan (the warm start of the next)
    history: CorrectorInput  # [T, ...] the corrector's recent inputs


class StepInfo(NamedTuple):
    replanned: jax.Array  # [] bool: the planner ran at this step
    k: jax.Array  # [] int32 steps since the last plan, before this step's decision
    mismatch: jax.Array  # [] e_k = ||encode(obs) - zhat_k||_2, or ||pi(z) - a_plan_k||_2 with mismatch="policy"
                         # (meaningful when 1 <= k < K)
    correction: jax.Array  # [] max |a_corrected - a_plan| (0 without a corrector)
    correction_norm: jax.Array  # [] ||a_corrected - a_plan||_2 (0 without a corrector)
    fallback: jax.Array  # [] bool: mismatch > tau_k caused the replan


class CalibrationState(NamedTuple):
    """Full replanning that keeps the predictions of the last K plans (for `calibrate_tau`)."""

    predictions: jax.Array  # [K, K, L] latents predicted by the plans made 1..K steps ago (row j: j+1 ago)
    planned: jax.Array  # [K, K, A] the actions of those plans
    valid: jax.Array  # [K] bool: that plan was made in this episode
    plan_mean: jax.Array  # [H', A] warm start


class Checks(NamedTuple):
    k: jax.Array  # [K-1] int32: 1..K-1, or -1 where no plan of this episode was made k steps ago
    mismatch: jax.Array  # [K-1] e_k = ||encode(obs) - latent predicted for it by the plan made k steps ago||
    policy_mismatch: jax.Array  # [K-1] ||pi(encode(obs)) - action planned for this step k steps ago||


class _Decision(NamedTuple):
    need: jax.Array
    action: jax.Array  # the reused (maybe corrected) action
    history: CorrectorInput
    info: StepInfo


class Speculator:
    """The speculative controller for one world model, settings, thresholds and corrector."""

    def __init__(self, model: WorldModel, settings: SpecSettings, tau: jax.Array | None = None,
                 corrector: Corrector | None = None, eval_mode: bool = True, history: int = 1):
        """`history`: steps of corrector input kept in the state when no corrector is given (data
        collection for a history-reading corrector); with a corrector, its own history length."""
        cfg, k = model.cfg, settings.horizon_k
        if k < 1:
            raise ValueError(f"the execution horizon K must be at least 1, got {k}")
        if settings.mismatch not in MISMATCHES:
            raise ValueError(f"mismatch must be one of {MISMATCHES}, got {settings.mismatch!r}")
        if settings.extension not in EXTENSIONS:
            raise ValueError(f"extension must be one of {EXTENSIONS}, got {settings.extension!r}")
        if settings.extension == "none" and k > cfg.horizon:
            raise ValueError(f"K={k} is larger than the planning horizon H={cfg.horizon}, and extension='none' "
                             "adds no steps: use extension='prior' (policy prior beyond H) or 'plan' (plan with "
                             "horizon K)")
        if settings.fallback and (tau is None or jnp.shape(tau) != (k,)):
            raise ValueError(f"fallback needs thresholds tau of shape ({k},) for K={k}; run calibrate first "
                             f"(got {None if tau is None else jnp.shape(tau)})")
        if settings.corrector:
            if corrector is None:
                raise ValueError("settings.corrector is on but no corrector was given")
            spec = corrector.spec
            if (spec.latent_dim, spec.action_dim) != (cfg.latent_dim, cfg.action_dim) or spec.max_k < k - 1:
                raise ValueError(f"the corrector is for latent {spec.latent_dim} / action {spec.action_dim} / K up to "
                                 f"{spec.max_k + 1}; this agent has latent {cfg.latent_dim} / action "
                                 f"{cfg.action_dim} and K={k}")
        self.model, self.settings, self.eval_mode = model, settings, eval_mode
        self.tau = None if tau is None else jnp.asarray(tau, jnp.float32)
        self.corrector = corrector if settings.corrector else None
        plans_k = settings.extension == "plan" and k > cfg.horizon
        self.plan_model = WorldModel(cfg.replace(horizon=k)) if plans_k else model
        self.history = corrector.spec.history if corrector is not None else history

    def init_state(self) -> SpecState:
        cfg, k = self.model.cfg, self.settings.horizon_k
        history = empty_history(self.history, cfg.latent_dim, cfg.action_dim)
        return SpecState(plan_buffer.empty(k, cfg.latent_dim, cfg.action_dim),
                         jnp.zeros((self.plan_model.cfg.horizon, cfg.action_dim)), history)

    # ------------------------------------------------------------------ pieces
    def _decide(self, params: Params, corrector_params, state: SpecState, obs: jax.Array, t0: jax.Array) -> _Decision:
        s, buf = self.settings, state.buffer
        z = self.model.encode(params, obs)
        k = buf.k
        index = jnp.minimum(k, s.horizon_k - 1)
        z_pred, a_plan, std = buf.latents[index], buf.actions[index], buf.std[index]
        mismatch = jnp.linalg.norm(z - z_pred) if s.mismatch == "latent" else policy_distance(
            self.model, params, z, a_plan)
        history = jax.tree.map(lambda h: jnp.where(t0, jnp.zeros_like(h), h), state.history)
        history = push(history, CorrectorInput(z[None], z_pred[None], a_plan[None], index[None], std[None],
                                               jnp.ones((1,), bool)))
        if self.corrector is not None:
            action, _ = self.corrector.correct(corrector_params, history, s.correction_scale)
            if s.critic_check:
                value = lambda a: jnp.mean(self.model.q_values(params["qs"], z, a, params=params))
                action = jnp.where(value(action) >= value(a_plan), action, a_plan)
        else:
            action = a_plan
        correction = jnp.max(jnp.abs(action - a_plan))
        fallback = (mismatch > self.tau[index]) if s.fallback else jnp.zeros((), bool)
        need = t0 | (k >= s.horizon_k) | fallback | (correction > s.delta_cap)
        info = StepInfo(need, k, mismatch, correction, jnp.linalg.norm(action - a_plan),
                        fallback & ~t0 & (k < s.horizon_k))
        return _Decision(need, action, history, info)

    def _replan(self, params: Params, state: SpecState, obs: jax.Array, key: jax.Array, t0: jax.Array):
        """(executed action, new buffer, new plan mean) from one MPPI solve."""
        return self._solve(params, state.plan_mean, state.buffer.k, obs, key, t0)

    def _solve(self, params: Params, plan_mean: jax.Array, k: jax.Array, obs: jax.Array, key: jax.Array,
               t0: jax.Array):
        warm = PlanState(plan_buffer.shift_mean(plan_mean, jnp.maximum(k - 1, 0)))
        result, plan_state = plan(self.plan_model, params, obs, warm, key, t0, eval_mode=self.eval_mode)
        buffer = plan_buffer.build(self.model, params, result, self.settings.horizon_k, self.settings.source)
        return result.action, buffer, plan_state.mean

    @staticmethod
    def _reuse(state: SpecState, decision: _Decision):
        buf = state.buffer
        return decision.action, buf._replace(k=buf.k + 1), state.plan_mean

    # ------------------------------------------------------------------ steps
    def step(self, params: Params, corrector_params, state: SpecState, obs: jax.Array, key: jax.Array,
             t0: jax.Array) -> tuple[jax.Array, SpecState, StepInfo]:
        """One environment: (action [A], next state, info); the planner runs only when needed."""
        if self.settings.horizon_k == 1:  # every step replans: exactly the plain planner's program
            action, buffer, mean = self._replan(params, state, obs, key, t0)
            zero = jnp.zeros(())
            return action, state._replace(buffer=buffer, plan_mean=mean), StepInfo(
                jnp.ones((), bool), state.buffer.k, zero, zero, zero, jnp.zeros((), bool))
        d = self._decide(params, corrector_params, state, obs, t0)
        action, buffer, mean = jax.lax.cond(d.need, lambda: self._replan(params, state, obs, key, t0),
                                            lambda: self._reuse(state, d))
        return action, SpecState(buffer, mean, d.history), d.info

    def step_batch(self, params: Params, corrector_params, states: SpecState, obs: jax.Array, keys: jax.Array,
                   t0: jax.Array) -> tuple[jax.Array, SpecState, StepInfo]:
        """N environments ([N] leading axes): decisions per environment, the planner for the whole batch
        only when at least one environment replans; info.replanned: the env took a fresh plan."""
        d = jax.vmap(self._decide, in_axes=(None, None, 0, 0, 0))(params, corrector_params, states, obs, t0)
        reused = jax.vmap(self._reuse)(states, d)
        solve = jnp.any(d.need)
        planned = jax.lax.cond(
            solve, lambda: jax.vmap(self._replan, in_axes=(None, 0, 0, 0, 0))(params, states, obs, keys, t0),
            lambda: reused)
        take = d.need | (solve & self.settings.batch_refresh)  # [N]
        pick = lambda new, old: jnp.where(take.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)
        action, buffer, mean = jax.tree.map(pick, planned, reused)
        return action, SpecState(buffer, mean, d.history), d.info._replace(replanned=take)


    # ------------------------------------------------------------------ calibration
    def init_calibration_state(self) -> CalibrationState:
        cfg, k = self.model.cfg, self.settings.horizon_k
        return CalibrationState(jnp.zeros((k, k, cfg.latent_dim)), jnp.zeros((k, k, cfg.action_dim)),
                                jnp.zeros((k,), bool), jnp.zeros((self.plan_model.cfg.horizon, cfg.action_dim)))

    def calibration_step(self, params: Params, state: CalibrationState, obs: jax.Array, key: jax.Array,
                   t0: jax.Array) -> tuple[jax.Array, CalibrationState, Checks]:
        """One step of full replanning (a solve at every step, as K = 1) that also measures e_k, for
        k = 1..K-1, between this observation and the latent the plan made k steps ago predicted for
        it (that plan's buffer, built as for execution horizon K), and the policy mismatch between
        the prior's action here and the action that plan had for this step. These are the
        mismatches of following the planner, the reference `calibrate_tau` takes its thresholds from."""
        horizon_k = self.settings.horizon_k
        z = self.model.encode(params, obs)
        ks = jnp.arange(1, horizon_k)
        seen = state.valid[ks - 1] & ~t0
        mismatch = jnp.linalg.norm(z - state.predictions[ks - 1, ks], axis=-1)
        policy = jax.vmap(lambda a: policy_distance(self.model, params, z, a))(state.planned[ks - 1, ks])
        action, buffer, mean = self._solve(params, state.plan_mean, jnp.ones((), jnp.int32), obs, key, t0)
        push_front = lambda new, old: jnp.concatenate([new[None], old[:-1]])
        valid = jnp.concatenate([jnp.ones((1,), bool), state.valid[:-1] & ~t0])
        new_state = CalibrationState(push_front(buffer.latents, state.predictions),
                                     push_front(buffer.actions, state.planned), valid, mean)
        return action, new_state, Checks(jnp.where(seen, ks, -1), mismatch, policy)


def policy_distance(model: WorldModel, params: Params, z: jax.Array, planned: jax.Array) -> jax.Array:
    """[] ||pi(z) - planned||_2: the policy prior's mean action at latent z [L] against a planned action [A]."""
    return jnp.linalg.norm(model.pi(params, z, jnp.zeros_like(planned)).action - planned)


def calibrate_tau(k: jax.Array, mismatch: jax.Array, horizon_k: int, quantile: float = 0.95) -> jax.Array:
    """tau [K]: per k, the `quantile` of e_k over the checks made at that k (1 <= k < K); tau_0 = inf.

    k, mismatch: [...] from `Speculator.calibration_step` over full-replanning rollouts (Checks), or from
    StepInfo of speculative rollouts; entries with k outside 1..K-1 are ignored, and a k with no
    checks gets inf (never falls back).
    """
    k, mismatch = jnp.ravel(k), jnp.ravel(mismatch)
    taus = [jnp.inf]
    for j in range(1, horizon_k):
        values = jnp.where(k == j, mismatch, jnp.nan)
        taus.append(jnp.where(jnp.any(k == j), jnp.nanquantile(values, quantile), jnp.inf))
    return jnp.stack(taus).astype(jnp.float32)
