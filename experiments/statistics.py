"""Interval estimates and an equivalence test for learning curves compared over a few seeds.

A learning curve becomes two numbers per run: its final return (the last evaluation) and its area
under the curve (AUC) on an evaluation grid shared by the runs compared. Over seeds, each side is
summarised by its mean and its interquartile mean (IQM, the mean of the middle 50% of the runs,
`scipy.stats.trim_mean(x, 0.25)` as in rliable), each with a percentile-bootstrap interval.

Two implementations are compared through the ratio of their means, r = mean(impl) / mean(reference),
with a bootstrap stratified by implementation (each side's seeds resampled on their own, as rliable
does across tasks). Equivalence is two one-sided tests (TOST) against a margin [lo, hi] fixed in
advance: H0- r <= lo and H0+ r >= hi, with p-values read off the bootstrap distribution of r,
p- = P*(r* <= lo) and p+ = P*(r* >= hi). Both reject at alpha exactly when the (1 - 2 alpha)
percentile interval of r lies inside the margin (Schuirmann's interval form of TOST).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
from scipy import stats

EQUIVALENT = "equivalent within the margin"
DIFFERENT = "different"
INCONCLUSIVE = "inconclusive at this many seeds"
VERDICTS = (EQUIVALENT, DIFFERENT, INCONCLUSIVE)


class Bootstrap(NamedTuple):
    """How many resamples a percentile bootstrap draws, and the seed of its generator."""
    n_resamples: int
    seed: int


class Interval(NamedTuple):
    estimate: float
    low: float   # nan where a side has fewer than 2 seeds
    high: float


class RatioTest(NamedTuple):
    """The ratio of means with its intervals, the TOST p-values and the verdict."""
    ratio: Interval        # estimate and `confidence` interval
    tost_interval: Interval  # the (1 - 2 alpha) interval the equivalence test reads
    p_low: float           # H0: ratio <= margin low
    p_high: float          # H0: ratio >= margin high
    p: float               # the TOST p-value, max(p_low, p_high)
    verdict: str


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean along `axis`: the mean after a quarter of the values is cut from each end."""
    return stats.trim_mean(x, 0.25, axis=axis)


def mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


AGGREGATES: dict[str, Callable[..., np.ndarray]] = {"mean": mean, "iqm": iqm}


