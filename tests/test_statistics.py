"""experiments/statistics.py: aggregates, the stratified ratio bootstrap, TOST and the verdicts,
and the AUC on a common evaluation grid, against values worked out by hand."""
import math

import numpy as np
import pytest

from experiments import statistics
from experiments.statistics import DIFFERENT, EQUIVALENT, INCONCLUSIVE, Bootstrap

BOOT = Bootstrap(n_resamples=4000, seed=0)


def test_iqm_is_the_mean_of_the_middle_half():
    assert statistics.iqm(np.array([1.0, 2, 3, 4, 100, 6, 7, 8])) == pytest.approx((3 + 4 + 6 + 7) / 4)
    assert statistics.iqm(np.array([0.0, 10, 20, 30, 1000])) == pytest.approx(20.0)  # one cut from each end
    assert statistics.iqm(np.array([1.0, 2, 6])) == pytest.approx(3.0)  # three seeds: nothing to cut


def test_aggregate_interval_is_the_percentile_bootstrap_of_the_statistic():
    x = [1.0, 2.0, 3.0, 4.0, 100.0]
    iqm = statistics.aggregate(x, "iqm", BOOT)
    assert iqm.estimate == pytest.approx(3.0)
    mean = statistics.aggregate(x, "mean", BOOT)
    assert mean.estimate == pytest.approx(22.0)
    assert 1.0 <= mean.low < mean.estimate < mean.high <= 100.0
    assert 1.0 <= iqm.low < iqm.estimate < iqm.high <= 100.0
    assert statistics.aggregate(x, "mean", BOOT) == mean  # seeded: the same interval again
    # two seeds: the resampled means are 0, 5 and 10 (probabilities 1/4, 1/2, 1/4)
    assert statistics.aggregate([0.0, 10.0], "mean", BOOT) == (5.0, 0.0, 10.0)


def test_aggregate_of_a_constant_sample_is_that_constant_and_of_one_seed_has_no_interval():
    assert statistics.aggregate([5.0, 5.0, 5.0], "mean", BOOT) == (5.0, 5.0, 5.0)
    one = statistics.aggregate([7.0], "iqm", BOOT)
    assert one.estimate == 7.0 and math.isnan(one.low) and math.isnan(one.high)
    with pytest.raises(ValueError, match="unknown aggregate"):
        statistics.aggregate([1.0, 2.0], "median", BOOT)


def test_ratio_interval_contains_the_true_ratio_of_large_samples():
    rng = np.random.default_rng(1)
    same = rng.normal(100, 10, 400)
    test = statistics.ratio_test(same, same, BOOT)
    assert test.ratio.estimate == 1.0
    assert test.ratio.low < 1.0 < test.ratio.high and test.ratio.high - test.ratio.low < 0.05
    assert test.verdict == EQUIVALENT
    lower = statistics.ratio_test(rng.normal(90, 10, 400), rng.normal(100, 10, 400), BOOT)
    assert lower.ratio.low < 0.9 < lower.ratio.high


def test_identical_seeds_on_both_sides_are_equivalent():
    seeds = [118.0, 119.0, 120.0, 121.0, 122.0]
    test = statistics.ratio_test(seeds, seeds, BOOT)
    assert test.verdict == EQUIVALENT
    assert 0.85 < test.tost_interval.low < 1 < test.tost_interval.high < 1.15
    assert test.p < 0.05


def test_clearly_separated_sides_are_different():
    test = statistics.ratio_test([50.0, 51, 49, 52, 48], [100.0, 102, 98, 104, 96], BOOT)
    assert test.ratio.estimate == pytest.approx(0.5)
    assert test.ratio.high < 0.6 and test.verdict == DIFFERENT
    assert test.p_low == 1.0 and test.p == 1.0


