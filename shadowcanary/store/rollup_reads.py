"""The range reads behind ``load_evidence``: rollup rows of one rollout, by minute index.

Minutes are numbered from the rollout's first minute and grouped in chunks of an
hour. ``signatures`` tells, per chunk, whether anything changed since a previous
read: a live rollup row only ever changes by adding requests, and a shadow row by
adding replays or completed pairs (``shadowcanary.store.rollups``), so a chunk's row
count and the sum of those counters move whenever any of its rows did. Only chunks
whose signature moved are read in full.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import pq
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Integer,
    Table,
    and_,
    cast,
    extract,
    func,
    literal,
    or_,
    select,
)

from shadowcanary.events import Arm
from shadowcanary.judge.evidence import ArmCounts, Bucket, Moments, ShadowCounts
from shadowcanary.shadow_results import ReplayKind
from shadowcanary.store.models import LiveRollupRow, ShadowRollupRow

LIVE: Table = LiveRollupRow.__table__  # type: ignore[assignment]
SHADOW: Table = ShadowRollupRow.__table__  # type: ignore[assignment]
MINUTE = timedelta(minutes=1)
CHUNK_MINUTES = 60

BASELINE, CANDIDATE = Arm.BASELINE.value, Arm.CANDIDATE.value
CANDIDATE_KIND, NOISE_KIND = ReplayKind.CANDIDATE.value, ReplayKind.NOISE.value
TARGET_KIND = ReplayKind.ROLLBACK_TARGET.value
_LIVE_COLUMNS = (
    "requests",
    "failures",
    "truncated",
    "refusals",
    "json_expected",
    "json_invalid",
    "tool_schema_invalid",
    "latency_sum",
    "latency_sq_sum",
    "ttft_n",
    "ttft_sum",
    "ttft_sq_sum",
    "tokens_n",
    "completion_tokens_sum",
    "completion_tokens_sq_sum",
    "cost_n",
    "cost_usd_sum",
    "cost_usd_sq_sum",
    "outcomes_reported",
    "tasks_reported",
    "tasks_abandoned",
    "outcomes_negative",
    "outcomes_escalated",
)
_SHADOW_COLUMNS = (
    "n",
    "other_json_invalid",
    "paired_n",
    "paired_diff_sum",
    "paired_diff_sq_sum",
    "replays",
    "other_failed",
    "latency_delta_n",
    "latency_delta_sum",
    "latency_delta_sq_sum",
)
Row = tuple[Any, ...]
RowKey = tuple[str, int]  # (arm or replay kind, minute index)
Signature = tuple[int, int]  # (rows, sum of the counters that grow on every change)


def binary_results(conn: Connection, cursor: Any, *args: Any) -> None:
    """A ``before_cursor_execute`` hook: numbers come back binary, not as text to parse."""
    cursor.format = pq.Format.BINARY


@dataclass(frozen=True, slots=True)
class RollupReader:
    """Reads of one rollout's rollups over minutes [since, until)."""

    rollout: str
    since: datetime
    until: datetime

    def live_signatures(self, conn: Connection) -> dict[int, Signature]:
        # Outcomes reported late change a row without adding requests.
        return self._signatures(conn, LIVE, LIVE.c.requests + LIVE.c.outcome_updates)

    def shadow_signatures(self, conn: Connection) -> dict[int, Signature]:
        return self._signatures(conn, SHADOW, SHADOW.c.replays + SHADOW.c.paired_n)

    def live(
        self, conn: Connection, chunks: Sequence[int], slow_key: int | None
    ) -> dict[RowKey, tuple[Row, int]]:
        """Live rows of these chunks with their slow count (bins from ``slow_key`` up)."""
        t = LIVE
        if slow_key is None:
            slow: ColumnElement[Any] = literal(0, BigInteger)
        else:
            bins = func.jsonb_each_text(t.c.latency_sketch["bins"]).table_valued("key", "value")
            slow = (
                select(func.coalesce(func.sum(cast(bins.c.value, BigInteger)), 0))
                .where(cast(bins.c.key, Integer) >= slow_key)
                .scalar_subquery()
            )
        stmt = select(t.c.arm, self._index(t), slow, *(t.c[n] for n in _LIVE_COLUMNS))
        rows = conn.execute(stmt.where(*self._chunks(t, chunks))).all()
        return {(r[0], r[1]): (tuple(r[3:]), int(r[2])) for r in rows}

    def shadow(self, conn: Connection, chunks: Sequence[int]) -> dict[RowKey, Row]:
        t = SHADOW
        stmt = select(t.c.kind, self._index(t), *(t.c[n] for n in _SHADOW_COLUMNS))
        rows = conn.execute(stmt.where(*self._chunks(t, chunks))).all()
        return {(r[0], r[1]): tuple(r[2:]) for r in rows}

    def _index(self, table: Table) -> ColumnElement[int]:
        return cast(extract("epoch", table.c.minute - self.since) / 60, Integer).label("i")

    def _where(self, table: Table) -> list[ColumnElement[bool]]:
        where = [
            table.c.rollout == self.rollout,
            table.c.minute >= self.since,
            table.c.minute < self.until,
        ]
        if table is SHADOW:
            where.append(table.c.kind.in_([CANDIDATE_KIND, NOISE_KIND, TARGET_KIND]))
        return where

    def _chunks(self, table: Table, chunks: Sequence[int]) -> list[ColumnElement[bool]]:
        ranges = [
            and_(
                table.c.minute >= self.since + c * CHUNK_MINUTES * MINUTE,
                table.c.minute < self.since + (c + 1) * CHUNK_MINUTES * MINUTE,
            )
            for c in chunks
        ]
        return [*self._where(table), or_(*ranges)]

    def _signatures(
        self, conn: Connection, table: Table, grows: ColumnElement[Any]
    ) -> dict[int, Signature]:
        # date_bin: plain timestamp arithmetic, far cheaper per row than numeric epochs.
        chunk = func.date_bin(CHUNK_MINUTES * MINUTE, table.c.minute, self.since).label("chunk")
        stmt = (
            select(chunk, func.count(), cast(func.sum(grows), BigInteger))
            .where(*self._where(table))
            .group_by(chunk)
        )
        width = CHUNK_MINUTES * MINUTE
        return {
            (start - self.since) // width: (rows, int(total))
            for start, rows, total in conn.execute(stmt).all()
        }


