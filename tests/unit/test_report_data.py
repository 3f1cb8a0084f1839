"""Report data assembly: cost projection, percentiles per bucket, step marks, trigger series."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shadowcanary.report.axes import log_ticks, nice_ticks, time_ticks
from shadowcanary.report.charts import Line, Mark, time_chart
from shadowcanary.report.data import (
    arm_cost,
    arm_summary,
    bucket_series,
    choose_bucket_minutes,
    project_monthly_cost,
    similarity_histogram,
    step_marks,
    trigger_series,
)
from shadowcanary.report.model import ArmCost
from shadowcanary.rollout_records import AuditAction, AuditEntry
from shadowcanary.settings import ModelEndpoint
from shadowcanary.store.report_reads import LiveMinute
from shadowcanary.store.sketch import QuantileSketch
from shadowcanary.store.totals import LiveTotals

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def _cost(
    model: str,
    prompt: float | None,
    completion: float | None,
    price: tuple[float, float] | None,
) -> ArmCost:
    endpoint = (
        None
        if price is None
        else ModelEndpoint(input_usd_per_mtok=price[0], output_usd_per_mtok=price[1])
    )
    return arm_cost(
        "x",
        model,
        source="live",
        requests=100,
        prompt_tokens=prompt,
        completion_tokens=completion,
        observed_cost_usd=None,
        price=endpoint,
    )


@pytest.mark.parametrize(
    ("prompt", "completion", "price", "expected"),
    [
        # The cost table of the GPT-5.2 -> 5.5 guide: tokens x price per token.
        (125, 200, (2.0, 2.5), 125 * 2.0e-6 + 200 * 2.5e-6),
        (121, 196, (2.2, 2.6), 121 * 2.2e-6 + 196 * 2.6e-6),
        (62, 48, (1.75, 14.0), (62 * 1.75 + 48 * 14.0) / 1e6),
        (62, 48, (0.0, 0.0), 0.0),  # a self-hosted model configured at no price
        (None, 48, (1.75, 14.0), None),  # no token counts: unknown, not zero
        (62, 48, None, None),  # no price and no recorded cost: unknown
    ],
)
def test_cost_per_request_is_tokens_times_price(
    prompt: float | None,
    completion: float | None,
    price: tuple[float, float] | None,
    expected: float | None,
) -> None:
    """Cost per request = prompt tokens x input price + completion tokens x output price."""
    got = _cost("m", prompt, completion, price).cost_per_request_usd
    assert got == (None if expected is None else pytest.approx(expected))


def test_recorded_cost_is_the_fallback_without_a_price() -> None:
    """A model with no configured price uses the cost the tap recorded per request."""
    cost = arm_cost(
        "candidate",
        "vendor-x",
        source="shadow",
        requests=40,
        prompt_tokens=100.0,
        completion_tokens=50.0,
        observed_cost_usd=0.0031,
        price=None,
    )
    assert cost.cost_per_request_usd == 0.0031
    assert cost.price_source == "observed" and cost.source == "shadow"


def _arm(cost: float | None) -> ArmCost:
    return ArmCost("a", "m", "live", 10, 1.0, 1.0, 1.0, 1.0, cost, "settings")


@pytest.mark.parametrize(
    ("requests", "span", "base", "cand", "per_day", "monthly_delta"),
    [
        # The guide's 5M calls a month, seen as one day of traffic.
        (166_667, timedelta(days=1), 0.00075, 0.0007758, 166_667, 166_667 * 30 * 0.0000258),
        # 1,000 requests in 6 hours -> 4,000/day; +$0.001 each -> +$120 a month.
        (1_000, timedelta(hours=6), 0.002, 0.003, 4_000, 120.0),
        # A cheaper candidate is a negative delta.
        (1_440, timedelta(days=1), 0.003, 0.001, 1_440, -86.4),
        # No traffic yet: nothing to project.
        (0, None, 0.002, 0.003, None, None),
        # Traffic but no candidate price: the delta is unknown.
        (500, timedelta(hours=1), 0.002, None, 12_000, None),
    ],
)
def test_monthly_cost_projection(
    requests: int,
    span: timedelta | None,
    base: float,
    cand: float | None,
    per_day: float | None,
    monthly_delta: float | None,
) -> None:
    """requests/day observed x (candidate - baseline cost per request) x 30."""
    projection = project_monthly_cost(
        _arm(base),
        _arm(cand),
        observed_requests=requests,
        observed_since=None if span is None else T0,
        observed_until=None if span is None else T0 + span,
    )
    assert projection.requests_per_day == (None if per_day is None else pytest.approx(per_day))
    if monthly_delta is None:
        assert projection.monthly_delta_usd is None
    else:
        assert projection.monthly_delta_usd == pytest.approx(monthly_delta)
        assert projection.candidate_monthly_usd is not None
        assert projection.baseline_monthly_usd is not None
        spread = projection.candidate_monthly_usd - projection.baseline_monthly_usd
        assert spread == pytest.approx(monthly_delta)
    assert "x 30 days" in projection.assumption


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(seconds=132), "2 min 12 s"),
        (timedelta(seconds=2.5), "2.5 s"),
        (timedelta(seconds=45), "45 s"),
        (timedelta(hours=3, minutes=5), "3 h 05 min 00 s"),
        (timedelta(days=2, hours=1), "2 d 01 h 00 min"),
    ],
)
def test_the_assumption_names_the_observed_span(span: timedelta, text: str) -> None:
    """The cost assumption says over how long a span the requests/day were observed."""
    projection = project_monthly_cost(
        _arm(0.001), _arm(0.002), observed_requests=100, observed_since=T0, observed_until=T0 + span
    )
    assert f"100 live requests observed (both arms) over {text} (first call to last)" in (
        projection.assumption
    )


def test_one_instant_of_traffic_is_not_projected() -> None:
    """Calls all at one moment give no rate: no projection, and the assumption says why."""
    projection = project_monthly_cost(
        _arm(0.001), _arm(0.002), observed_requests=1, observed_since=T0, observed_until=T0
    )
    assert projection.requests_per_day is None and projection.monthly_delta_usd is None
    assert "too short a span to project from" in projection.assumption


@pytest.mark.parametrize(
    ("span", "bucket"),
    [
        (timedelta(minutes=1), 1),
        (timedelta(minutes=60), 1),
        (timedelta(minutes=61), 2),
        (timedelta(hours=8), 10),
        (timedelta(days=1), 30),
        (timedelta(days=7), 180),
        (timedelta(days=90), 1440),
    ],
)
def test_bucket_width_keeps_charts_readable(span: timedelta, bucket: int) -> None:
    """The narrowest bucket that draws the window in at most 60 points."""
    assert choose_bucket_minutes(span) == bucket


def test_bucket_percentiles_come_from_merged_sketches() -> None:
    """A bucket's percentiles are those of all its minutes' values merged; idle buckets are gaps."""
    minute_a = [100.0] * 90 + [1000.0] * 10
    minute_b = [200.0] * 50 + [5000.0] * 50
    rows = [
        LiveMinute(T0, "baseline", 100, 2, QuantileSketch.of(minute_a)),
        LiveMinute(T0 + MIN, "baseline", 100, 8, QuantileSketch.of(minute_b)),
        LiveMinute(T0 + 3 * MIN, "candidate", 10, 5, QuantileSketch.of([300.0] * 10)),
    ]
    series = bucket_series(rows, ("baseline", "candidate"), T0, T0 + 4 * MIN, bucket_minutes=2)
    merged = QuantileSketch.of(minute_a + minute_b)
    first = series["baseline"][0]
    assert (first.requests, first.error_rate) == (200, 0.05)
    assert first.p50_ms == merged.quantile(0.5)
    assert first.p99_ms == merged.quantile(0.99)
    assert first.p99_ms == pytest.approx(5000.0, rel=0.01)
    idle = series["baseline"][1]
    assert (idle.requests, idle.error_rate, idle.p50_ms) == (0, None, None)
    assert series["candidate"][0].error_rate is None
    assert series["candidate"][1].error_rate == 0.5
    assert [p.start for p in series["candidate"]] == [T0, T0 + 2 * MIN]


def test_arm_summary_percentiles_and_tokens() -> None:
    """Per arm: p50/p95/p99 from the merged sketch, tokens per request over calls with tokens."""
    values = [float(v) for v in range(1, 1001)]
    totals = LiveTotals(
        requests=1000,
        failures=20,
        latency_sum=sum(values),
        tokens_n=980,
        prompt_tokens_sum=980 * 62,
        completion_tokens_sum=980 * 48,
        latency_sketch=QuantileSketch.of(values),
    )
    summary = arm_summary("baseline", "gpt-5.2", totals)
    assert summary.error_rate == 0.02
    assert summary.latency_ms[0.5] == pytest.approx(500, rel=0.01)
    assert summary.latency_ms[0.95] == pytest.approx(950, rel=0.01)
    assert summary.latency_ms[0.99] == pytest.approx(990, rel=0.01)
    assert (summary.prompt_tokens_per_request, summary.completion_tokens_per_request) == (62, 48)
    empty = arm_summary("candidate", "gpt-5.5", LiveTotals())
    assert empty.error_rate is None and empty.latency_ms[0.99] is None


def _entry(
    minute: int,
    action: AuditAction,
    to: int | None,
    decision: dict[str, Any] | None = None,
    actor: str = "controller",
) -> AuditEntry:
    return AuditEntry(
        id=None,
        at=T0 + minute * MIN,
        rollout="r",
        actor=actor,
        action=action,
        from_percent=None,
        to_percent=to,
        reason=f"{action.value} at {minute}",
        decision=decision,
    )


def test_step_marks_are_the_percent_changes() -> None:
    """Only entries that change the flag are marked; confirmations and holds are not."""
    entries = [
        _entry(0, AuditAction.START, 0),
        _entry(5, AuditAction.ADVANCE, 10),
        _entry(6, AuditAction.HOLD, None),
        _entry(7, AuditAction.RESUME, 10, actor="cli:sre"),  # same percent: no mark
        _entry(20, AuditAction.MANUAL_OVERRIDE, 25, actor="unleash-ui"),
        _entry(30, AuditAction.ROLLBACK, 0),
    ]
    marks = step_marks(entries)
    assert [(m.from_percent, m.to_percent, m.action) for m in marks] == [
        (None, 0, "start"),
        (0, 10, "advance"),
        (10, 25, "manual_override"),
        (25, 0, "rollback"),
    ]
    assert marks[2].actor == "unleash-ui" and marks[3].at == T0 + 30 * MIN


def _decision(
    e: float | str, threshold: float | str = 250.0, to: int | None = None
) -> dict[str, Any]:
    return {
        "kind": "hold",
        "to_percent": to,
        "triggers": [
            {
                "name": "error_rate",
                "kind": "rate",
                "mode": "act",
                "verdict": "inconclusive",
                "statistic": e,
                "threshold": threshold,
                "alpha": 0.004,
                "margin": 0.01,
                "estimate": 0.002,
                "lower": -0.001,
                "upper": 0.004,
            }
        ],
    }


def test_trigger_series_follow_the_decisions_without_intents() -> None:
    """Statistics per decision, oldest first; a controller intent is not counted twice."""
    entries = [
        _entry(1, AuditAction.HOLD, None, _decision(1.5)),
        # The intent written before a flag change: a target in the decision, no percentage.
        _entry(2, AuditAction.ADVANCE, None, _decision(3.0, to=10)),
        _entry(2, AuditAction.ADVANCE, 10, _decision(3.0, to=10)),
        _entry(9, AuditAction.HOLD, None, _decision("Infinity", "Infinity")),
        _entry(10, AuditAction.PAUSE, None, None, actor="cli:sre"),
    ]
    (series,) = trigger_series(entries)
    assert series.name == "error_rate" and series.mode == "act" and series.margin == 0.01
    assert [p.statistic for p in series.points] == [1.5, 3.0, math.inf]
    assert [p.at for p in series.points] == [T0 + MIN, T0 + 2 * MIN, T0 + 9 * MIN]
    assert series.latest is not None and series.latest.threshold == math.inf
    assert series.points[0].upper == 0.004


def test_similarity_histogram_folds_sql_bins() -> None:
    """Counts per 1-based bin become per-kind tuples over edges 0..1; absent kinds are zeros."""
    hist = similarity_histogram({"candidate": {1: 2, 20: 5}}, {"candidate": 0.7}, bins=20)
    assert hist.edges[0] == 0.0 and hist.edges[-1] == 1.0 and len(hist.edges) == 21
    assert hist.candidate[0] == 2 and hist.candidate[19] == 5 and hist.candidate_n == 7
    assert hist.noise == (0,) * 20 and hist.noise_n == 0 and hist.noise_mean is None


def test_axes_ticks_cover_the_data() -> None:
    """Linear ticks cover the range on round numbers; log ticks are powers of ten; time is UTC."""
    ticks = nice_ticks(0.0, 0.137)
    assert ticks[0] <= 0.0 and ticks[-1] >= 0.137 and 3 <= len(ticks) <= 8
    assert log_ticks(0.5, 600.0) == [0.1, 1.0, 10.0, 100.0, 1000.0]
    labels = [label for _, label in time_ticks(T0.timestamp(), (T0 + 80 * MIN).timestamp())]
    assert labels[0] == "09:00" and "10:00" in labels


def test_chart_labels_are_escaped() -> None:
    """Titles, series names and marks from the store cannot inject markup into the page."""
    svg = time_chart(
        "<script>alert(1)</script>",
        'x" onload="alert(1)',
        [Line("<b>arm</b>", [(0.0, 1.0), (60.0, 2.0)], "#000")],
        y_label="&",
        x_range=(0.0, 120.0),
        marks=[Mark(30.0, "<img src=x>")],
    )
    assert "<script>" not in svg and "<b>" not in svg and "<img" not in svg
    assert "&lt;script&gt;" in svg and 'data-chart="x&quot; onload=&quot;alert(1)"' in svg