def test_two_seeds_with_wide_spread_are_inconclusive():
    test = statistics.ratio_test([50.0, 150.0], [60.0, 140.0], BOOT)
    assert test.ratio.estimate == pytest.approx(1.0)
    assert test.ratio.low < 1 < test.ratio.high and test.tost_interval.low < 0.85
    assert test.verdict == INCONCLUSIVE


def test_one_seed_on_a_side_gives_no_interval_and_no_verdict_beyond_inconclusive():
    test = statistics.ratio_test([100.0], [100.0, 101.0, 99.0], BOOT)
    assert test.ratio.estimate == pytest.approx(1.0)
    assert math.isnan(test.ratio.low) and math.isnan(test.tost_interval.high) and math.isnan(test.p)
    assert test.verdict == INCONCLUSIVE


def test_tost_p_values_are_read_off_the_distribution_behind_the_intervals():
    rng = np.random.default_rng(2)
    reference = 100 + 8 * rng.standard_normal(5)
    for scale in (0.75, 0.85, 0.9, 1.0, 1.1, 1.15, 1.3):
        impl = scale * (100 + 8 * rng.standard_normal(5))
        interval, ratios = statistics.ratio_distribution(impl, reference, BOOT)
        assert (interval.low, interval.high) == pytest.approx(tuple(np.percentile(ratios, [2.5, 97.5])))
        test = statistics.ratio_test(impl, reference, BOOT)
        assert test.ratio == interval
        assert test.p_low == pytest.approx(np.mean(ratios <= 0.85))
        assert test.p_high == pytest.approx(np.mean(ratios >= 1.15))
        assert (test.tost_interval.low, test.tost_interval.high) == pytest.approx(
            tuple(np.percentile(ratios, [5, 95])))
        # each one-sided test rejects at 0.05 exactly when the 90% interval clears its side of the margin
        assert (test.p_low < 0.05) == (test.tost_interval.low > 0.85)
        assert (test.p_high < 0.05) == (test.tost_interval.high < 1.15)
        assert (test.p < 0.05) == (test.verdict == EQUIVALENT)


def test_ratio_refuses_a_reference_without_a_positive_mean_and_a_margin_without_one():
    with pytest.raises(ValueError, match="positive"):
        statistics.ratio_test([1.0, 2.0], [0.0, 0.0], BOOT)
    with pytest.raises(ValueError, match="contain 1"):
        statistics.ratio_test([1.0, 2.0], [1.0, 2.0], BOOT, margin=(1.05, 1.2))
    with pytest.raises(ValueError, match="finite"):
        statistics.ratio_test([1.0, float("nan")], [1.0, 2.0], BOOT)


def test_common_grid_ends_at_the_earliest_last_evaluation():
    np.testing.assert_array_equal(statistics.common_grid([20000, 8100, 8050], 2000), [0, 2000, 4000, 6000, 8000])
    np.testing.assert_array_equal(statistics.common_grid([20000, 20000], 4000), [0, 4000, 8000, 12000, 16000, 20000])
    with pytest.raises(ValueError, match="spacing"):
        statistics.common_grid([1000], 2000)


def test_grid_auc_interpolates_each_curve_onto_the_grid():
    grid = np.arange(0, 8001, 2000)
    # values on the grid 0, 50, 100, 100, 100: trapezoids 50k + 150k + 200k + 200k over 8,000 steps
    assert statistics.grid_auc([0, 4000, 8000], [0.0, 100.0, 100.0], grid) == pytest.approx(75.0)
    # a run evaluated off the grid (0, 9,024, 20,000) is read at the grid's steps
    grid = np.arange(0, 20001, 4000)
    values = np.interp(grid, [0, 9024, 20000], [0.0, 90.24, 200.0])  # a straight line, 0.01 per step
    assert statistics.grid_auc([0, 9024, 20000], [0.0, 90.24, 200.0], grid) == pytest.approx(100.0)
    assert values[-1] == pytest.approx(200.0)
    with pytest.raises(ValueError, match="outside"):
        statistics.grid_auc([0, 4000], [0.0, 1.0], np.arange(0, 8001, 4000))
