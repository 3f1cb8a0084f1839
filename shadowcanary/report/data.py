"""Turning store rows and audit entries into report figures: pure functions, no I/O.

``shadowcanary.report.load`` reads the rows; everything here is arithmetic on them, so
the cost projection, the percentiles and the step marks are unit-tested on plain
values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from shadowcanary.controller.policy import is_intent
from shadowcanary.report.model import (
    DAYS_PER_MONTH,
    QUANTILES,
    ArmCost,
    ArmSummary,
    CostProjection,
    SeriesPoint,
    SimilarityHistogram,
    StepMark,
    TriggerPoint,
    TriggerSeries,
)
from shadowcanary.rollout_records import AuditEntry
from shadowcanary.settings import ModelEndpoint
from shadowcanary.store.report_reads import LiveMinute
from shadowcanary.store.sketch import QuantileSketch, merge_all
from shadowcanary.store.totals import LiveTotals

# Bucket widths for the time charts, in minutes: the smallest giving at most MAX_POINTS.
BUCKET_CHOICES: tuple[int, ...] = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)
MAX_POINTS = 60
MINUTE = timedelta(minutes=1)


def choose_bucket_minutes(span: timedelta, max_points: int = MAX_POINTS) -> int:
    """The narrowest bucket that draws ``span`` in at most ``max_points`` points."""
    minutes = max(1, math.ceil(span / MINUTE))
    for choice in BUCKET_CHOICES:
        if math.ceil(minutes / choice) <= max_points:
            return choice
    return BUCKET_CHOICES[-1]


def arm_summary(arm: str, model: str, totals: LiveTotals) -> ArmSummary:
    """One arm's figures from its merged rollup totals (percentiles from the merged sketch)."""
    return ArmSummary(
        arm=arm,
        model=model,
        requests=totals.requests,
        failures=totals.failures,
        error_rate=totals.error_rate,
        latency_ms={q: totals.latency_quantile_ms(q) for q in QUANTILES},
        latency_mean_ms=totals.latency_mean_ms,
        prompt_tokens_per_request=_ratio(totals.prompt_tokens_sum, totals.tokens_n),
        completion_tokens_per_request=_ratio(totals.completion_tokens_sum, totals.tokens_n),
        observed_cost_per_request_usd=totals.cost_per_request_usd,
    )


def bucket_series(
    rows: Iterable[LiveMinute],
    arms: Sequence[str],
    since: datetime,
    until: datetime,
    bucket_minutes: int,
) -> dict[str, tuple[SeriesPoint, ...]]:
    """Per arm, one point per bucket from ``since`` to ``until``; empty buckets are gaps.

    Requests and failures add up; latency percentiles come from the bucket's merged
    sketches (never an average of per-minute percentiles, which is not a percentile).
    """
    width = timedelta(minutes=bucket_minutes)
    count = max(0, math.ceil((until - since) / width))
    requests: dict[tuple[str, int], int] = {}
    failures: dict[tuple[str, int], int] = {}
    sketches: dict[tuple[str, int], list[QuantileSketch]] = {}
    for row in rows:
        index = (row.minute - since) // width
        if not 0 <= index < count:
            continue
        key = (row.arm, index)
        requests[key] = requests.get(key, 0) + row.requests
        failures[key] = failures.get(key, 0) + row.failures
        sketches.setdefault(key, []).append(row.latency_sketch)
    series: dict[str, tuple[SeriesPoint, ...]] = {}
    for arm in arms:
        points = []
        for index in range(count):
            key = (arm, index)
            n = requests.get(key, 0)
            sketch = merge_all(sketches.get(key, []))
            points.append(
                SeriesPoint(
                    start=since + index * width,
                    requests=n,
                    error_rate=_ratio(failures.get(key, 0), n),
                    p50_ms=sketch.quantile(0.5),
                    p95_ms=sketch.quantile(0.95),
                    p99_ms=sketch.quantile(0.99),
                )
            )
        series[arm] = tuple(points)
    return series


