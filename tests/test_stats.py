"""Statistics across seeds, against hand-computed values and published t tables."""

from __future__ import annotations

import math

import pytest

from epx.stats import Interval, mean_interval, paired_difference, t_cdf, t_quantile, verdict

# two-sided 95% critical values t_{0.975, df} (any statistics table)
T975 = {1: 12.7062047, 2: 4.3026527, 3: 3.1824463, 4: 2.7764451, 9: 2.2621572, 29: 2.0452296,
        1000: 1.9623391}  # fmt: skip


@pytest.mark.parametrize("df", list(T975))
def test_t_quantile_matches_the_table(df):
    assert t_quantile(0.975, df) == pytest.approx(T975[df], abs=1e-6)
    assert t_quantile(0.025, df) == pytest.approx(-T975[df], abs=1e-6)
    assert t_cdf(T975[df], df) == pytest.approx(0.975, abs=1e-7)  # the table has 7 decimals


def test_t_cdf_is_symmetric_and_one_half_at_zero():
    assert t_cdf(0.0, 3) == 0.5
    assert t_cdf(-1.3, 5) == pytest.approx(1 - t_cdf(1.3, 5), abs=1e-12)
    # df = 1 is Cauchy: P(T <= 1) = 1/2 + atan(1)/pi = 0.75
    assert t_cdf(1.0, 1) == pytest.approx(0.75, abs=1e-12)


def test_mean_interval_by_hand():
    # 0.2, 0.4, 0.6: mean 0.4, sd sqrt((0.04 + 0 + 0.04) / 2) = 0.2, se 0.2 / sqrt(3) = 0.115470
    # half width t_{0.975, 2} * se = 4.302653 * 0.115470 = 0.496828
    got = mean_interval([0.2, 0.4, 0.6])
    assert got.n == 3 and got.mean == pytest.approx(0.4)
    assert got.low == pytest.approx(0.4 - 0.496828, abs=1e-6)
    assert got.high == pytest.approx(0.4 + 0.496828, abs=1e-6)


def test_one_value_has_no_interval_and_non_finite_values_are_left_out():
    one = mean_interval([0.5, float("nan"), None])
    assert one.n == 1 and one.mean == 0.5 and math.isnan(one.low) and math.isnan(one.high)
    assert mean_interval([]).n == 0


def test_paired_difference_pairs_by_seed_by_hand():
    baseline = {0: 0.30, 1: 0.50, 2: 0.40, 3: 0.90}  # seed 3 has no partner: left out
    method = {0: 0.35, 1: 0.52, 2: 0.47}
    # differences 0.05, 0.02, 0.07: mean 0.046667, sd sqrt(((0.003333)^2 + (0.026667)^2
    # + (0.023333)^2) / 2) = 0.025166, se 0.014530, half width 4.302653 * 0.014530 = 0.062517
    got = paired_difference(method, baseline)
    assert got.n == 3 and got.mean == pytest.approx(0.046667, abs=1e-6)
    assert got.low == pytest.approx(0.046667 - 0.062517, abs=1e-5)
    assert got.high == pytest.approx(0.046667 + 0.062517, abs=1e-5)
    # unpaired, the seed-to-seed spread of the baseline would swamp a consistent +0.05
    assert got.holds_zero()


def test_verdicts_say_within_noise_or_by_how_much():
    assert verdict(Interval(0.02, -0.01, 0.05, 3)).startswith("within seed noise (+0.02")
    assert verdict(Interval(0.02, 0.01, 0.03, 3)) == "better by 0.02 [+0.01, +0.03]"
    assert verdict(Interval(-0.02, -0.03, -0.01, 3)) == "worse by 0.02 [-0.03, -0.01]"
    assert verdict(Interval(-0.02, -0.03, -0.01, 3), higher_is_better=False).startswith("better")
    assert verdict(Interval(0.02, math.nan, math.nan, 1)) == "1 paired seed(s): too few for an interval"


def test_an_undefined_interval_holds_nothing():
    one = mean_interval([0.4])  # one seed: no interval, so no claim that it holds 0
    assert one.n == 1 and math.isnan(one.low) and not one.holds_zero()
