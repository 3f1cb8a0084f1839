"""A report's live figures: from the rollups for the whole rollout, from raw calls for a tenant.

The rollups (``live_rollups``) have no tenant column, so a tenant's figures are
aggregated from its captured calls instead, in SQL: one ``GROUP BY arm, chart
bucket, sketch bin`` returns O(buckets x bins) rows whatever the traffic, and the
latency sketches it builds are the ones the rollups would hold for those calls
alone (``shadowcanary.store.sketch_sql``). Both paths give the same ``LiveFigures``,
so everything downstream (summaries, series, cost) is one code path.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Double, Integer, cast, func, literal, select

from shadowcanary.events import Arm, CallStatus
from shadowcanary.report.data import MINUTE, traffic_span
from shadowcanary.report.queries import CAPTURES, LiveMinute, live_minutes
from shadowcanary.store import reads
from shadowcanary.store.rollups import minute_of
from shadowcanary.store.sketch import QuantileSketch
from shadowcanary.store.sketch_sql import sketch_key, sketch_of_bins
from shadowcanary.store.totals import LiveTotals


@dataclass(frozen=True, slots=True)
class LiveFigures:
    """Live calls per arm over the report window, and how much traffic it saw."""

    # Rows for bucket_series: one per arm and rollup minute, or per arm and chart bucket
    # (``minute`` is then the bucket's start); either lands in the right chart bucket.
    rows: list[LiveMinute]
    totals: dict[Arm, LiveTotals]
    calls: int  # live calls in the window, both arms
    first_minute: datetime | None  # the first minute with a call
    end_minute: datetime | None  # the end of the last minute with a call


def rollout_live(conn: Connection, rollout: str, since: datetime, until: datetime) -> LiveFigures:
    """Every tenant's calls, from the per-minute rollups: O(minutes)."""
    rows = live_minutes(conn, rollout, since, until)
    calls, first, end = traffic_span(rows)
    totals = reads.live_totals(conn, rollout, since, until)
    return LiveFigures(rows=rows, totals=totals, calls=calls, first_minute=first, end_minute=end)


# The LiveTotals counters a report uses, as SQL aggregates over captures. Sums over a
# nullable column skip NULLs, as the rollups skip a call without tokens or cost.
_C = CAPTURES.c
_HAS_TOKENS = _C.completion_tokens.is_not(None)
_SUMS: dict[str, Any] = {
    "failures": func.count().filter(_C.status != CallStatus.OK.value),
    "latency_sum": func.sum(_C.latency_ms),
    "latency_sq_sum": func.sum(_C.latency_ms * _C.latency_ms),
    "tokens_n": func.count().filter(_HAS_TOKENS),
    "prompt_tokens_sum": func.sum(func.coalesce(_C.prompt_tokens, 0)).filter(_HAS_TOKENS),
    "completion_tokens_sum": func.sum(_C.completion_tokens),
    "completion_tokens_sq_sum": func.sum(cast(_C.completion_tokens, Double) ** 2),
    "cost_n": func.count(_C.cost_usd),
    "cost_usd_sum": func.sum(_C.cost_usd),
    "cost_usd_sq_sum": func.sum(_C.cost_usd * _C.cost_usd),
}
_INTEGER_SUMS = {"failures", "tokens_n", "prompt_tokens_sum", "completion_tokens_sum", "cost_n"}


def tenant_live(
    conn: Connection,
    rollout: str,
    tenant: str,
    since: datetime,
    until: datetime,
    bucket_minutes: int,
) -> LiveFigures:
    """One tenant's calls of ``rollout`` that started in [since, until), from raw captures.

    ``since`` must be the start of a chart bucket (the report's window start): rows
    come back per bucket of ``bucket_minutes``, not per minute. Only calls still
    stored count: raw rows are purged after the retention period, rollups are not.
    """
    width_s = bucket_minutes * 60
    offset = func.extract("epoch", _C.started_at) - literal(since.timestamp(), Double)
    bucket = cast(func.floor(cast(offset, Double) / width_s), Integer).label("bucket")
    key = sketch_key(_C.latency_ms).label("key")
    statement = (
        select(
            _C.arm,
            bucket,
            key,
            func.count().label("requests"),
            *(expression.label(name) for name, expression in _SUMS.items()),
            func.min(_C.started_at).label("first"),
            func.max(_C.started_at).label("last"),
        )
        .where(
            _C.rollout == rollout,
            _C.tenant == tenant,
            _C.started_at >= since,
            _C.started_at < until,
        )
        .group_by(_C.arm, bucket, key)
    )
    requests: dict[tuple[str, int], int] = defaultdict(int)
    failures: dict[tuple[str, int], int] = defaultdict(int)
    bins: dict[tuple[str, int], list[tuple[int | None, int]]] = defaultdict(list)
    arm_bins: dict[str, list[tuple[int | None, int]]] = defaultdict(list)
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    first: datetime | None = None
    last: datetime | None = None
    for row in conn.execute(statement).mappings():
        at = (row["arm"], int(row["bucket"]))
        requests[at] += int(row["requests"])
        failures[at] += int(row["failures"])
        bins[at].append((row["key"], int(row["requests"])))
        arm_bins[row["arm"]].append((row["key"], int(row["requests"])))
        arm_sums = sums[row["arm"]]
        arm_sums["requests"] += int(row["requests"])
        for name in _SUMS:
            arm_sums[name] += (int if name in _INTEGER_SUMS else float)(row[name] or 0)
        first = row["first"] if first is None else min(first, row["first"])
        last = row["last"] if last is None else max(last, row["last"])

    width = timedelta(minutes=bucket_minutes)
    rows = [
        LiveMinute(
            minute=since + index * width,
            arm=arm,
            requests=requests[(arm, index)],
            failures=failures[(arm, index)],
            latency_sketch=sketch_of_bins(bins[(arm, index)]),
        )
        for arm, index in sorted(requests)
    ]
    totals = {
        arm: _totals(sums.get(arm.value, {}), sketch_of_bins(arm_bins.get(arm.value, ())))
        for arm in Arm
    }
    return LiveFigures(
        rows=rows,
        totals=totals,
        calls=sum(requests.values()),
        first_minute=None if first is None else minute_of(first),
        end_minute=None if last is None else minute_of(last) + MINUTE,
    )


def _totals(sums: dict[str, float], sketch: QuantileSketch) -> LiveTotals:
    """LiveTotals of the report's counters (the flag counts and TTFT are not in a report)."""
    counts = {name: int(sums.get(name, 0)) for name in ("requests", *_INTEGER_SUMS)}
    floats = {name: sums.get(name, 0.0) for name in _SUMS if name not in _INTEGER_SUMS}
    return LiveTotals(**counts, **floats, latency_sketch=sketch)  # type: ignore[arg-type]
