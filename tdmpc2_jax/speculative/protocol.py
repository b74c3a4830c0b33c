"""The speculative-execution protocol of one agent: every mode on the same seeds, the thresholds
it needs, and the results table (the library behind `python -m tdmpc2_jax.speculative.evaluate`)."""
from __future__ import annotations

import csv
import os
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tdmpc2_jax.environments import make_env
from tdmpc2_jax.loading import load_for_task
from tdmpc2_jax.run_record import Run, eval_seed
from tdmpc2_jax.speculative import fitting
from tdmpc2_jax.speculative.backend import Episodes
from tdmpc2_jax.speculative.calibration import calibration_path, read_calibration, read_entries, \
    write_calibration
from tdmpc2_jax.speculative.controller import MISMATCHES, SpecSettings, Speculator, calibrate_tau
from tdmpc2_jax.speculative.modes import Mode, parse_variant, protocol_modes, settings_of
from tdmpc2_jax.speculative.report import goal_summary, merged_with_disk, read_results, relative_to_full, \
    write_results
from tdmpc2_jax.world_model import WorldModel


class Options(NamedTuple):
    checkpoint: str  # the trained agent
    ks: list[int]  # execution horizons K
    correctors: list[tuple[str, str]]  # (name, directory) of trained correctors
    episodes: int  # per mode, the same seeds for every mode
    out: str  # results directory
    calibrate: bool = False  # make the missing thresholds
    quantile: float = 0.95  # of e_k, as tau_k
    mismatch: tuple[str, ...] = ("latent",)  # what fallback modes compare with tau_k
    seed: int = 0  # evaluation seed
    modes: tuple[str, ...] = ()  # only these modes (their rows replaced, the others kept)
    resume: bool = False  # only the modes OUT/results.csv does not have
    variants: tuple[str, ...] = ()  # corrector modes beyond the protocol's (mlp-3@0.5, mlp-3+critic)


# calibration episodes start from states apart from every evaluation's: their seed is the
# evaluation seed plus this (host environments) and their keys fold it in (MJX)
CALIBRATION_SEED_OFFSET = 7_919


def calibration_seed(seed: int) -> int:
    """The seed of the calibration episodes of an evaluation seeded `seed`."""
    return seed + CALIBRATION_SEED_OFFSET


def tuning_seed(seed: int) -> int:
    """The seed of the episodes that choose among corrector modes for an evaluation seeded `seed`
    (apart from the evaluation's and the calibration's)."""
    return seed + 2 * CALIBRATION_SEED_OFFSET


def finished_modes(rows: list[dict], modes: list[Mode], seed: int) -> set[str]:
    """The modes of OUT/results.csv that `--resume` keeps: every row but those of fallback modes
    whose thresholds came from other episodes than calibration seed `seed` (rows written before
    the seed was recorded name none)."""
    fallback = {m.name for m in modes if m.fallback}
    return {r["mode"] for r in rows if r["mode"] not in fallback or r.get("tau_seed") == str(seed)}


def stale_words(entry: dict | None) -> str:
    """Why a threshold on file does not serve ('' where there is none)."""
    if entry is None:
        return ""
    if "seed" not in entry:
        return " (the one on file records no seed: made before calibration moved off the evaluation's episodes)"
    return f" (the one on file was made on seed {entry['seed']})"


class Protocol(NamedTuple):
    new_env: Callable[[], object]  # a fresh evaluation environment (every mode starts from the same episodes)
    calibration_env: Callable[[], object]  # an environment whose episodes no evaluation shares
    params: object
    model: WorldModel
    correctors: dict  # name -> (Corrector, params, metadata)
    modes: list[Mode]  # every mode of the protocol
    selected: list[Mode]  # the modes to run now
    finished: set[str]  # modes kept from OUT/results.csv
    taus: dict  # (K, mismatch) -> tau [K]
    missing: list[tuple[int, str]]  # thresholds to calibrate first


