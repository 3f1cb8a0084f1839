"""share_dispersion: clustered events temper the count e-process; independent ones do not."""

from __future__ import annotations

import numpy as np
import pytest

from shadowcanary.judge import sequential as seq

W = 0.1  # canary share of each bucket
BUCKETS = 40


def _split(canary: list[float], baseline: list[float]) -> tuple[np.ndarray, np.ndarray]:
    reps = BUCKETS // len(canary)
    return np.tile(canary, reps), np.tile(baseline, reps)


CASES = [
    # Every minute splits its 10 events exactly at the canary's share: nothing varies.
    pytest.param([1.0], [9.0], None, 1.0, 1.0, id="exact-binomial-split"),
    # Same split at 3x the canary's rate: a regression, not clustering.
    pytest.param([2.5], [7.5], None, 1.0, 1.0, id="a-steady-regression-is-not-clustering"),
    # Chains of 3 events that land in one arm together: the split swings far more.
    pytest.param([0.0, 0.0, 3.0], [9.0, 12.0, 3.0], None, 2.0, 20.0, id="chains-of-three"),
]


@pytest.mark.parametrize(("canary", "baseline", "groups", "low", "high"), CASES)
def test_dispersion_sees_clusters_not_rates(
    canary: list[float], baseline: list[float], groups: None, low: float, high: float
) -> None:
    """phi is 1 for binomial splits (any rate ratio) and well above 1 for clustered events."""
    c, b = _split(canary, baseline)
    phi = seq.share_dispersion(c, b, np.full(len(c), W), groups)
    assert low <= phi <= high


def test_a_ratio_that_changes_between_steps_is_not_clustering() -> None:
    """Pearson is taken around each step's own ratio: a later regression does not inflate phi."""
    c = np.concatenate([np.full(20, 1.0), np.full(20, 5.0)])  # the canary at 9x from step 2
    b = np.concatenate([np.full(20, 9.0), np.full(20, 5.0)])
    steps = np.concatenate([np.zeros(20), np.ones(20)])
    assert seq.share_dispersion(c, b, np.full(40, W), steps) == pytest.approx(1.0)
    assert seq.share_dispersion(c, b, np.full(40, W)) > 1.0


def test_few_buckets_are_shrunk_towards_independence() -> None:
    """A few swinging minutes move phi only part of the way: it is shrunk towards 1."""
    c, b = np.array([0.0, 0.0, 3.0]), np.array([9.0, 12.0, 3.0])
    few = seq.share_dispersion(c, b, np.full(3, W))
    many = seq.share_dispersion(np.tile(c, 20), np.tile(b, 20), np.full(60, W))
    assert 1.0 < few < many


@pytest.mark.parametrize("phi", [1.0, 2.0, 3.0])
def test_dispersion_tempers_the_e_process(phi: float) -> None:
    """Each likelihood ratio is raised to 1/phi: the evidence for harm shrinks with phi."""
    c, b, w = np.full(30, 3.0), np.full(30, 9.0), np.full(30, W)
    plain = seq.count_log_e(c, b, w)
    tempered = seq.count_log_e(c, b, w, dispersion=phi)
    assert plain > 0
    assert tempered == pytest.approx(plain) if phi == 1.0 else tempered < plain


def test_tempering_keeps_chains_of_three_valid() -> None:
    """A/A with every event in a chain of 3: E stays a supermartingale (mean <= 1) at phi 3."""
    rng = np.random.default_rng(7)
    chains = rng.poisson(2.0, size=(4000, 60))  # chains per minute, 60 minutes per run
    in_canary = rng.binomial(chains, W)
    c, b = 3.0 * in_canary, 3.0 * (chains - in_canary)
    w = np.full(60, W)
    means = [
        np.mean([np.exp(seq.count_log_e(c[i], b[i], w, dispersion=d)) for i in range(4000)])
        for d in (1.0, 3.0)
    ]
    assert means[0] > 1.5  # untempered: chains break the guarantee
    assert means[1] <= 1.05  # tempered by the chain length: valid