def step_marks(entries: Sequence[AuditEntry]) -> tuple[StepMark, ...]:
    """Every change of the flag's percentage, oldest first (entries given oldest first).

    An entry that sets or observes the percentage it already had (a confirmation, a
    controller restart) is not a change and is not marked.
    """
    marks: list[StepMark] = []
    current: int | None = None
    for entry in entries:
        if entry.to_percent is None or entry.to_percent == current:
            continue
        marks.append(
            StepMark(
                at=entry.at,
                from_percent=current,
                to_percent=entry.to_percent,
                action=entry.action.value,
                actor=entry.actor,
                reason=entry.reason,
            )
        )
        current = entry.to_percent
    return tuple(marks)


def decision_entries(entries: Sequence[AuditEntry]) -> list[AuditEntry]:
    """Entries that carry a judge decision, without the controller's pre-change intents.

    An intent repeats the decision its confirming entry records a moment later; keeping
    both would draw every flag change twice.
    """
    return [e for e in entries if isinstance(e.decision, dict) and not is_intent(e)]


def trigger_series(entries: Sequence[AuditEntry]) -> tuple[TriggerSeries, ...]:
    """Each trigger's statistic and threshold per recorded decision, in first-seen order."""
    found: dict[str, dict[str, Any]] = {}
    points: dict[str, list[TriggerPoint]] = {}
    for entry in decision_entries(entries):
        for trigger in (entry.decision or {}).get("triggers") or ():
            if not isinstance(trigger, dict) or "name" not in trigger:
                continue
            name = str(trigger["name"])
            found[name] = trigger  # the newest configuration wins
            points.setdefault(name, []).append(
                TriggerPoint(
                    at=entry.at,
                    statistic=_number(trigger.get("statistic")) or 0.0,
                    threshold=_number(trigger.get("threshold")) or math.inf,
                    estimate=_number(trigger.get("estimate")),
                    lower=_number(trigger.get("lower")),
                    upper=_number(trigger.get("upper")),
                    verdict=str(trigger.get("verdict", "")),
                )
            )
    return tuple(
        TriggerSeries(
            name=name,
            kind=str(config.get("kind", "")),
            mode=str(config.get("mode", "")),
            margin=_number(config.get("margin")) or 0.0,
            alpha=_number(config.get("alpha")) or 0.0,
            points=tuple(points[name]),
        )
        for name, config in found.items()
    )


def arm_cost(
    arm: str,
    model: str,
    *,
    source: str,
    requests: int,
    prompt_tokens: float | None,
    completion_tokens: float | None,
    observed_cost_usd: float | None,
    price: ModelEndpoint | None,
) -> ArmCost:
    """Cost per request: average tokens times the configured price per million tokens.

    Without a configured price the recorded cost per request is used; without either
    (or without token counts) the cost is unknown, never zero.
    """
    cost: float | None = None
    price_source = "none"
    if price is not None and prompt_tokens is not None and completion_tokens is not None:
        cost = (
            prompt_tokens * price.input_usd_per_mtok + completion_tokens * price.output_usd_per_mtok
        ) / 1e6
        price_source = "settings"
    elif observed_cost_usd is not None:
        cost, price_source = observed_cost_usd, "observed"
    return ArmCost(
        arm=arm,
        model=model,
        source=source if requests else "none",
        requests=requests,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        input_usd_per_mtok=None if price is None else price.input_usd_per_mtok,
        output_usd_per_mtok=None if price is None else price.output_usd_per_mtok,
        cost_per_request_usd=cost,
        price_source=price_source,
    )


