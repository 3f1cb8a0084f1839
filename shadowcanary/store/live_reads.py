"""A report's live figures: from the rollups for the whole rollout, from raw calls for a tenant.

Both paths let Postgres add up per arm and chart bucket (at most ~60 buckets), so
O(buckets x sketch bins) rows come back whatever the traffic:

- the whole rollout: the per-minute rollup rows (``live_rollups``), their sketches'
  bins added up with ``jsonb_each_text``; O(minutes) for Postgres.
- one tenant: the rollups have no tenant column, so that tenant's captured calls,
  each put in its sketch bin by ``shadowcanary.store.sketch_sql`` (the bins the
  rollups would hold for those calls alone); O(the rollout's calls in the window) for
  Postgres, as captures are indexed by (rollout, started_at).

Both give the same ``LiveFigures``, so summaries, series and cost are one code path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Double,
    Integer,
    Table,
    cast,
    func,
    literal,
    select,
    true,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql.elements import ColumnElement

from shadowcanary.events import Arm, CallStatus
from shadowcanary.store.models import LiveRollupRow
from shadowcanary.store.report_reads import CAPTURES, LiveMinute
from shadowcanary.store.rollups import minute_of
from shadowcanary.store.sketch import RELATIVE_ACCURACY
from shadowcanary.store.sketch_sql import sketch_key, sketch_of_bins
from shadowcanary.store.totals import LiveTotals

LIVE: Table = LiveRollupRow.__table__  # type: ignore[assignment]

# The LiveTotals counters a report shows (the flag counts and TTFT are not in a report).
COUNTERS: tuple[str, ...] = (
    "requests",
    "failures",
    "latency_sum",
    "latency_sq_sum",
    "tokens_n",
    "prompt_tokens_sum",
    "completion_tokens_sum",
    "completion_tokens_sq_sum",
    "cost_n",
    "cost_usd_sum",
    "cost_usd_sq_sum",
)
# User outcomes joined to the calls (shadowcanary.store.outcomes): rollups only, so a
# tenant's report (read from raw captures) has none.
OUTCOME_COUNTERS: tuple[str, ...] = (
    "outcomes_reported",
    "tasks_reported",
    "tasks_abandoned",
    "outcomes_negative",
    "outcomes_escalated",
    "outcome_value_n",
    "outcome_value_sum",
)
MINUTE = timedelta(minutes=1)
_INTEGERS = frozenset(("requests", "failures", "tokens_n", "prompt_tokens_sum"))
_INTEGERS |= {"completion_tokens_sum", "cost_n"}
_INTEGERS |= set(OUTCOME_COUNTERS) - {"outcome_value_sum"}

Bin = tuple[str, int, int | None, int]  # arm, chart bucket, sketch key (None: zero), count


@dataclass(frozen=True, slots=True)
class LiveFigures:
    """Live calls per arm over the report window, and how much traffic it saw."""

    rows: list[LiveMinute]  # one per arm and chart bucket with calls (minute: its start)
    totals: dict[Arm, LiveTotals]
    calls: int  # live calls in the window, both arms
    first_minute: datetime | None  # the first minute with a call
    end_minute: datetime | None  # the end of the last minute with a call
    # When the first and last calls started, to the microsecond where the raw rows are
    # still stored; the minute bounds above where they were purged.
    first_call: datetime | None = None
    last_call: datetime | None = None


def _bucket(moment: ColumnElement[Any], since: datetime, bucket_minutes: int) -> Any:
    """The chart bucket (0, 1, ...) a moment falls in; ``since`` starts bucket 0."""
    offset = func.extract("epoch", moment) - literal(since.timestamp(), Double)
    return cast(func.floor(cast(offset, Double) / (bucket_minutes * 60)), Integer).label("bucket")


def rollout_live(
    conn: Connection, rollout: str, since: datetime, until: datetime, bucket_minutes: int
) -> LiveFigures:
    """Every tenant's calls, from the per-minute rollups in [since, until)."""
    bucket = _bucket(LIVE.c.minute, since, bucket_minutes)
    window = (LIVE.c.rollout == rollout, LIVE.c.minute >= since, LIVE.c.minute < until)
    busy = LIVE.c.requests > 0
    counters = conn.execute(
        select(
            LIVE.c.arm,
            bucket,
            *(func.sum(LIVE.c[name]).label(name) for name in COUNTERS + OUTCOME_COUNTERS),
            func.sum(cast(LIVE.c.latency_sketch["zero"].astext, BigInteger)).label("zero"),
            func.min(LIVE.c.minute).filter(busy).label("first"),
            func.max(LIVE.c.minute).filter(busy).label("last"),
            func.count()
            .filter(cast(LIVE.c.latency_sketch["alpha"].astext, Double) != RELATIVE_ACCURACY)
            .label("foreign"),
        )
        .where(*window)
        .group_by(LIVE.c.arm, bucket)
    ).all()
    if any(row.foreign for row in counters):
        # Sketches of another accuracy cannot be merged (QuantileSketch.from_json says so).
        raise ValueError(
            f"rollout {rollout!r} has latency sketches of a relative accuracy other than "
            f"{RELATIVE_ACCURACY}, which this build cannot merge"
        )
    entries = func.jsonb_each_text(LIVE.c.latency_sketch["bins"]).table_valued("key", "value")
    bins: list[Bin] = [
        (arm, index, int(key), int(count))
        for arm, index, key, count in conn.execute(
            select(LIVE.c.arm, bucket, entries.c.key, func.sum(cast(entries.c.value, BigInteger)))
            .select_from(LIVE.join(entries, true()))
            .where(*window)
            .group_by(LIVE.c.arm, bucket, entries.c.key)
        )
    ]
    bins += [(row.arm, row.bucket, None, int(row.zero)) for row in counters if row.zero]
    figures = _figures([row._mapping for row in counters], bins, since, bucket_minutes)
    first_call, last_call = conn.execute(
        # An index range over (rollout, started_at): two index probes, whatever the traffic.
        select(func.min(_C.started_at), func.max(_C.started_at)).where(
            _C.rollout == rollout, _C.started_at >= since, _C.started_at < until
        )
    ).one()
    return _exact_span(figures, first_call, last_call)