def points_signature(
    points: Sequence[tuple[datetime, int]], start: datetime, end: datetime
) -> tuple[int, tuple[tuple[datetime, int], ...]]:
    """The flag percentage in force at ``start`` and every change before ``end``."""
    times = [at for at, _ in points]
    before = bisect_right(times, start)
    in_force = points[before - 1][1] if before else (points[0][1] if points else 0)
    return in_force, tuple(points[before : bisect_left(times, end)])


def percent_per_minute(
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


_NO_ARM = ArmCounts()
_NO_SHADOW: Row = (0, 0, 0, 0.0, 0.0, 0, 0, 0, 0.0, 0.0)


def arm_counts(found: tuple[Row, int] | None) -> ArmCounts:
    """ArmCounts of a live row (columns as ``_LIVE_COLUMNS``) and its slow count."""
    if found is None:
        return _NO_ARM
    row, slow = found
    (requests, failures, truncated, refusals, json_expected, json_invalid, schema_invalid,
     lat_sum, lat_sq, ttft_n, ttft_sum, ttft_sq, tokens_n, tokens_sum, tokens_sq,
     cost_n, cost_sum, cost_sq, outcomes, tasks, abandoned, negative, escalated) = row  # fmt: skip
    return ArmCounts(
        requests=requests,
        failures=failures,
        truncated=truncated,
        refusals=refusals,
        json_expected=json_expected,
        json_invalid=json_invalid,
        tool_schema_invalid=schema_invalid,
        slow=slow,
        latency_ms=Moments(requests, lat_sum, lat_sq),
        ttft_ms=Moments(ttft_n, ttft_sum, ttft_sq),
        completion_tokens=Moments(tokens_n, float(tokens_sum), tokens_sq),
        cost_usd=Moments(cost_n, cost_sum, cost_sq),
        outcomes=outcomes,
        tasks=tasks,
        abandoned=abandoned,
        negative=negative,
        escalated=escalated,
    )


def bucket(
    minute: datetime,
    percent: float,
    live: dict[RowKey, tuple[Row, int]],
    shadow: dict[RowKey, Row],
    index: int,
) -> Bucket:
    """The Bucket of minute ``index`` from the rows read for its chunk."""
    c_n, c_invalid, paired_n, paired_sum, paired_sq, *_ = shadow.get(
        (CANDIDATE_KIND, index), _NO_SHADOW
    )
    noise_n, noise_invalid, *_ = shadow.get((NOISE_KIND, index), _NO_SHADOW)
    *_, target_replays, target_failed, delta_n, delta_sum, delta_sq = shadow.get(
        (TARGET_KIND, index), _NO_SHADOW
    )
    return Bucket(
        start=minute,
        canary_percent=percent,
        baseline=arm_counts(live.get((BASELINE, index))),
        candidate=arm_counts(live.get((CANDIDATE, index))),
        shadow=ShadowCounts(
            # D = sim(C, B1) - sim(B2, B1), accumulated on the candidate's row per pair.
            similarity_diff=Moments(paired_n, paired_sum, paired_sq),
            # JSON validity is judged on compared answers only: a failed replay is no answer.
            candidate_replays=c_n,
            candidate_json_invalid=c_invalid,
            baseline_replays=noise_n,
            baseline_json_invalid=noise_invalid,
            # The watch's replays of live candidate calls to the baseline model.
            rollback_replays=target_replays,
            rollback_failed=target_failed,
            rollback_latency_delta_ms=Moments(delta_n, delta_sum, delta_sq),
        ),
    )
