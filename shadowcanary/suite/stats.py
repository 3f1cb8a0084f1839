"""Paired statistics of candidate vs baseline on the same cases.

For each metric a case contributes one value per arm (its mean over the repeats);
the paired difference ``d_i = candidate_i - baseline_i`` removes the between-case
spread (an easy prompt is easy for both models), which is what makes a suite of a
few dozen prompts informative at all. Two views of the same differences:

- a percentile **bootstrap** confidence interval of the mean difference, from a
  seeded numpy generator (the same suite and seed give the same interval), and
- the **Wilcoxon signed-rank** test (scipy), two-sided, zero differences dropped
  (``zero_method="wilcox"``): no normality assumption, robust to a few outliers.
  The gate uses the interval; the p-value says how surprising the difference is.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

DEFAULT_RESAMPLES = 10_000
DEFAULT_CONFIDENCE = 0.95
# Resamples drawn per block: bounds memory at ~8 MB of indices for any suite size.
_BLOCK_CELLS = 1_000_000
# Up to this many non-zero differences without ties, the exact distribution is cheap.
_EXACT_MAX_N = 50


@dataclass(frozen=True, slots=True)
class MeanInterval:
    """A mean with its bootstrap confidence interval."""

    n: int
    mean: float
    low: float
    high: float
    confidence: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True, slots=True)
class PairedStat:
    """Candidate vs baseline on ``n`` cases that both arms answered."""

    n: int
    baseline_mean: float
    candidate_mean: float
    difference: MeanInterval  # of candidate - baseline
    p_value: float  # Wilcoxon signed-rank, two-sided; 1.0 when every difference is 0


def bootstrap_mean(
    values: Sequence[float],
    *,
    seed: int,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> MeanInterval:
    """Percentile bootstrap interval of the mean of ``values``.

    Raises:
        ValueError: no values, a non-finite value, or a confidence outside (0, 1).
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("bootstrap of an empty sample")
    if not np.all(np.isfinite(data)):
        raise ValueError("bootstrap sample has NaN or infinite values")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    mean = float(data.mean())
    if data.size == 1 or float(data.min()) == float(data.max()):
        return MeanInterval(int(data.size), mean, mean, mean, confidence)
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // data.size)
    means = []
    for start in range(0, resamples, block):
        count = min(block, resamples - start)
        indices = rng.integers(0, data.size, size=(count, data.size))
        means.append(data[indices].mean(axis=1))
    all_means = np.concatenate(means)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(all_means, [tail, 1.0 - tail])
    return MeanInterval(int(data.size), mean, float(low), float(high), confidence)


def wilcoxon_p_value(differences: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of ``differences`` around 0.

    1.0 when no difference is non-zero (nothing to test). Exact for up to 50 non-zero
    differences without ties, the tie-corrected normal approximation otherwise. With
    fewer than six non-zero differences no p-value can fall below 0.05.
    """
    data = np.asarray(differences, dtype=float)
    data = data[data != 0.0]  # zero_method="wilcox", done here to choose the method
    if data.size == 0:
        return 1.0
    magnitudes = np.abs(data)
    # Exact null distribution for small samples without ties; otherwise the normal
    # approximation with tie correction. (scipy's "auto" falls back to a permutation
    # test for small tied samples: seconds per call, and rate metrics are all ties.)
    exact = data.size <= _EXACT_MAX_N and np.unique(magnitudes).size == data.size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=RuntimeWarning)
        result = scipy_stats.wilcoxon(
            data,
            zero_method="wilcox",
            alternative="two-sided",
            method="exact" if exact else "asymptotic",
        )
    p_value = float(result.pvalue)
    return 1.0 if math.isnan(p_value) else p_value


def paired_stat(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    seed: int,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> PairedStat:
    """Bootstrap interval and Wilcoxon test of ``candidate - baseline``, pair by pair.

    Raises:
        ValueError: the two sequences differ in length or are empty.
    """
    if len(baseline) != len(candidate):
        raise ValueError(f"paired samples differ in size: {len(baseline)} vs {len(candidate)}")
    base = np.asarray(baseline, dtype=float)
    cand = np.asarray(candidate, dtype=float)
    differences = cand - base
    return PairedStat(
        n=len(differences),
        baseline_mean=float(base.mean()) if base.size else math.nan,
        candidate_mean=float(cand.mean()) if cand.size else math.nan,
        difference=bootstrap_mean(
            differences.tolist(), seed=seed, resamples=resamples, confidence=confidence
        ),
        p_value=wilcoxon_p_value(differences.tolist()),
    )