def _exact_span(
    figures: LiveFigures, first_call: datetime | None, last_call: datetime | None
) -> LiveFigures:
    """The rollups' minute span made exact by the raw calls, where those are still stored.

    Raw rows are purged after the retention period, rollups are not: a bound whose raw
    rows are gone stays at its minute.
    """
    if figures.first_minute is None or figures.end_minute is None:
        return figures
    first, last = figures.first_minute, figures.end_minute
    if first_call is not None and first_call < figures.first_minute + MINUTE:
        first = first_call
    if last_call is not None and last_call >= figures.end_minute - MINUTE:
        last = last_call
    return replace(figures, first_call=first, last_call=last)


# The counters as SQL aggregates over captures. Sums over a nullable column skip NULLs,
# as the rollups skip a call without tokens or cost.
_C = CAPTURES.c
_HAS_TOKENS = _C.completion_tokens.is_not(None)
_CAPTURE_COUNTERS: dict[str, Any] = {
    "requests": func.count(),
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


def tenant_live(
    conn: Connection,
    rollout: str,
    tenant: str,
    since: datetime,
    until: datetime,
    bucket_minutes: int,
) -> LiveFigures:
    """One tenant's calls of ``rollout`` that started in [since, until), from raw captures.

    Only calls still stored count: raw rows are purged after the retention period,
    rollups are not.
    """
    bucket = _bucket(_C.started_at, since, bucket_minutes)
    key = sketch_key(_C.latency_ms).label("key")
    rows = conn.execute(
        select(
            _C.arm,
            bucket,
            key,
            *(expression.label(name) for name, expression in _CAPTURE_COUNTERS.items()),
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
    ).all()
    bins: list[Bin] = [(row.arm, row.bucket, row.key, int(row.requests)) for row in rows]
    return _figures([row._mapping for row in rows], bins, since, bucket_minutes)


def _figures(
    counters: Iterable[RowMapping],
    bins: Iterable[Bin],
    since: datetime,
    bucket_minutes: int,
) -> LiveFigures:
    """Per-bucket rows and per-arm totals from counter rows and sketch bins (any grain)."""
    requests: dict[tuple[str, int], int] = defaultdict(int)
    failures: dict[tuple[str, int], int] = defaultdict(int)
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    first: datetime | None = None
    last: datetime | None = None
    for row in counters:
        at = (row["arm"], int(row["bucket"]))
        requests[at] += int(row["requests"] or 0)
        failures[at] += int(row["failures"] or 0)
        for name in COUNTERS + OUTCOME_COUNTERS:
            sums[row["arm"]][name] += float(row.get(name) or 0)
        if row["first"] is not None:
            first = row["first"] if first is None else min(first, row["first"])
            last = row["last"] if last is None else max(last, row["last"])
    bucket_bins: dict[tuple[str, int], list[tuple[int | None, int]]] = defaultdict(list)
    arm_bins: dict[str, list[tuple[int | None, int]]] = defaultdict(list)
    for arm, index, key, count in bins:
        bucket_bins[(arm, index)].append((key, count))
        arm_bins[arm].append((key, count))
    width = timedelta(minutes=bucket_minutes)
    rows = [
        LiveMinute(
            minute=since + index * width,
            arm=arm,
            requests=requests[(arm, index)],
            failures=failures[(arm, index)],
            latency_sketch=sketch_of_bins(bucket_bins[(arm, index)]),
        )
        for arm, index in sorted(requests)
        if requests[(arm, index)]
    ]
    totals = {
        arm: LiveTotals(
            **_typed(sums[arm.value]),  # type: ignore[arg-type]
            latency_sketch=sketch_of_bins(arm_bins[arm.value]),
        )
        for arm in Arm
    }
    return LiveFigures(
        rows=rows,
        totals=totals,
        calls=sum(requests.values()),
        first_minute=None if first is None else minute_of(first),
        end_minute=None if last is None else minute_of(last) + MINUTE,
        first_call=first,
        last_call=last,
    )


def _typed(sums: Mapping[str, float]) -> dict[str, int | float]:
    # Added up as floats (exact for integers below 2**53); counts go back to int.
    return {
        n: int(sums[n]) if n in _INTEGERS else float(sums[n]) for n in COUNTERS + OUTCOME_COUNTERS
    }