def prepare(run: Run, options: Options) -> Protocol:
    """Checks the options against the agent, its correctors and calibrations, and OUT; one-line
    ValueErrors for what does not fit."""
    if run.obs != "state":
        raise ValueError("speculative execution runs on state observations (obs=state)")
    if not options.mismatch or set(options.mismatch) - set(MISMATCHES):
        raise ValueError(f"--mismatch takes some of {list(MISMATCHES)}, got {list(options.mismatch)}")
    new_env = lambda: make_env(run, eval_seed(options.seed))
    env = new_env()
    agent_cfg, params = load_for_task(options.checkpoint, run, env.obs_dim, env.action_dim)
    correctors = {name: fitting.load(path, run.task, agent_cfg.latent_dim, max(options.ks))
                  for name, path in options.correctors}
    modes = protocol_modes(options.ks, list(correctors), tuple(options.mismatch))
    for name in options.variants:
        mode = parse_variant(name, list(correctors))
        if mode.k not in options.ks:
            raise ValueError(f"{name}: K={mode.k} is not among --k {options.ks}")
        if mode.name not in {m.name for m in modes}:
            modes.append(mode)
    unknown = sorted(set(options.modes) - {m.name for m in modes})
    if unknown:
        raise ValueError(f"unknown modes {unknown}; this protocol has {[m.name for m in modes]}")
    on_disk = {r["mode"] for r in read_results(options.out)}
    if options.modes and "full" not in options.modes and "full" not in on_disk:
        raise ValueError(f"--modes without full needs {options.out}/results.csv with a full row to compare with")
    seed = calibration_seed(options.seed)
    finished = finished_modes(read_results(options.out), modes, seed) if options.resume else set()
    selected = [m for m in modes if (not options.modes or m.name in options.modes) and m.name not in finished]
    taus = read_calibration(options.checkpoint, run.task, run.backend, seed)
    missing = sorted({(m.k, m.mismatch) for m in selected if m.fallback} - set(taus))
    if missing and not options.calibrate:
        entries = read_entries(options.checkpoint, run.task, run.backend)
        named = ", ".join(f"K={k}" + ("" if kind == "latent" else f" ({kind})") + stale_words(entries.get((k, kind)))
                          for k, kind in missing)
        raise ValueError(f"{options.checkpoint} has no thresholds calibrated on seed {seed} (where evaluation seed "
                         f"{options.seed} calibrates) for {named} on {run.task} ({run.backend}) "
                         f"({calibration_path(options.checkpoint)}): pass --calibrate to make it now")
    calibration_env = lambda: make_env(run, eval_seed(calibration_seed(options.seed)))
    if run.backend == "mjx":  # one batched environment serves every mode and the calibration: keys seed episodes
        new_env = calibration_env = lambda: env
    return Protocol(new_env, calibration_env, params, WorldModel(agent_cfg), correctors, modes, selected, finished,
                    taus, missing)


def calibrate(run: Run, options: Options, protocol: Protocol, episodes: Episodes, say: Callable[[str], None]) -> None:
    """The missing thresholds from one full-replanning run on episodes that no evaluation shares
    (`calibration_seed`; the plan buffer's first K steps do not depend on K, so one run serves every
    K and mismatch), written beside the checkpoint."""
    k_max = max(k for k, _ in protocol.missing)
    seed = calibration_seed(options.seed)
    say(f"calibrating tau for {protocol.missing} (full replanning, quantile {options.quantile}, seed {seed}) ...")
    watcher = Speculator(protocol.model, SpecSettings(horizon_k=k_max))
    key = jax.random.key(seed)
    checks = episodes.calibrate(protocol.calibration_env(), watcher, protocol.params, key, options.episodes)
    for k, kind in protocol.missing:
        values = checks.mismatch if kind == "latent" else checks.policy_mismatch
        protocol.taus[k, kind] = np.asarray(calibrate_tau(checks.k, values, k, options.quantile)).tolist()
        write_calibration(options.checkpoint, run.task, run.backend, k, kind, np.asarray(protocol.taus[k, kind]),
                          options.quantile, options.episodes, seed)


def run_modes(run: Run, options: Options, protocol: Protocol, episodes: Episodes,
              say: Callable[[str], None]) -> list[dict]:
    """Every selected mode on the same episodes, the table rewritten after each; the final table."""
    title = (f"{run.task}: speculative execution, {options.episodes} episodes "
             f"({'MJX' if run.backend == 'mjx' else 'host MuJoCo'})")
    keep_others = bool(options.modes or options.resume)
    rows = {r["mode"]: r for r in read_results(options.out)} if keep_others else {}
    ran, key = {}, jax.random.key(options.seed)
    if protocol.finished:
        say(f"{len(protocol.finished)} modes already in {options.out}/results.csv; running the other "
            f"{len(protocol.selected)}")
    for mode in protocol.selected:
        corrector, corrector_params = protocol.correctors[mode.corrector][:2] if mode.corrector else (None, None)
        settings = settings_of(mode)
        tau = jnp.asarray(protocol.taus[mode.k, mode.mismatch]) if mode.fallback else None
        speculator = Speculator(protocol.model, settings, tau=tau, corrector=corrector)
        result = episodes.run_mode(protocol.new_env(), speculator, protocol.params, corrector_params, key,
                                   options.episodes)
        ran[mode.name] = dict(result, mode=mode.name, K=mode.k,
                              tau_seed=str(calibration_seed(options.seed)) if mode.fallback else "")
        rows = merged_with_disk(options.out, ran) if keep_others else ran
        table = relative_to_full([rows[m.name] for m in protocol.modes if m.name in rows])
        row = next(r for r in table if r["mode"] == mode.name)
        say(f"{mode.name:<31} return {row['return_mean']:8.1f} +- {row['return_std']:6.1f} "
            f"({100 * row['of_full']:5.1f}% of full, median {100 * row['median_of_full']:5.1f}%)  "
            f"{row['calls_per_step']:.3f} calls/step  {row['ms_per_step']:8.2f} ms/step  (x{row['speedup']:.2f})")
        write_results(table, options.out, title)
    table = relative_to_full([rows[m.name] for m in protocol.modes if m.name in rows])
    if table:
        say(goal_summary(table))
    return table