def project_monthly_cost(
    baseline: ArmCost,
    candidate: ArmCost,
    *,
    observed_requests: int,
    observed_since: datetime | None,
    observed_until: datetime | None,
    tenant: str | None = None,
) -> CostProjection:
    """requests/day observed x (candidate - baseline cost per request) x 30 days.

    The traffic is every live request of the rollout (of ``tenant`` when given), both
    arms (the flag only splits it), extrapolated from the observed span to a day.
    """
    per_day: float | None = None
    span: timedelta | None = None
    if observed_requests and observed_since is not None and observed_until is not None:
        # The span from the first call to the last, not whole minutes: a 132 s run
        # counted as 3 minutes would project 27 % low.
        span = observed_until - observed_since
        per_day = observed_requests / (span / timedelta(days=1)) if span > timedelta(0) else None
    b, c = baseline.cost_per_request_usd, candidate.cost_per_request_usd
    delta = None if b is None or c is None else c - b
    monthly = None if per_day is None else per_day * DAYS_PER_MONTH
    return CostProjection(
        baseline=baseline,
        candidate=candidate,
        observed_requests=observed_requests,
        observed_since=observed_since,
        observed_until=observed_until,
        requests_per_day=per_day,
        delta_per_request_usd=delta,
        baseline_monthly_usd=None if monthly is None or b is None else monthly * b,
        candidate_monthly_usd=None if monthly is None or c is None else monthly * c,
        monthly_delta_usd=None if monthly is None or delta is None else monthly * delta,
        assumption=_assumption(baseline, candidate, observed_requests, per_day, span, tenant),
    )


def _assumption(
    baseline: ArmCost,
    candidate: ArmCost,
    observed: int,
    per_day: float | None,
    span: timedelta | None,
    tenant: str | None,
) -> str:
    whose = "" if tenant is None else f" of tenant {tenant}"
    if per_day is not None and span is not None:
        traffic = (
            f"{observed:,} live requests{whose} observed (both arms) over "
            f"{describe_span(span)} (first call to last), i.e. {per_day:,.0f} requests/day"
        )
    elif observed:
        plural = "" if observed == 1 else "s"
        traffic = (
            f"{observed:,} live request{plural}{whose} observed, at one moment: too short "
            "a span to project from"
        )
    else:
        traffic = f"no live traffic{whose} observed yet"
    return (
        f"Projected monthly cost delta = requests/day x (candidate - baseline cost per "
        f"request) x {DAYS_PER_MONTH} days, {traffic}, assuming that traffic stays as observed "
        "and every request moves to the candidate at its observed tokens per request. "
        f"Cost per request = average prompt tokens x input price + average completion tokens "
        f"x output price (prices per million tokens from the settings' models; the recorded "
        f"cost when a model has no price). Baseline tokens: {_describe_source(baseline)}; "
        f"candidate tokens: {_describe_source(candidate)}. Counts are captured calls: with tap "
        "sampling below 1, divide requests/day by the sample rate."
    )


def describe_span(span: timedelta) -> str:
    """A time span as a person reads it: "2 min 12 s", "3 h 05 min", "1.5 s"."""
    seconds = span.total_seconds()
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours:02d} h {minutes:02d} min"
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _describe_source(cost: ArmCost) -> str:
    if cost.source == "live":
        return f"{cost.requests:,} live requests it served"
    if cost.source == "shadow":
        return f"{cost.requests:,} shadow replays of live prompts"
    return "none yet"


def similarity_histogram(
    counts: Mapping[str, Mapping[int, int]], means: Mapping[str, float], bins: int
) -> SimilarityHistogram:
    """Counts per bin (1-based, as SQL width_bucket numbers them) to a histogram."""
    candidate = tuple(counts.get("candidate", {}).get(i, 0) for i in range(1, bins + 1))
    noise = tuple(counts.get("noise", {}).get(i, 0) for i in range(1, bins + 1))
    return SimilarityHistogram(
        edges=tuple(round(i / bins, 10) for i in range(bins + 1)),
        candidate=candidate,
        noise=noise,
        candidate_n=sum(candidate),
        noise_n=sum(noise),
        candidate_mean=means.get("candidate"),
        noise_mean=means.get("noise"),
    )


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _number(value: Any) -> float | None:
    """A float from a JSON number or the strings to_jsonable writes for non-finite ones."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if value in ("Infinity", "-Infinity", "NaN"):
        return float(value)
    return None
