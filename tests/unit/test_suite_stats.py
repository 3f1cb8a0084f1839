"""Paired statistics of the compatibility suite: bootstrap intervals and Wilcoxon tests."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from shadowcanary.suite.stats import bootstrap_mean, paired_stat, wilcoxon_p_value


def _rng_values(seed: int, n: int, mean: float, sd: float) -> list[float]:
    return np.random.default_rng(seed).normal(mean, sd, n).tolist()


@pytest.mark.parametrize("shift", [-0.3, -0.1, 0.1, 0.3])
def test_known_difference_gives_an_interval_excluding_zero(shift: float) -> None:
    """A real shift between arms yields a CI that excludes 0 and contains the shift."""
    baseline = _rng_values(1, 40, 0.8, 0.1)
    noise = _rng_values(2, 40, 0.0, 0.02)
    candidate = [b + shift + e for b, e in zip(baseline, noise, strict=True)]
    stat = paired_stat(baseline, candidate, seed=0)
    assert not stat.difference.contains(0.0)
    assert stat.difference.contains(shift)
    assert stat.p_value < 1e-6
    assert stat.candidate_mean - stat.baseline_mean == pytest.approx(stat.difference.mean)


def test_identical_arms_give_a_zero_interval_and_p_one() -> None:
    """Identical values: every difference is 0, the CI is [0, 0] and p is 1."""
    values = _rng_values(3, 25, 0.9, 0.05)
    stat = paired_stat(values, values, seed=0)
    assert (stat.difference.low, stat.difference.mean, stat.difference.high) == (0.0, 0.0, 0.0)
    assert stat.difference.contains(0.0)
    assert stat.p_value == 1.0


def test_pure_noise_gives_an_interval_containing_zero() -> None:
    """Zero-mean differences: the CI contains 0 and the test finds nothing."""
    baseline = _rng_values(4, 60, 0.7, 0.1)
    candidate = [b + e for b, e in zip(baseline, _rng_values(5, 60, 0.0, 0.05), strict=True)]
    stat = paired_stat(baseline, candidate, seed=0)
    assert stat.difference.contains(0.0)
    assert stat.p_value > 0.05


def test_bootstrap_is_reproducible_with_its_seed() -> None:
    """The same seed gives the same interval; another seed a slightly different one."""
    values = _rng_values(6, 30, 0.0, 1.0)
    first = bootstrap_mean(values, seed=7)
    assert bootstrap_mean(values, seed=7) == first
    other = bootstrap_mean(values, seed=8)
    assert other != first
    assert other.low == pytest.approx(first.low, abs=0.1)


def test_wider_confidence_gives_a_wider_interval() -> None:
    """A 99 % interval contains the 90 % one."""
    values = _rng_values(9, 30, 0.2, 1.0)
    narrow = bootstrap_mean(values, seed=0, confidence=0.90)
    wide = bootstrap_mean(values, seed=0, confidence=0.99)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_bootstrap_interval_matches_the_normal_approximation_for_large_samples() -> None:
    """For n=400 the percentile interval is close to mean ± 1.96·sd/√n."""
    values = _rng_values(10, 400, 1.0, 2.0)
    interval = bootstrap_mean(values, seed=0)
    half_width = 1.96 * np.std(values, ddof=1) / np.sqrt(len(values))
    assert interval.high - interval.low == pytest.approx(2 * half_width, rel=0.1)


def test_bootstrap_handles_suites_larger_than_one_block() -> None:
    """A large sample is resampled in blocks and still gives a tight interval."""
    values = _rng_values(11, 5_000, 0.5, 0.1)
    interval = bootstrap_mean(values, seed=0, resamples=2_000)
    assert interval.contains(0.5)
    assert interval.high - interval.low < 0.01


@pytest.mark.parametrize(
    ("differences", "expected"),
    [
        # Ten positive differences: the exact two-sided p is 2 / 2**10.
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 2 / 2**10),
        ([-1, -2, -3, -4, -5, -6], 2 / 2**6),
        # Perfectly balanced signs and ranks: no evidence at all.
        ([-1.0, 1.0], 1.0),
        # Zeros are dropped (zero_method="wilcox"): same as the four non-zero ones.
        ([0, 0, 0, 0.5, 0.6, 0.7, 0.8], 2 / 2**4),
        ([0.0, 0.0, 0.0], 1.0),
    ],
)
def test_wilcoxon_p_values(differences: list[float], expected: float) -> None:
    """Exact signed-rank p-values for small samples; 1.0 when nothing differs."""
    assert wilcoxon_p_value(differences) == pytest.approx(expected)


def test_wilcoxon_agrees_with_scipy_exact_without_ties() -> None:
    """Mixed signs, no ties: scipy's exact two-sided signed-rank p-value."""
    differences = [0.3, -0.1, 0.25, 0.4, -0.05, 0.2, 0.15, 0.35, -0.22, 0.12, 0.45, 0.07]
    expected = scipy_stats.wilcoxon(differences, method="exact").pvalue
    assert wilcoxon_p_value(differences) == pytest.approx(expected)
    assert 0.0 < wilcoxon_p_value(differences) < 0.05


def test_wilcoxon_uses_the_tie_corrected_approximation_for_rates() -> None:
    """Rate differences are full of ties: the normal approximation, fast and in (0, 1)."""
    differences = [1 / 3, 1 / 3, 2 / 3, 0.0, -1 / 3, 1 / 3, 1.0, 1 / 3, 0.0, 2 / 3]
    expected = scipy_stats.wilcoxon(differences, method="asymptotic").pvalue
    assert wilcoxon_p_value(differences) == pytest.approx(expected)
    assert 0.0 < wilcoxon_p_value(differences) < 0.05


def test_single_pair_has_a_degenerate_interval() -> None:
    """One case: the interval is the one difference."""
    stat = paired_stat([0.5], [0.2], seed=0)
    assert (stat.n, stat.difference.low, stat.difference.high) == (
        1,
        pytest.approx(-0.3),
        pytest.approx(-0.3),
    )


@pytest.mark.parametrize(
    ("baseline", "candidate", "message"),
    [([1.0], [1.0, 2.0], "differ in size"), ([], [], "empty"), ([1.0], [float("nan")], "NaN")],
)
def test_bad_samples_are_rejected(
    baseline: list[float], candidate: list[float], message: str
) -> None:
    """Mismatched, empty or NaN samples raise instead of giving a meaningless interval."""
    with pytest.raises(ValueError, match=message):
        paired_stat(baseline, candidate, seed=0)