def _sample(values, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be a non-empty 1-D array of finite values, got {values!r}")
    return x


def aggregate(values, name: str, bootstrap: Bootstrap, confidence: float = 0.95) -> Interval:
    """An aggregate of one side's runs with its percentile-bootstrap interval.

    values: [n_seeds], one number per run; name: a key of AGGREGATES ("mean" or "iqm").
    """
    if name not in AGGREGATES:
        raise ValueError(f"unknown aggregate {name!r}; choose from {', '.join(AGGREGATES)}")
    x = _sample(values, "values")
    statistic = AGGREGATES[name]
    estimate = float(statistic(x))
    if x.size < 2:
        return Interval(estimate, math.nan, math.nan)
    result = stats.bootstrap((x,), statistic, n_resamples=bootstrap.n_resamples, vectorized=True,
                             confidence_level=confidence, method="percentile",
                             rng=np.random.default_rng(bootstrap.seed))
    return Interval(estimate, float(result.confidence_interval.low), float(result.confidence_interval.high))


def _ratio_of_means(impl: np.ndarray, reference: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(impl, axis=axis) / np.mean(reference, axis=axis)


def ratio_distribution(impl, reference, bootstrap: Bootstrap,
                       confidence: float = 0.95) -> tuple[Interval, np.ndarray]:
    """mean(impl) / mean(reference) with its percentile interval, and the bootstrap ratios behind it.

    impl: [n_impl], reference: [n_ref], one number per run, resampled independently of each other
    (stratified by implementation). Returns the interval and the ratios [n_resamples] (an empty
    array, and nan bounds, where a side has fewer than 2 seeds).
    """
    a, b = _sample(impl, "impl"), _sample(reference, "reference")
    if b.mean() <= 0:
        raise ValueError(f"the reference's mean must be positive for a ratio, got {b.mean()}")
    estimate = float(a.mean() / b.mean())
    if a.size < 2 or b.size < 2:
        return Interval(estimate, math.nan, math.nan), np.empty(0)
    result = stats.bootstrap((a, b), _ratio_of_means, n_resamples=bootstrap.n_resamples, paired=False,
                             vectorized=True, confidence_level=confidence, method="percentile",
                             rng=np.random.default_rng(bootstrap.seed))
    interval = Interval(estimate, float(result.confidence_interval.low), float(result.confidence_interval.high))
    return interval, result.bootstrap_distribution


def verdict(tost_interval: Interval, interval: Interval, margin: tuple[float, float]) -> str:
    """The plan's rules: equivalent if the (1 - 2 alpha) interval lies inside the margin; different if
    not and the `confidence` interval excludes 1; else inconclusive (also where there is no interval)."""
    if margin[0] < tost_interval.low and tost_interval.high < margin[1]:
        return EQUIVALENT
    if interval.high < 1 or interval.low > 1:
        return DIFFERENT
    return INCONCLUSIVE


def ratio_test(impl, reference, bootstrap: Bootstrap, margin: tuple[float, float] = (0.85, 1.15),
               alpha: float = 0.05, confidence: float = 0.95) -> RatioTest:
    """The ratio of means of two sides' runs, its intervals, TOST against `margin` and the verdict.

    impl: [n_impl], reference: [n_ref], one number per run (e.g. each seed's AUC).
    """
    if not margin[0] < 1 < margin[1]:
        raise ValueError(f"the margin must contain 1, got {margin}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5), got {alpha}")
    interval, ratios = ratio_distribution(impl, reference, bootstrap, confidence)
    if ratios.size == 0:
        none = Interval(interval.estimate, math.nan, math.nan)
        return RatioTest(interval, none, math.nan, math.nan, math.nan, INCONCLUSIVE)
    low, high = np.percentile(ratios, [100 * alpha, 100 * (1 - alpha)])
    tost_interval = Interval(interval.estimate, float(low), float(high))
    p_low, p_high = float(np.mean(ratios <= margin[0])), float(np.mean(ratios >= margin[1]))
    return RatioTest(interval, tost_interval, p_low, p_high, max(p_low, p_high),
                     verdict(tost_interval, interval, margin))


# --------------------------------------------------------------------------------- learning curves


def common_grid(last_steps, spacing: int) -> np.ndarray:
    """0, E, 2E, ... up to the earliest of the runs' last evaluation steps (E = `spacing` env steps).

    last_steps: [n_runs], each run's last evaluation step. Returns [n_points] env steps.
    """
    end = min(int(s) for s in last_steps)
    if spacing <= 0 or end < spacing:
        raise ValueError(f"a grid of spacing {spacing} needs runs that reach it; the earliest ends at {end}")
    return np.arange(0, end // spacing * spacing + 1, spacing)


def grid_auc(steps, returns, grid: np.ndarray) -> float:
    """The run's curve linearly interpolated onto `grid`, its area divided by the grid's span: the
    curve's mean return (trapezoid rule).

    steps, returns: [n_evals], the run's evaluations in increasing steps; grid: [n_points] inside
    [steps[0], steps[-1]] (no extrapolation).
    """
    xs, ys = np.asarray(steps, dtype=float), np.asarray(returns, dtype=float)
    if xs.shape != ys.shape or xs.size < 2 or np.any(np.diff(xs) <= 0):
        raise ValueError("a curve needs 2+ evaluations at strictly increasing steps")
    if grid[0] < xs[0] or grid[-1] > xs[-1]:
        raise ValueError(f"grid {grid[0]}..{grid[-1]} reaches outside the curve's {xs[0]}..{xs[-1]}")
    values = np.interp(grid, xs, ys)
    return float(np.trapezoid(values, grid) / (grid[-1] - grid[0]))
