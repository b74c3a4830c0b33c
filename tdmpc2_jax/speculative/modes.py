"""The modes of the speculative-execution protocol and one run of a mode: episodes, returns,
planner calls per step, wall-clock per step, fallbacks and corrections, and reward by step index."""
from __future__ import annotations

import re
import time
from typing import Any, NamedTuple

import jax
import numpy as np

from tdmpc2_jax import acting, xla
from tdmpc2_jax.speculative.controller import SpecSettings


class Mode(NamedTuple):
    name: str
    k: int
    fallback: bool = False
    corrector: str | None = None
    mismatch: str = "latent"  # what the fallback compares with tau_k
    scale: float = 1.0  # the share of the correction taken
    critic_check: bool = False  # corrections taken only where the critic prefers them


def protocol_modes(ks: list[int], corrector_names: list[str], mismatches: tuple[str, ...] = ("latent",)) -> list[Mode]:
    """Full replanning, then per K: naive, fallback, and each corrector without and with fallback.
    Every fallback mode runs once per mismatch; names of mismatches other than the latent e_k carry
    it as a suffix (`fallback-3:policy`)."""
    modes = [Mode("full", 1)]
    for k in ks:
        modes += [Mode(f"naive-{k}", k), Mode(f"fallback-{k}", k, fallback=True)]
        for name in corrector_names:
            modes += [Mode(f"{name}-{k}", k, corrector=name), Mode(f"{name}-{k}+fallback", k, True, name)]
        for mismatch in mismatches:
            if mismatch != "latent":
                modes += [m._replace(name=f"{m.name}:{mismatch}", mismatch=mismatch)
                          for m in modes if m.k == k and m.fallback and m.mismatch == "latent"]
    return [m for m in modes if not m.fallback or m.mismatch in mismatches]


def corrector_variant(corrector: str, k: int, scale: float = 1.0, critic_check: bool = False) -> Mode:
    """Corrector `corrector` at execution horizon K, no fallback, taking `scale` of each correction and,
    with `critic_check`, only the corrections its critic prefers (`mlp-3@0.5`, `mlp-3+critic`)."""
    name = f"{corrector}-{k}" + (f"@{scale:g}" if scale != 1.0 else "") + ("+critic" if critic_check else "")
    return Mode(name, k, corrector=corrector, scale=scale, critic_check=critic_check)


def parse_variant(name: str, corrector_names: list[str]) -> Mode:
    """The mode a name CORRECTOR-K[@SCALE][+critic] stands for (`mlp-3`, `mlp-3@0.5`, `mlp-3+critic`);
    a one-line ValueError for anything else."""
    match = re.fullmatch(r"(\w+)-(\d+)(?:@([0-9.]+))?(\+critic)?", name)
    if match is None:
        raise ValueError(f"a corrector mode is CORRECTOR-K[@SCALE][+critic], such as mlp-3@0.5, not {name!r}")
    corrector, k, scale = match[1], int(match[2]), float(match[3] or 1.0)
    if corrector not in corrector_names:
        raise ValueError(f"{name}: no corrector {corrector!r} among the correctors ({', '.join(corrector_names) or 'none'})")
    if not 0.0 <= scale <= 1.0 or k < 2:
        raise ValueError(f"{name}: the scale is a share from 0 to 1 and K at least 2")
    return corrector_variant(corrector, k, scale, bool(match[4]))


def settings_of(mode: Mode) -> SpecSettings:
    """The controller settings a mode runs with."""
    return SpecSettings(horizon_k=mode.k, fallback=mode.fallback, corrector=mode.corrector is not None,
                        mismatch=mode.mismatch, correction_scale=mode.scale, critic_check=mode.critic_check)


def run_mjx(env, speculator, params, corrector_params, key: jax.Array, episodes: int,
            on_progress=None) -> dict[str, Any]:
    """One episode per environment, all at once; the wall-clock of the compiled program's run
    (`on_progress`: as in `acting.rollout`)."""
    from tdmpc2_jax.speculative.rollout import episodes_batch

    rollout = xla.jit(lambda p, c, k: episodes_batch(env, speculator, p, c, k, episodes, env.episode_length,
                                                     on_progress))
    rollout = rollout.lower(params, corrector_params, key).compile()
    start = time.perf_counter()
    result = jax.block_until_ready(rollout(params, corrector_params, key))
    seconds = time.perf_counter() - start
    alive = np.asarray(acting.first_episode_mask(result.ended))  # [T, N]
    rewards = np.where(alive, np.asarray(result.reward), np.nan).T  # [N, T]
    return summarize(np.asarray(result.returns), rewards, result.info, seconds / env.episode_length,
                     speculator.settings.horizon_k)


def host_episodes(env, speculator, params, corrector_params, key: jax.Array, episodes: int, on_episode=None):
    """Episodes one after another on host MuJoCo: HostEpisodes, whose seconds are each step's
    wall-clock (encoder, corrector, planner when it runs, physics) without the first (compiling) step
    (`on_episode`: as in `acting.host_episodes`)."""
    step = xla.jit(speculator.step)
    policy = lambda state, obs, k, t0: step(params, corrector_params, state, obs, k, t0)
    result = acting.host_episodes(env, policy, speculator.init_state, key, episodes, on_episode=on_episode)
    return result._replace(seconds=result.seconds[1:])


def run_host(env, speculator, params, corrector_params, key: jax.Array, episodes: int,
             on_episode=None) -> dict[str, Any]:
    """Per step: the mean over steps, replans and reuses together (a median would be a reuse's time)."""
    result = host_episodes(env, speculator, params, corrector_params, key, episodes, on_episode)
    return summarize(result.returns, by_episode(result.rewards, result.lengths), result.info,
                     float(np.mean(result.seconds)), speculator.settings.horizon_k)


def by_episode(rewards: np.ndarray, lengths: list[int]) -> np.ndarray:
    """[E, T_max] rewards of episodes one after another ([steps]) split per episode, NaN after an end."""
    table = np.full((len(lengths), max(lengths)), np.nan)
    for e, (start, length) in enumerate(zip(np.cumsum([0] + lengths[:-1]), lengths)):
        table[e, :length] = rewards[start:start + length]
    return table


def summarize(returns: np.ndarray, rewards: np.ndarray, info, seconds_per_step: float,
              horizon_k: int) -> dict[str, Any]:
    """The protocol's figures of one mode. rewards: [E, T] per episode and step (NaN after its end);
    info: the controller's StepInfo over every step (any leading shape)."""
    k, mismatch = np.asarray(info.k), np.asarray(info.mismatch)
    fallback, replanned = np.asarray(info.fallback), np.asarray(info.replanned)
    checked = mismatch[(k >= 1) & (k < horizon_k)]
    reused = ~replanned
    fallback_by_k = [float(fallback[k == j].mean()) if np.any(k == j) else 0.0 for j in range(1, horizon_k)]
    return dict(returns=returns, return_mean=float(returns.mean()), return_std=float(returns.std()),
                return_median=float(np.median(returns)), return_p5=float(np.percentile(returns, 5)),
                calls_per_step=float(replanned.mean()), fallback_rate=float(fallback.mean()),
                fallback_by_k="/".join(f"{r:.3f}" for r in fallback_by_k) or "-",
                correction_norm=float(np.asarray(info.correction_norm)[reused].mean()) if reused.any() else 0.0,
                ms_per_step=1e3 * seconds_per_step,
                e_p50=float(np.median(checked)) if checked.size else float("nan"),
                e_p95=float(np.percentile(checked, 95)) if checked.size else float("nan"),
                reward_by_step=np.nanmean(rewards, axis=0).tolist())