class Tuning(NamedTuple):
    checkpoint: str  # the trained agent
    correctors: list[tuple[str, str]]  # (name, directory) of trained correctors
    candidates: list[str]  # corrector modes, CORRECTOR-K[@SCALE][+critic]
    episodes: int  # per candidate, the same episodes for every candidate
    out: str  # results.csv (a row per candidate) and chosen.txt
    seed: int = 0  # the evaluation seed the choice is made for; its episodes are never run here


def tune(run: Run, tuning: Tuning, episodes: Episodes, say: Callable[[str], None]) -> str:
    """The candidate of the highest mean return over episodes of `tuning_seed`, every candidate on
    the same episodes; writes OUT/results.csv after each candidate and OUT/chosen.txt (its name).
    Started again, it keeps the candidates OUT/results.csv holds for the same seed and episodes."""
    if run.obs != "state":
        raise ValueError("speculative execution runs on state observations (obs=state)")
    if not tuning.candidates:
        raise ValueError("--candidates: give at least one corrector mode, such as mlp-3@0.5")
    candidates = [parse_variant(name, [n for n, _ in tuning.correctors]) for name in tuning.candidates]
    seed = tuning_seed(tuning.seed)
    new_env = lambda: make_env(run, eval_seed(seed))
    env = new_env()
    agent_cfg, params = load_for_task(tuning.checkpoint, run, env.obs_dim, env.action_dim)
    k_max = max(mode.k for mode in candidates)
    correctors = {name: fitting.load(path, run.task, agent_cfg.latent_dim, k_max) for name, path in tuning.correctors}
    if run.backend == "mjx":  # one batched environment; the key seeds the episodes
        new_env = lambda: env
    model, rows = WorldModel(agent_cfg), []
    done = {r["mode"]: r for r in read_tuning(tuning.out) if (r["seed"], r["episodes"]) == (seed, tuning.episodes)}
    say(f"choosing among {', '.join(m.name for m in candidates)} on {tuning.episodes} episodes of seed {seed}")
    for mode in candidates:
        if mode.name in done:
            rows.append(done[mode.name])
            say(f"{mode.name:<20} return {done[mode.name]['return_mean']:8.1f} (in {tuning.out}/results.csv)")
            continue
        corrector, corrector_params = correctors[mode.corrector][:2]
        speculator = Speculator(model, settings_of(mode), corrector=corrector)
        result = episodes.run_mode(new_env(), speculator, params, corrector_params, jax.random.key(seed),
                                   tuning.episodes)
        rows.append(dict(mode=mode.name, seed=seed, episodes=tuning.episodes, **{k: result[k] for k in TUNING_COLUMNS}))
        say(f"{mode.name:<20} return {result['return_mean']:8.1f} +- {result['return_std']:6.1f} "
            f"(median {result['return_median']:.1f}, 5th percentile {result['return_p5']:.1f})")
        write_tuning(tuning.out, rows)
    chosen = max(rows, key=lambda r: r["return_mean"])["mode"]
    with open(os.path.join(tuning.out, "chosen.txt"), "w") as f:
        f.write(chosen + "\n")
    say(f"chosen: {chosen}, the highest mean return (evaluate it with --variants={chosen})")
    return chosen


TUNING_COLUMNS = ("return_mean", "return_std", "return_median", "return_p5", "calls_per_step")


def write_tuning(out: str, rows: list[dict]) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.csv.tmp"), "w", newline="") as f:
        writer = csv.DictWriter(f, ["mode", "seed", "episodes", *TUNING_COLUMNS])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(os.path.join(out, "results.csv.tmp"), os.path.join(out, "results.csv"))


def read_tuning(out: str) -> list[dict]:
    """The rows of OUT/results.csv of a tuning ([] without one)."""
    path = os.path.join(out, "results.csv")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [dict(r, seed=int(r["seed"]), episodes=int(r["episodes"]), **{k: float(r[k]) for k in TUNING_COLUMNS})
                for r in csv.DictReader(f)]
