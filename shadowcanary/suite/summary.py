"""Per-metric statistics over all cases: paired where both arms have a value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shadowcanary.suite.metrics import Metric
from shadowcanary.suite.scoring import CaseScore
from shadowcanary.suite.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    MeanInterval,
    PairedStat,
    bootstrap_mean,
    paired_stat,
)


@dataclass(frozen=True, slots=True)
class MetricResult:
    """One metric across the suite."""

    metric: Metric
    cases: int  # cases where the candidate has a value
    paired: PairedStat | None  # over cases where both arms have one
    # The candidate's mean alone, when no case has a baseline value (e.g. similarity
    # of replayed captures: one recorded baseline answer gives no noise floor).
    candidate_only: MeanInterval | None = None

    @property
    def candidate_mean(self) -> float | None:
        if self.paired is not None:
            return self.paired.candidate_mean
        return self.candidate_only.mean if self.candidate_only is not None else None


def summarise(
    scores: Sequence[CaseScore],
    *,
    seed: int,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
) -> list[MetricResult]:
    """A ``MetricResult`` for every metric that has at least one candidate value."""
    results = []
    for index, metric in enumerate(Metric):
        pairs = [
            (s.baseline.values[metric], s.candidate.values[metric])
            for s in scores
            if metric in s.baseline.values and metric in s.candidate.values
        ]
        candidate_values = [
            s.candidate.values[metric] for s in scores if metric in s.candidate.values
        ]
        if not candidate_values:
            continue
        # One seed per metric: adding a metric does not shift the others' intervals.
        metric_seed = seed + index
        paired = None
        alone = None
        if pairs:
            paired = paired_stat(
                [b for b, _ in pairs],
                [c for _, c in pairs],
                seed=metric_seed,
                resamples=resamples,
                confidence=confidence,
            )
        else:
            alone = bootstrap_mean(
                candidate_values, seed=metric_seed, resamples=resamples, confidence=confidence
            )
        results.append(MetricResult(metric, len(candidate_values), paired, alone))
    return results
