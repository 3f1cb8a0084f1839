"""The pass/fail gate of a compatibility suite, for CI.

Each check compares one figure with a configurable limit:

- **drop** per rate metric (success, valid, clean, expected, tool, similarity): the
  mean paired difference candidate - baseline must not fall below ``-max_drop``.
  Defaults follow the migration guides: errors and validity may drop 2 points,
  quality ("similarity", the guides' "quality - 10 %") 10 points.
- **schema**: every candidate answer of a schema case satisfies its schema.
- **min_similarity**: the share of cases whose candidate similarity is below the
  case's own minimum stays within ``max_below_min_similarity`` (default none).
- **latency / cost** (off unless a limit is set): relative increase of the mean.

By default a check uses the point estimate: a small suite has wide intervals and
would fail every candidate on its interval alone. ``use_confidence_bound`` makes
the gate demand evidence instead (non-inferiority): the pessimistic end of the
bootstrap interval must be within the limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from shadowcanary.suite.metrics import DEFAULT_MAX_DROPS, Metric
from shadowcanary.suite.scoring import CaseScore
from shadowcanary.suite.summary import MetricResult

# Floating-point slack, so a difference of exactly -max_drop passes.
_EPSILON = 1e-9


class CheckStatus(StrEnum):
    PASS = "pass"  # noqa: S105 - a check status, not a password
    FAIL = "fail"
    SKIPPED = "skipped"  # no case the check applies to


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """Limits of the gate; every field has a CLI option."""

    max_drops: Mapping[Metric, float] = field(default_factory=lambda: dict(DEFAULT_MAX_DROPS))
    max_below_min_similarity: float = 0.0
    require_schema_valid: bool = True
    max_latency_increase: float | None = None  # relative: 0.10 is +10 %
    max_cost_increase: float | None = None
    use_confidence_bound: bool = False


@dataclass(frozen=True, slots=True)
class GateCheck:
    name: str
    status: CheckStatus
    observed: float | None
    limit: float
    detail: str


@dataclass(frozen=True, slots=True)
class GateResult:
    checks: tuple[GateCheck, ...]

    @property
    def passed(self) -> bool:
        return all(check.status is not CheckStatus.FAIL for check in self.checks)

    @property
    def failed(self) -> list[GateCheck]:
        return [check for check in self.checks if check.status is CheckStatus.FAIL]


def _status(ok: bool) -> CheckStatus:
    return CheckStatus.PASS if ok else CheckStatus.FAIL


def _drop_check(result: MetricResult | None, metric: Metric, policy: GatePolicy) -> GateCheck:
    limit = policy.max_drops[metric]
    name = f"{metric.value} drop"
    if result is None or result.paired is None:
        why = "no case has both arms' values"
        if metric is Metric.SIMILARITY and result is not None:
            why = "no noise floor (one baseline answer per case): use --min-similarity"
        return GateCheck(name, CheckStatus.SKIPPED, None, limit, why)
    stat = result.paired
    interval = stat.difference
    estimate = interval.low if policy.use_confidence_bound else interval.mean
    detail = (
        f"candidate {stat.candidate_mean:.3f} vs baseline {stat.baseline_mean:.3f}: "
        f"Δ {interval.mean:+.3f} ({interval.confidence:.0%} CI {interval.low:+.3f}.."
        f"{interval.high:+.3f}, Wilcoxon p={stat.p_value:.3g}, n={stat.n})"
    )
    return GateCheck(name, _status(estimate >= -limit - _EPSILON), estimate, -limit, detail)


def _increase_check(
    result: MetricResult | None, name: str, limit: float, policy: GatePolicy
) -> GateCheck:
    if result is None or result.paired is None or result.paired.baseline_mean <= 0:
        return GateCheck(name, CheckStatus.SKIPPED, None, limit, "no paired values")
    stat = result.paired
    worst = stat.difference.high if policy.use_confidence_bound else stat.difference.mean
    relative = worst / stat.baseline_mean
    detail = f"candidate {stat.candidate_mean:.4g} vs baseline {stat.baseline_mean:.4g}"
    return GateCheck(name, _status(relative <= limit + _EPSILON), relative, limit, detail)


def _schema_check(scores: Sequence[CaseScore]) -> GateCheck:
    checked = sum(s.schema_checked for s in scores)
    if checked == 0:
        return GateCheck("schema valid", CheckStatus.SKIPPED, None, 0, "no schema cases answered")
    failing = [s for s in scores if s.schema_failures]
    failures = sum(s.schema_failures for s in failing)
    detail = f"{failures}/{checked} candidate answers break their schema"
    if failing:
        detail += f" (cases: {', '.join(s.case.case_id for s in failing[:5])})"
    if baseline_failures := sum(s.baseline_schema_failures for s in scores):
        # Not a regression, still a broken contract: the prompt or the schema needs a fix.
        detail += f"; the baseline breaks it too in {baseline_failures} answers"
    return GateCheck("schema valid", _status(failures == 0), failures, 0, detail)


def _min_similarity_check(scores: Sequence[CaseScore], limit: float) -> GateCheck:
    name = "below min similarity"
    applicable = [
        s
        for s in scores
        if s.case.expect.min_similarity is not None and Metric.SIMILARITY in s.candidate.values
    ]
    if not applicable:
        return GateCheck(name, CheckStatus.SKIPPED, None, limit, "no case sets min_similarity")
    below = [s for s in applicable if s.below_min_similarity]
    share = len(below) / len(applicable)
    detail = f"{len(below)}/{len(applicable)} cases below their minimum"
    if below:
        detail += f" (cases: {', '.join(s.case.case_id for s in below[:5])})"
    return GateCheck(name, _status(share <= limit + _EPSILON), share, limit, detail)


def evaluate_gate(
    scores: Sequence[CaseScore], metrics: Sequence[MetricResult], policy: GatePolicy
) -> GateResult:
    """Every check of ``policy`` on the suite's results."""
    by_metric = {result.metric: result for result in metrics}
    checks = [_drop_check(by_metric.get(metric), metric, policy) for metric in policy.max_drops]
    if policy.require_schema_valid:
        checks.append(_schema_check(scores))
    checks.append(_min_similarity_check(scores, policy.max_below_min_similarity))
    if policy.max_latency_increase is not None:
        checks.append(
            _increase_check(
                by_metric.get(Metric.LATENCY_MS),
                "latency increase",
                policy.max_latency_increase,
                policy,
            )
        )
    if policy.max_cost_increase is not None:
        checks.append(
            _increase_check(
                by_metric.get(Metric.COST_USD), "cost increase", policy.max_cost_increase, policy
            )
        )
    return GateResult(tuple(checks))
