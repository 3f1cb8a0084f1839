"""The judge's Evidence for a rollout, read from the per-minute rollups: O(buckets).

A tick reads three indexed ranges in one consistent snapshot: the rollout's audit
entries that set the flag (the percentage per minute), ``live_rollups`` (both arms)
and ``shadow_rollups`` (candidate and noise replays), each from the minute the rollout
started to ``now``. Raw captures are never read, so a tick costs the same with ten
thousand or ten million requests stored.

Slow requests (the tail-latency trigger) are counted inside Postgres from each
minute's latency sketch: only one number per row crosses the wire, not the sketch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Connection, Engine, Integer, Table, cast, func, literal, select
from sqlalchemy.exc import OperationalError

from shadowcanary.controller.records import RolloutRecord
from shadowcanary.controller.store import ControllerStore, timeline, unavailable
from shadowcanary.events import Arm
from shadowcanary.judge.decide import slow_threshold_ms
from shadowcanary.judge.evidence import ArmCounts, Bucket, Evidence, Moments, ShadowCounts
from shadowcanary.replay.records import ReplayKind
from shadowcanary.store.models import LiveRollupRow, ShadowRollupRow
from shadowcanary.store.rollups import minute_of
from shadowcanary.store.sketch import QuantileSketch, first_key_above, merge_all

LIVE: Table = LiveRollupRow.__table__  # type: ignore[assignment]
SHADOW: Table = ShadowRollupRow.__table__  # type: ignore[assignment]
MINUTE = timedelta(minutes=1)
# Below this many baseline requests a p99 rests on too few points to freeze (JUDGE.md).
MIN_P99_REQUESTS = 500


def load_evidence(
    engine_or_store: Engine | ControllerStore, record: RolloutRecord, *, now: datetime
) -> Evidence:
    """One Bucket per minute from the rollout's start to ``now`` (the open minute included).

    Minutes without traffic are empty buckets, so gaps show as gaps. Each bucket's
    ``canary_percent`` is the flag's percentage in force during that minute, averaged
    over time when it changed within the minute. ``slow`` counts requests above
    ``slow_threshold_ms(plan, state)`` (zero, with no threshold, until the baseline
    p99 is frozen).

    Raises:
        ServiceUnavailable: Postgres could not be read; the controller must hold.
    """
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware (e.g. datetime.now(UTC)), got {now}")
    engine = (
        engine_or_store.engine if isinstance(engine_or_store, ControllerStore) else engine_or_store
    )
    threshold = slow_threshold_ms(record.plan, record.judge_state(None))
    first = minute_of(record.started_at)
    minutes = _minutes(first, now)
    if not minutes:
        return Evidence(buckets=(), slow_threshold_ms=threshold)
    until = minutes[-1] + MINUTE
    try:
        # One snapshot: live, shadow and flag history describe the same moment.
        with (
            engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn,
            conn.begin(),
        ):
            points = timeline(conn, record.name, since=record.started_at)
            live = _live_rows(conn, record.plan.name, first, until, threshold)
            shadow = _shadow_rows(conn, record.plan.name, first, until)
    except OperationalError as exc:
        raise unavailable("reading the rollout's evidence", exc) from exc
    percents = _percent_per_minute(points, minutes)
    buckets = tuple(
        Bucket(
            start=minute,
            canary_percent=percent,
            baseline=live.get((minute, Arm.BASELINE.value), _NO_ARM),
            candidate=live.get((minute, Arm.CANDIDATE.value), _NO_ARM),
            shadow=shadow.get(minute, _NO_SHADOW),
        )
        for minute, percent in zip(minutes, percents, strict=True)
    )
    return Evidence(buckets=buckets, slow_threshold_ms=threshold)


def newest_data_at(evidence: Evidence) -> datetime | None:
    """Start of the newest minute with live requests: ``judge_state``'s ``last_data_at``.

    The start, not the end, of the minute: freshness errs towards stale (fail closed).
    """
    for bucket in reversed(evidence.buckets):
        if bucket.baseline.requests or bucket.candidate.requests:
            return bucket.start
    return None


def freeze_baseline_p99(
    engine: Engine,
    rollout: str,
    *,
    since: datetime,
    until: datetime,
    quantile: float = 0.99,
    min_requests: int = MIN_P99_REQUESTS,
) -> float | None:
    """The baseline arm's latency quantile over minutes in [since, until), before the canary.

    Pass the tail trigger's ``quantile`` (plan.triggers.p99_latency.quantile). None
    when fewer than ``min_requests`` baseline requests were seen: a p99 of a few
    hundred requests rests on a handful of points, and a threshold frozen too low
    would roll back a healthy canary.

    Raises:
        ServiceUnavailable: Postgres could not be read.
    """
    for name, moment in (("since", since), ("until", until)):
        if moment.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware, got {moment}")
    stmt = select(LIVE.c.latency_sketch).where(
        LIVE.c.rollout == rollout,
        LIVE.c.arm == Arm.BASELINE.value,
        LIVE.c.minute >= since,
        LIVE.c.minute < until,
    )
    try:
        with engine.connect() as conn:
            docs = conn.execute(stmt).scalars().all()
    except OperationalError as exc:
        raise unavailable("reading the baseline latency", exc) from exc
    sketch = merge_all(QuantileSketch.from_json(doc) for doc in docs)
    if sketch.count < max(1, min_requests):
        return None
    return sketch.quantile(quantile)


_NO_ARM = ArmCounts()
_NO_SHADOW = ShadowCounts()


def _minutes(first: datetime, now: datetime) -> list[datetime]:
    count = max(0, -(-(now - first) // MINUTE))  # ceil: the open minute counts
    return [first + i * MINUTE for i in range(count)]


def _live_rows(
    conn: Connection, rollout: str, since: datetime, until: datetime, threshold: float | None
) -> dict[tuple[datetime, str], ArmCounts]:
    t = LIVE
    if threshold is None:
        slow: Any = literal(0, BigInteger)
    else:
        bins = func.jsonb_each_text(t.c.latency_sketch["bins"]).table_valued("key", "value")
        slow = (
            select(func.coalesce(func.sum(cast(bins.c.value, BigInteger)), 0))
            .where(cast(bins.c.key, Integer) >= first_key_above(threshold))
            .scalar_subquery()
        )
    stmt = select(
        t.c.minute,
        t.c.arm,
        t.c.requests,
        t.c.failures,
        t.c.truncated,
        t.c.refusals,
        t.c.json_expected,
        t.c.json_invalid,
        t.c.tool_schema_invalid,
        slow.label("slow"),
        t.c.latency_sum,
        t.c.latency_sq_sum,
        t.c.ttft_n,
        t.c.ttft_sum,
        t.c.ttft_sq_sum,
        t.c.tokens_n,
        t.c.completion_tokens_sum,
        t.c.completion_tokens_sq_sum,
        t.c.cost_n,
        t.c.cost_usd_sum,
        t.c.cost_usd_sq_sum,
    ).where(t.c.rollout == rollout, t.c.minute >= since, t.c.minute < until)
    found: dict[tuple[datetime, str], ArmCounts] = {}
    for r in conn.execute(stmt):
        found[(minute_of(r.minute), r.arm)] = ArmCounts(
            requests=r.requests,
            failures=r.failures,
            truncated=r.truncated,
            refusals=r.refusals,
            json_expected=r.json_expected,
            json_invalid=r.json_invalid,
            tool_schema_invalid=r.tool_schema_invalid,
            slow=int(r.slow),
            latency_ms=Moments(r.requests, r.latency_sum, r.latency_sq_sum),
            ttft_ms=Moments(r.ttft_n, r.ttft_sum, r.ttft_sq_sum),
            completion_tokens=Moments(
                r.tokens_n, float(r.completion_tokens_sum), r.completion_tokens_sq_sum
            ),
            cost_usd=Moments(r.cost_n, r.cost_usd_sum, r.cost_usd_sq_sum),
        )
    return found


@dataclass(frozen=True, slots=True)
class _ShadowMinute:
    compared: int
    json_invalid: int
    paired: Moments


def _shadow_rows(
    conn: Connection, rollout: str, since: datetime, until: datetime
) -> dict[datetime, ShadowCounts]:
    t = SHADOW
    stmt = select(
        t.c.minute,
        t.c.kind,
        t.c.n,
        t.c.other_json_invalid,
        t.c.paired_n,
        t.c.paired_diff_sum,
        t.c.paired_diff_sq_sum,
    ).where(
        t.c.rollout == rollout,
        t.c.kind.in_([ReplayKind.CANDIDATE.value, ReplayKind.NOISE.value]),
        t.c.minute >= since,
        t.c.minute < until,
    )
    by_minute: dict[datetime, dict[str, _ShadowMinute]] = {}
    for r in conn.execute(stmt):
        by_minute.setdefault(minute_of(r.minute), {})[r.kind] = _ShadowMinute(
            compared=r.n,
            json_invalid=r.other_json_invalid,
            paired=Moments(r.paired_n, r.paired_diff_sum, r.paired_diff_sq_sum),
        )
    empty = _ShadowMinute(0, 0, Moments())
    result: dict[datetime, ShadowCounts] = {}
    for minute, kinds in by_minute.items():
        candidate = kinds.get(ReplayKind.CANDIDATE.value, empty)
        noise = kinds.get(ReplayKind.NOISE.value, empty)
        result[minute] = ShadowCounts(
            # D = sim(C, B1) - sim(B2, B1), accumulated on the candidate's row per pair.
            similarity_diff=candidate.paired,
            # JSON validity is judged on compared answers only: a failed replay is no answer.
            candidate_replays=candidate.compared,
            candidate_json_invalid=candidate.json_invalid,
            baseline_replays=noise.compared,
            baseline_json_invalid=noise.json_invalid,
        )
    return result


def _percent_per_minute(
    points: Sequence[tuple[datetime, int]], minutes: Sequence[datetime]
) -> list[float]:
    """The flag's percentage in force during each minute, time-weighted across changes.

    Before the first point the first point's value holds (the START entry sets 0 %
    at the rollout's start, so that is the flag the rollout began with).
    """
    if not points:
        return [0.0] * len(minutes)
    out: list[float] = []
    index = 0  # points[index] is the last point at or before the minute's start
    for minute in minutes:
        while index + 1 < len(points) and points[index + 1][0] <= minute:
            index += 1
        end = minute + MINUTE
        current = float(points[index][1])
        changes = index + 1
        if changes >= len(points) or points[changes][0] >= end:
            out.append(current)
            continue
        weighted, since = 0.0, minute
        while changes < len(points) and points[changes][0] < end:
            at, percent = points[changes]
            weighted += current * (at - since).total_seconds()
            current, since = float(percent), at
            changes += 1
        weighted += current * (end - since).total_seconds()
        out.append(weighted / MINUTE.total_seconds())
    return out
