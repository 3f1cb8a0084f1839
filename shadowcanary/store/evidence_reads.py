"""The judge's Evidence for a rollout, read from the per-minute rollups: O(buckets).

A tick reads indexed ranges in one consistent snapshot: the rollout's audit entries
that set the flag (the percentage per minute), ``live_rollups`` (both arms) and
``shadow_rollups`` (candidate and noise replays), each from the minute the rollout
started to ``now``. Raw captures are never read, so a tick costs the same with ten
thousand or ten million requests stored.

Slow requests (the tail-latency trigger) are counted inside Postgres from each
minute's latency sketch, so one number per row crosses the wire, not the sketch.

Handed a ``RolloutStore``, ``load_evidence`` remembers the buckets it built per
hour of the rollout and, on the next tick, reads in full only the hours whose rows
changed (``rollup_reads`` explains how it knows); the rest comes from two small
aggregate queries. Handed an Engine it reads everything every time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import OperationalError

from shadowcanary.judge.decide import slow_threshold_ms
from shadowcanary.judge.evidence import Bucket, Evidence
from shadowcanary.rollout_records import RolloutRecord
from shadowcanary.store.judge_store import judge_minutes, with_judge
from shadowcanary.store.rollouts import RolloutStore, timeline, unavailable
from shadowcanary.store.rollup_reads import (
    BASELINE,
    CHUNK_MINUTES,
    LIVE,
    MINUTE,
    RollupReader,
    binary_results,
    bucket,
    percent_per_minute,
    points_signature,
)
from shadowcanary.store.rollups import minute_of
from shadowcanary.store.sketch import QuantileSketch, first_key_above, merge_all

# Below this many baseline requests a p99 rests on too few points to freeze (docs/judge.md).
MIN_P99_REQUESTS = 500


@dataclass(slots=True)
class EvidenceCache:
    """The buckets one rollout's previous tick built, per hour, with what they came from."""

    first_minute: datetime
    slow_key: int | None  # first sketch bin counted slow; None: no threshold yet
    chunks: dict[int, tuple[Any, tuple[Bucket, ...]]] = field(default_factory=dict)


def load_evidence(
    engine_or_store: Engine | RolloutStore, record: RolloutRecord, *, now: datetime
) -> Evidence:
    """One Bucket per minute from the rollout's start to ``now`` (the open minute included).

    Minutes without traffic are empty buckets, so gaps show as gaps. Each bucket's
    ``canary_percent`` is the flag's percentage in force during that minute, averaged
    over time when it changed within the minute. ``slow`` counts requests above
    ``slow_threshold_ms(plan, state)`` (zero, with no threshold, until the baseline
    p99 is frozen). Pass the same RolloutStore on every tick so unchanged hours
    are not read again.

    Raises:
        ServiceUnavailable: Postgres could not be read; the controller must hold.
    """
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware (e.g. datetime.now(UTC)), got {now}")
    threshold = slow_threshold_ms(record.plan, record.judge_state(None))
    first = minute_of(record.started_at)
    count = max(0, -(-(now - first) // MINUTE))  # minutes, the open one included
    if not count:
        return Evidence(buckets=(), slow_threshold_ms=threshold)
    slow_key = None if threshold is None else first_key_above(threshold)
    if isinstance(engine_or_store, RolloutStore):
        engine, caches = engine_or_store.engine, engine_or_store.evidence_cache
    else:
        engine, caches = engine_or_store, {}
    cache = caches.get(record.name)
    if cache is None or (cache.first_minute, cache.slow_key) != (first, slow_key):
        cache = EvidenceCache(first_minute=first, slow_key=slow_key)
    hours = _Hours(first, count)
    reader = RollupReader(record.plan.name, first, hours.end)
    try:
        # One snapshot: live, shadow and flag history describe the same moment.
        with (
            engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn,
            conn.begin(),
        ):
            event.listen(conn, "before_cursor_execute", binary_results)
            points = timeline(conn, record.name, since=record.started_at)
            live_signatures = reader.live_signatures(conn)
            shadow_signatures = reader.shadow_signatures(conn)
            signatures = {
                chunk: (
                    live_signatures.get(chunk),
                    shadow_signatures.get(chunk),
                    points_signature(points, hours.start(chunk), hours.end_of(chunk)),
                    len(hours.minutes(chunk)),
                )
                for chunk in hours.chunks
            }
            stale = [c for c in hours.chunks if cache.chunks.get(c, (None,))[0] != signatures[c]]
            live = reader.live(conn, stale, slow_key) if stale else {}
            shadow = reader.shadow(conn, stale) if stale else {}
            judged, judge_routes = judge_minutes(conn, record.plan.name, first, hours.end)
    except OperationalError as exc:
        raise unavailable("reading the rollout's evidence", exc) from exc
    built = {}
    for chunk in hours.chunks:
        if chunk not in stale:
            built[chunk] = cache.chunks[chunk]
            continue
        starts = hours.minutes(chunk)
        percents = percent_per_minute(points, starts)
        offset = chunk * CHUNK_MINUTES
        built[chunk] = (
            signatures[chunk],
            tuple(
                bucket(minute, percent, live, shadow, offset + i)
                for i, (minute, percent) in enumerate(zip(starts, percents, strict=True))
            ),
        )
    cache.chunks = built
    caches[record.name] = cache
    buckets = tuple(b for _, chunk_buckets in built.values() for b in chunk_buckets)
    return Evidence(
        buckets=with_judge(buckets, judged),
        slow_threshold_ms=threshold,
        judge_routes=judge_routes,
    )


@dataclass(frozen=True, slots=True)
class _Hours:
    """The rollout's minutes so far, grouped in chunks of CHUNK_MINUTES."""

    first: datetime
    count: int  # minutes, the open one included

    @property
    def end(self) -> datetime:
        return self.first + self.count * MINUTE

    @property
    def chunks(self) -> range:
        return range(-(-self.count // CHUNK_MINUTES))

    def start(self, chunk: int) -> datetime:
        return self.first + chunk * CHUNK_MINUTES * MINUTE

    def end_of(self, chunk: int) -> datetime:
        return min(self.end, self.start(chunk + 1))

    def minutes(self, chunk: int) -> list[datetime]:
        start = self.start(chunk)
        return [start + i * MINUTE for i in range((self.end_of(chunk) - start) // MINUTE)]


def newest_data_at(evidence: Evidence) -> datetime | None:
    """Start of the newest minute with live requests: ``judge_state``'s ``last_data_at``.

    The start, not the end, of the minute: freshness errs towards stale (fail closed).
    """
    for minute in reversed(evidence.buckets):
        if minute.baseline.requests or minute.candidate.requests:
            return minute.start
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
        LIVE.c.arm == BASELINE,
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


def count_baseline_requests(
    engine: Engine, rollout: str, *, since: datetime, until: datetime
) -> int:
    """Baseline requests of ``rollout`` over minutes in [since, until): what freezing counts.

    Raises:
        ServiceUnavailable: Postgres could not be read.
    """
    stmt = select(func.coalesce(func.sum(LIVE.c.requests), 0)).where(
        LIVE.c.rollout == rollout,
        LIVE.c.arm == BASELINE,
        LIVE.c.minute >= since,
        LIVE.c.minute < until,
    )
    try:
        with engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())
    except OperationalError as exc:
        raise unavailable("counting the baseline requests", exc) from exc
