"""Anytime-valid statistics: exact values, dualities, and error rates in simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from shadowcanary.judge import sequential as seq


def _share(w: float, rho: float) -> float:
    return w * rho / (w * rho + 1 - w)


@pytest.mark.parametrize(
    ("c", "b", "w", "rho0", "rho1"),
    [
        (3, 1, 0.5, 1.0, 2.0),
        (0, 10, 0.1, 1.0, 3.0),
        (5, 20, 0.1, 1.2, 2.4),
        (7, 7, 0.3, 1.0, 1.5),
    ],
)
def test_count_e_process_matches_the_formula(
    c: int, b: int, w: float, rho0: float, rho1: float
) -> None:
    """One bucket, one alternative: E = (q1/q0)^c ((1-q1)/(1-q0))^b."""
    q0, q1 = _share(w, rho0), _share(w, rho1)
    expected = c * math.log(q1 / q0) + b * math.log((1 - q1) / (1 - q0))
    got = seq.count_log_e([c], [b], [w], rho0, multipliers=(rho1 / rho0,), weights=(1.0,))
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_count_e_process_mixes_alternatives_by_weight() -> None:
    """E is the prior-weighted sum of the per-alternative likelihood ratios."""
    singles = [seq.count_log_e([4], [6], [0.2], 1.0, (m,), (1.0,)) for m in (2.0, 4.0)]
    mixed = seq.count_log_e([4], [6], [0.2], 1.0, (2.0, 4.0), (0.25, 0.75))
    assert math.exp(mixed) == pytest.approx(
        0.25 * math.exp(singles[0]) + 0.75 * math.exp(singles[1])
    )


def test_count_e_process_does_not_depend_on_how_minutes_are_grouped() -> None:
    """Splitting a bucket into two at the same share gives the same evidence."""
    whole = seq.count_log_e([6], [30], [0.1])
    split = seq.count_log_e([2, 4], [10, 20], [0.1, 0.1])
    assert split == pytest.approx(whole)


def test_count_e_process_skips_uninformative_buckets() -> None:
    """Buckets without events, or where one arm had no traffic, carry no evidence."""
    base = seq.count_log_e([3], [5], [0.3])
    padded = seq.count_log_e([3, 0, 9, 4], [5, 0, 0, 2], [0.3, 0.3, 1.0, 0.0])
    assert padded == pytest.approx(base)
    assert seq.count_log_e([], [], []) == 0.0


def _simulate_crossings(
    pc: float, pb: float, weights: list[float], alpha: float, runs: int, seed: int
) -> np.ndarray:
    """Whether each simulated rollout's count e-process ever reached 1/alpha."""
    rng = np.random.default_rng(seed)
    minutes = len(weights)
    w = np.array(weights)
    canary_n = rng.binomial(600, w, size=(runs, minutes))
    baseline_n = 600 - canary_n
    c = rng.binomial(canary_n, pc)
    b = rng.binomial(baseline_n, pb)
    share = canary_n / 600
    crossed = np.zeros(runs, dtype=bool)
    for run in range(runs):
        for t in range(1, minutes + 1):
            if seq.count_log_e(c[run, :t], b[run, :t], share[run, :t]) >= -math.log(alpha):
                crossed[run] = True
                break
    return crossed


def test_count_e_process_rarely_rejects_an_a_a_rollout_while_the_split_moves() -> None:
    """A/A at 1 % errors, 10 -> 30 -> 50 %, checked every minute: rejections stay below alpha."""
    weights = [0.1] * 20 + [0.3] * 10 + [0.5] * 10
    crossed = _simulate_crossings(0.01, 0.01, weights, alpha=0.05, runs=400, seed=7)
    assert crossed.mean() <= 0.05


def test_count_e_process_detects_a_tripled_error_rate() -> None:
    """1 % -> 3 % at a 10 % canary is found within 40 minutes in nearly every run."""
    crossed = _simulate_crossings(0.03, 0.01, [0.1] * 40, alpha=0.004, runs=200, seed=11)
    assert crossed.mean() >= 0.95


@pytest.mark.parametrize(
    ("events", "trials", "p0"), [(3, 100, 0.01), (0, 500, 0.01), (12, 400, 0.02)]
)
def test_rate_e_process_matches_the_formula(events: int, trials: int, p0: float) -> None:
    """One-sample E = sum_k pi_k (p_k/p0)^x ((1-p_k)/(1-p0))^(n-x)."""
    mults, weights = (2.0, 5.0), (0.5, 0.5)
    terms = [
        w * (m * p0 / p0) ** events * ((1 - m * p0) / (1 - p0)) ** (trials - events)
        for m, w in zip(mults, weights, strict=True)
    ]
    got = seq.rate_log_e(events, trials, p0, mults, weights)
    assert math.exp(got) == pytest.approx(sum(terms), rel=1e-9)


def test_rate_e_process_holds_its_level_at_the_null_rate() -> None:
    """Sampling at exactly p0, the running e-value crosses 1/alpha in fewer than alpha of runs."""
    rng = np.random.default_rng(3)
    alpha, p0 = 0.05, 0.01
    draws = rng.binomial(100, p0, size=(600, 50)).cumsum(axis=1)
    crossed = [
        any(
            seq.rate_log_e(int(x), 100 * (t + 1), p0) >= -math.log(alpha) for t, x in enumerate(row)
        )
        for row in draws
    ]
    assert np.mean(crossed) <= alpha


