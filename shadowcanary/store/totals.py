"""What the store reports: merged rollup totals, headline figures and row counts.

Plain values, no I/O: the controller hands these to the judge, the CLI prints them.
Sums and square sums are kept (not means) so callers can derive means, variances and
confidence bounds themselves and merge totals further.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from shadowcanary.events import Arm
from shadowcanary.shadow_results import ReplayKind
from shadowcanary.store.sketch import QuantileSketch


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _variance(n: float, total: float, sq_total: float) -> float | None:
    """Sample variance from n, sum and sum of squares (None below two values)."""
    if n < 2:
        return None
    # max(): rounding can push a zero variance a hair below zero.
    return max(0.0, (sq_total - total * total / n) / (n - 1))


@dataclass(frozen=True, slots=True)
class LiveTotals:
    """Live outcomes of one arm, merged over a set of minute buckets."""

    buckets: int = 0
    requests: int = 0
    failures: int = 0
    errors: int = 0
    timeouts: int = 0
    rate_limited: int = 0
    cancelled: int = 0
    assessed: int = 0
    truncated: int = 0
    refusals: int = 0
    empty: int = 0
    json_expected: int = 0
    json_invalid: int = 0
    tool_schema_invalid: int = 0
    tool_unknown: int = 0
    latency_sum: float = 0.0
    latency_sq_sum: float = 0.0
    ttft_n: int = 0
    ttft_sum: float = 0.0
    ttft_sq_sum: float = 0.0
    tokens_n: int = 0
    prompt_tokens_sum: int = 0
    completion_tokens_sum: int = 0
    completion_tokens_sq_sum: float = 0.0
    cost_n: int = 0
    cost_usd_sum: float = 0.0
    cost_usd_sq_sum: float = 0.0
    outcomes_reported: int = 0
    tasks_reported: int = 0
    tasks_abandoned: int = 0
    outcomes_negative: int = 0
    outcomes_escalated: int = 0
    outcome_value_n: int = 0
    outcome_value_sum: float = 0.0
    outcome_value_sq_sum: float = 0.0
    outcome_updates: int = 0
    latency_sketch: QuantileSketch = field(default_factory=QuantileSketch)
    ttft_sketch: QuantileSketch = field(default_factory=QuantileSketch)

    @property
    def error_rate(self) -> float | None:
        """Share of requests whose status was not ok."""
        return _ratio(self.failures, self.requests)

    @property
    def latency_mean_ms(self) -> float | None:
        return _ratio(self.latency_sum, self.requests)

    @property
    def latency_variance(self) -> float | None:
        return _variance(self.requests, self.latency_sum, self.latency_sq_sum)

    def latency_quantile_ms(self, q: float) -> float | None:
        return self.latency_sketch.quantile(q)

    def ttft_quantile_ms(self, q: float) -> float | None:
        return self.ttft_sketch.quantile(q)

    @property
    def cost_per_request_usd(self) -> float | None:
        """Mean cost over the requests that reported a cost."""
        return _ratio(self.cost_usd_sum, self.cost_n)

    @property
    def completion_rate(self) -> float | None:
        """Completed tasks among the calls whose service reported a task outcome."""
        return _ratio(self.tasks_reported - self.tasks_abandoned, self.tasks_reported)


@dataclass(frozen=True, slots=True)
class ShadowTotals:
    """Replays and comparisons of one kind, merged over a set of minute buckets."""

    buckets: int = 0
    replays: int = 0
    other_failed: int = 0
    skipped_budget: int = 0
    n: int = 0
    exact_matches: int = 0
    normalized_matches: int = 0
    lexical_sum: float = 0.0
    lexical_sq_sum: float = 0.0
    embedding_n: int = 0
    embedding_sum: float = 0.0
    embedding_sq_sum: float = 0.0
    other_empty: int = 0
    other_truncated: int = 0
    other_refusal: int = 0
    other_json_invalid: int = 0
    other_tool_schema_invalid: int = 0
    other_tool_unknown: int = 0
    tool_compared_n: int = 0
    tool_name_disagree: int = 0
    tool_args_disagree: int = 0
    latency_delta_n: int = 0
    latency_delta_sum: float = 0.0
    latency_delta_sq_sum: float = 0.0
    cost_delta_n: int = 0
    cost_delta_sum: float = 0.0
    completion_token_delta_n: int = 0
    completion_token_delta_sum: int = 0
    paired_n: int = 0
    paired_diff_sum: float = 0.0
    paired_diff_sq_sum: float = 0.0

    @property
    def lexical_mean(self) -> float | None:
        return _ratio(self.lexical_sum, self.n)

    @property
    def lexical_variance(self) -> float | None:
        return _variance(self.n, self.lexical_sum, self.lexical_sq_sum)

    @property
    def paired_diff_mean(self) -> float | None:
        """Mean of D = candidate - noise lexical similarity over paired events."""
        return _ratio(self.paired_diff_sum, self.paired_n)

    @property
    def paired_diff_variance(self) -> float | None:
        return _variance(self.paired_n, self.paired_diff_sum, self.paired_diff_sq_sum)

    @property
    def failure_rate(self) -> float | None:
        """Share of attempted (not budget-skipped) replays that failed."""
        return _ratio(self.other_failed, self.replays - self.skipped_budget)


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """How much the store has seen (from the rollups, so it stays cheap at any size)."""

    captured: Mapping[Arm, int]
    replayed_ok: int
    replayed_failed: int
    replayed_skipped_budget: int
    compared: int
    dead_lettered: int

    @property
    def captured_total(self) -> int:
        return sum(self.captured.values())

    @property
    def replayed_total(self) -> int:
        return self.replayed_ok + self.replayed_failed + self.replayed_skipped_budget


@dataclass(frozen=True, slots=True)
class ArmHeadline:
    """The live figures of one arm an operator looks at first."""

    requests: int
    error_rate: float | None
    p50_latency_ms: float | None
    p99_latency_ms: float | None
    cost_per_request_usd: float | None

    @classmethod
    def of(cls, totals: LiveTotals) -> ArmHeadline:
        return cls(
            requests=totals.requests,
            error_rate=totals.error_rate,
            p50_latency_ms=totals.latency_quantile_ms(0.5),
            p99_latency_ms=totals.latency_quantile_ms(0.99),
            cost_per_request_usd=totals.cost_per_request_usd,
        )


@dataclass(frozen=True, slots=True)
class Headline:
    """Shadow quality against the noise floor, and live health per arm."""

    rollout: str | None
    candidate_lexical_mean: float | None
    noise_lexical_mean: float | None
    paired_n: int
    paired_diff_mean: float | None
    # Standard error of paired_diff_mean; None below two pairs.
    paired_diff_stderr: float | None
    compared: Mapping[ReplayKind, int]
    arms: Mapping[Arm, ArmHeadline]

    @classmethod
    def of(
        cls,
        rollout: str | None,
        shadow: Mapping[ReplayKind, ShadowTotals],
        live: Mapping[Arm, LiveTotals],
    ) -> Headline:
        candidate = shadow[ReplayKind.CANDIDATE]
        variance = candidate.paired_diff_variance
        return cls(
            rollout=rollout,
            candidate_lexical_mean=candidate.lexical_mean,
            noise_lexical_mean=shadow[ReplayKind.NOISE].lexical_mean,
            paired_n=candidate.paired_n,
            paired_diff_mean=candidate.paired_diff_mean,
            paired_diff_stderr=None
            if variance is None
            else math.sqrt(variance / candidate.paired_n),
            compared={kind: totals.n for kind, totals in shadow.items()},
            arms={arm: ArmHeadline.of(totals) for arm, totals in live.items()},
        )