@pytest.mark.parametrize(
    ("estimate", "variance", "null", "tau"),
    [(1.0, 0.1, 0.0, 1.0), (0.3, 0.01, 0.1, 0.2), (-2.0, 0.5, 0.0, 0.5)],
)
def test_msprt_matches_the_formula(
    estimate: float, variance: float, null: float, tau: float
) -> None:
    """log Lambda = 1/2 log(V/(V+tau^2)) + tau^2 (D-theta0)^2 / (2V(V+tau^2))."""
    expected = 0.5 * math.log(variance / (variance + tau**2)) + tau**2 * (estimate - null) ** 2 / (
        2 * variance * (variance + tau**2)
    )
    assert seq.msprt_log_lambda(estimate, variance, null, tau) == pytest.approx(expected)


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.001])
@pytest.mark.parametrize(("variance", "tau"), [(0.01, 0.1), (1e-5, 0.01), (4.0, 1.0)])
def test_confidence_sequence_is_the_inverted_msprt(
    alpha: float, variance: float, tau: float
) -> None:
    """At the edge of the CS the mSPRT statistic equals 1/alpha exactly."""
    radius = seq.mixture_radius(variance, tau, alpha)
    at_edge = seq.msprt_log_lambda(radius, variance, 0.0, tau)
    assert at_edge == pytest.approx(-math.log(alpha), rel=1e-9)
    assert seq.msprt_log_lambda(0.99 * radius, variance, 0.0, tau) < -math.log(alpha)


def test_confidence_sequence_covers_the_mean_at_all_times() -> None:
    """Normal data looked at after every observation: the CS misses the mean in < alpha of runs."""
    rng = np.random.default_rng(5)
    alpha, runs, steps = 0.05, 2000, 300
    means = rng.normal(0.0, 1.0, size=(runs, steps)).cumsum(axis=1) / np.arange(1, steps + 1)
    radii = np.array([seq.mixture_radius(1.0 / n, 0.5, alpha) for n in range(1, steps + 1)])
    missed = (np.abs(means) > radii).any(axis=1)
    assert missed.mean() <= alpha


@pytest.mark.parametrize("estimate", [-1.0, -0.1, 0.0, 0.2, 0.5, 1.5])
def test_one_sided_msprt_is_the_half_normal_mixture(estimate: float) -> None:
    """Lambda+ integrates the likelihood ratio over theta > theta0 with a half-normal prior."""
    variance, tau = 0.04, 0.3
    thetas = np.linspace(0, 8 * tau, 20001)
    lr = np.exp(thetas * estimate / variance - thetas**2 / (2 * variance))
    prior = 2 * stats.norm.pdf(thetas, scale=tau)
    numeric = np.trapezoid(lr * prior, thetas)
    got = seq.msprt_one_sided_log_lambda(estimate, variance, 0.0, tau)
    assert math.exp(got) == pytest.approx(numeric, rel=1e-4)


def test_one_sided_msprt_is_small_below_the_null() -> None:
    """An estimate far below the null is evidence of no harm: Lambda+ << 1 < Lambda."""
    assert seq.msprt_one_sided_log_lambda(-1.0, 0.01, 0.0, 0.5) < math.log(0.05)
    assert seq.msprt_log_lambda(-1.0, 0.01, 0.0, 0.5) > 5


@pytest.mark.parametrize(
    ("canary_share", "flag_share", "fires"),
    [
        (0.10, 0.10, False),
        (0.11, 0.10, False),
        (0.03, 0.10, True),
        (0.30, 0.10, True),
        (0.48, 0.50, False),
        (0.25, 0.50, True),
    ],
)
def test_sample_ratio_mismatch(canary_share: float, flag_share: float, fires: bool) -> None:
    """A split far outside the tolerance band is caught; small drift from sticky users is not."""
    minutes = 20
    canary = np.full(minutes, round(600 * canary_share))
    baseline = 600 - canary
    log_e = seq.sample_ratio_log_e(canary, baseline, np.full(minutes, flag_share), 1.5)
    assert (log_e >= -math.log(1e-4)) is fires


@pytest.mark.parametrize(
    ("events", "trials", "rate"), [(0, 10, 0.5), (5, 10, 0.25), (60, 60, 0.25), (3, 1000, 0.01)]
)
def test_binomial_tail(events: int, trials: int, rate: float) -> None:
    """P(X >= x) agrees with scipy's binomial survival function."""
    assert seq.binomial_tail(events, trials, rate) == pytest.approx(
        stats.binom.sf(events - 1, trials, rate), rel=1e-9
    )


def test_smoothed_rate_and_variance() -> None:
    """(x+1)/(n+2) keeps zero-event variances positive."""
    assert seq.smoothed_rate(0, 98) == pytest.approx(0.01)
    assert seq.rate_difference_variance(0, 1000, 0, 9000) > 0


def test_e_value_stays_finite() -> None:
    """Huge evidence is capped so a Decision serialises to standard JSON."""
    assert math.isfinite(seq.e_value(10_000.0))
    assert seq.e_value(0.0) == 1.0
