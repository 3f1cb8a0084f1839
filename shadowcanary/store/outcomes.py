"""User outcomes in Postgres: merge reports per event id, join them to captures, roll up.

A report may arrive before its capture (the tap publishes both; the outcome's task may
run first), long after it, or twice. So storing and joining are separate steps:

1. ``record`` merges each report into its ``outcomes`` row (first value per field wins,
   ``retried``/``escalated`` only turn on: a report delivered twice changes nothing)
   and marks the row dirty;
2. ``join`` (right after recording, and ``join_pending`` from every worker's sweep)
   takes dirty rows whose capture exists, under a row lock, and adds to the capture's
   ``live_rollups`` minute (its rollout, arm and started_at minute) only the difference
   between what the row says now and what it already added (``counted``).

A dirty row whose capture never arrives is an *unknown* event id once it is older than
``OutcomeSettings.unknown_after_s``: counted by ``summary`` (report, worker metric and
log), never silently dropped, and still joined if its capture turns up later. A report
filed through the gateway names its service; it is refused (and counted) when the
capture belongs to another service, so one team cannot move another's rollout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, OperationalError

from shadowcanary.errors import ServiceUnavailable
from shadowcanary.outcomes import Feedback, OutcomeReport, TaskOutcome
from shadowcanary.store import bulk
from shadowcanary.store.models import LIVE_COUNTERS, CaptureRow, LiveRollupRow, OutcomeRow
from shadowcanary.store.rollups import minute_of, rollout_key
from shadowcanary.store.sketch import QuantileSketch

T = TypeVar("T")
OUTCOMES: Table = OutcomeRow.__table__  # type: ignore[assignment]
CAPTURES: Table = CaptureRow.__table__  # type: ignore[assignment]
LIVE: Table = LiveRollupRow.__table__  # type: ignore[assignment]
_LIVE_KEY = ("rollout", "arm", "minute")
_SKETCHES = ("latency_sketch", "ttft_sketch")
# Rows joined per transaction by the sweep: short transactions, bounded lock sets.
JOIN_BATCH = 2_000
FOREIGN_TENANT = "foreign_tenant"


@dataclass(frozen=True, slots=True)
class RecordResult:
    reports: int  # reports in the batch
    new_ids: int  # event ids seen for the first time
    joined: int  # rows whose capture was found (and rolled up) in the same transaction


@dataclass(frozen=True, slots=True)
class OutcomeSummary:
    """How the reports of a period fared; ``unknown`` are ids no capture matched in time."""

    event_ids: int
    reports: int
    joined: int
    pending: int  # waiting for their capture, younger than unknown_after
    unknown: int  # no capture after unknown_after: a wrong id or a capture lost
    refused: int  # filed by a service for another service's call


def contribution(task: str | None, feedback: str | None, retried: bool, escalated: bool,
                 value: float | None) -> dict[str, float]:  # fmt: skip
    """The live_rollups counters one merged outcome adds to its call's minute."""
    return {
        "outcomes_reported": 1,
        "tasks_reported": int(task is not None),
        "tasks_abandoned": int(task == TaskOutcome.ABANDONED),
        "outcomes_negative": int(feedback == Feedback.DOWN or retried),
        "outcomes_escalated": int(escalated),
        "outcome_value_n": int(value is not None),
        "outcome_value_sum": value or 0.0,
        "outcome_value_sq_sum": (value or 0.0) ** 2,
    }


def _merged(reports: Sequence[OutcomeReport]) -> dict[str, dict[str, Any]]:
    """One row per event id, with the batch's own duplicates merged like the database does."""
    rows: dict[str, dict[str, Any]] = {}
    for report in sorted(reports, key=lambda r: r.reported_at):
        row = rows.get(report.event_id)
        if row is None:
            rows[report.event_id] = {
                "event_id": report.event_id,
                "tenant": report.tenant,
                "rollout": report.rollout,
                "task": report.task.value if report.task else None,
                "feedback": report.feedback.value if report.feedback else None,
                "retried": report.retried,
                "escalated": report.escalated,
                "value": report.value,
                "reports": 1,
                "first_reported_at": report.reported_at,
            }
            continue
        for name, given in (
            ("tenant", report.tenant),
            ("rollout", report.rollout),
            ("task", report.task.value if report.task else None),
            ("feedback", report.feedback.value if report.feedback else None),
            ("value", report.value),
        ):
            if row[name] is None:
                row[name] = given
        row["retried"] |= report.retried
        row["escalated"] |= report.escalated
        row["reports"] += 1
    return rows


class OutcomeStore:
    """Outcome reports in Postgres, behind one object per process."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(self, reports: Sequence[OutcomeReport], *, received_at: datetime) -> RecordResult:
        """Merge the reports into their rows and join those whose capture is stored.

        Raises:
            ServiceUnavailable: Postgres could not be written (the caller retries).
        """
        if received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")
        rows = _merged(reports)
        if not rows:
            return RecordResult(0, 0, 0)
        values = [
            {**rows[k], "received_at": received_at, "state": "pending", "dirty": True}
            for k in sorted(rows)  # sorted: concurrent batches wait instead of deadlocking
        ]
        stmt = insert(OUTCOMES).values(values)
        old, new = OUTCOMES.c, stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["event_id"],
            set_={
                "tenant": func.coalesce(old.tenant, new.tenant),
                "rollout": func.coalesce(old.rollout, new.rollout),
                "task": func.coalesce(old.task, new.task),
                "feedback": func.coalesce(old.feedback, new.feedback),
                "value": func.coalesce(old.value, new.value),
                "retried": old.retried | new.retried,
                "escalated": old.escalated | new.escalated,
                "reports": old.reports + new.reports,
                "first_reported_at": func.least(old.first_reported_at, new.first_reported_at),
                # A refused row stays refused: another report does not make it count.
                "dirty": old.state != "refused",
            },
        )

        def work(conn: Connection) -> RecordResult:
            before = set(
                conn.execute(
                    select(OUTCOMES.c.event_id).where(OUTCOMES.c.event_id.in_(list(rows)))
                ).scalars()
            )
            conn.execute(stmt)
            joined = _join(conn, ids=sorted(rows))
            return RecordResult(
                sum(r["reports"] for r in rows.values()), len(rows) - len(before), joined
            )

        return self._transaction("recording outcomes", work)

    def join_pending(self, *, since: datetime, limit: int = JOIN_BATCH) -> int:
        """Join dirty outcomes received since ``since`` whose capture has arrived since.

        Returns how many joined. ``since`` bounds the sweep's work: reports of ids that
        never match (unknown) stay dirty, and are only looked at again for that long.
        """
        return self._transaction(
            "joining outcomes", lambda conn: _join(conn, since=since, limit=limit)
        )

    def count_unknown(self, *, since: datetime, now: datetime, unknown_after: timedelta) -> int:
        """Reports received in [since, now - unknown_after) whose event id matches no capture.

        Reads only dirty rows (a partial index), so it stays cheap for the sweep to run.
        """
        o = OUTCOMES
        stmt = select(func.count()).where(
            o.c.dirty,
            o.c.state == "pending",
            o.c.received_at >= since,
            o.c.received_at < now - unknown_after,
            ~exists().where(CAPTURES.c.event_id == o.c.event_id),
        )
        return int(self._read("counting unknown outcomes", lambda c: c.execute(stmt).scalar_one()))

    def summary(
        self,
        *,
        since: datetime,
        now: datetime,
        unknown_after: timedelta,
        rollout: str | None = None,
    ) -> OutcomeSummary:
        """Counts of the outcomes received since ``since`` (of one rollout when given).

        A rollout's pending and unknown outcomes are those that named it when reported
        (an id no capture matched has no other link to a rollout).
        """
        o = OUTCOMES
        has_capture = exists().where(CAPTURES.c.event_id == o.c.event_id)
        waiting = and_(o.c.state == "pending", ~has_capture)
        old = o.c.received_at < now - unknown_after
        stmt = select(
            func.count(),
            func.coalesce(func.sum(o.c.reports), 0),
            func.count().filter(o.c.state == "joined"),
            func.count().filter(and_(waiting, ~old)),
            func.count().filter(and_(waiting, old)),
            func.count().filter(o.c.state == "refused"),
        ).where(o.c.received_at >= since)
        if rollout is not None:
            stmt = stmt.where(
                case((o.c.joined_rollout.is_not(None), o.c.joined_rollout), else_=o.c.rollout)
                == rollout
            )
        ids, reports, joined, pending, unknown, refused = self._read(
            "summarising outcomes", lambda conn: conn.execute(stmt).one()
        )
        return OutcomeSummary(ids, int(reports), joined, pending, unknown, refused)

    def _transaction(self, what: str, work: Callable[[Connection], T]) -> T:
        try:
            with self._engine.begin() as conn:
                return work(conn)
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, OperationalError) or exc.connection_invalidated:
                raise _unavailable(what, exc) from exc
            raise

    def _read(self, what: str, work: Callable[[Connection], T]) -> T:
        try:
            with self._engine.connect() as conn:
                return work(conn)
        except OperationalError as exc:
            raise _unavailable(what, exc) from exc


def _unavailable(what: str, exc: DBAPIError) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"Postgres failed while {what}: {type(exc.orig).__name__}",
        hint="check that Postgres is up and SHADOWCANARY_DATABASE_URL points at it; "
        "outcome batches are retried",
    )


def _join(
    conn: Connection,
    *,
    ids: Sequence[str] | None = None,
    since: datetime | None = None,
    limit: int = JOIN_BATCH,
) -> int:
    """Add the dirty outcomes (of ``ids``, or received since ``since``) whose capture
    exists to live_rollups."""
    o, c = OUTCOMES, CAPTURES
    stmt = (
        select(
            o.c.event_id,
            o.c.tenant,
            o.c.task,
            o.c.feedback,
            o.c.retried,
            o.c.escalated,
            o.c.value,
            o.c.counted,
            c.c.rollout,
            c.c.arm,
            c.c.started_at,
            c.c.tenant,
        )
        .join(c, c.c.event_id == o.c.event_id)
        .where(o.c.dirty)
    )
    if ids is not None:
        stmt = stmt.where(o.c.event_id.in_(list(ids))).with_for_update(of=o)
    else:
        # Another worker's sweep (or a record) holds some rows: take the others. Never
        # waiting on a lock, the sweep needs no lock order (and reads the dirty index).
        stmt = (
            stmt.where(o.c.received_at >= since)
            .order_by(o.c.received_at)
            .limit(limit)
            .with_for_update(of=o, skip_locked=True)
        )
    deltas: dict[tuple[str, str, datetime], dict[str, float]] = {}
    updates: list[dict[str, Any]] = []
    for (event_id, tenant, task, feedback, retried, escalated, value, counted,
         rollout, arm, started_at, capture_tenant) in conn.execute(stmt):  # fmt: skip
        if tenant is not None and tenant != capture_tenant:
            updates.append(
                {
                    "event_id": event_id,
                    "state": "refused",
                    "refused_reason": FOREIGN_TENANT,
                    "joined_rollout": rollout,
                    "arm": arm,
                    "minute": minute_of(started_at),
                    "counted": counted,
                }
            )
            continue
        now_counts = contribution(task, feedback, retried, escalated, value)
        key = (rollout_key(rollout), arm, minute_of(started_at))
        bucket = deltas.setdefault(key, {"outcome_updates": 0})
        bucket["outcome_updates"] += 1
        for name, amount in now_counts.items():
            bucket[name] = bucket.get(name, 0) + amount - (counted or {}).get(name, 0)
        updates.append(
            {
                "event_id": event_id,
                "state": "joined",
                "refused_reason": None,
                "joined_rollout": rollout,
                "arm": arm,
                "minute": key[2],
                "counted": now_counts,
            }
        )
    _add_to_live(conn, deltas)
    if updates:
        conn.execute(
            update(o)
            .where(o.c.event_id == bindparam("key"))
            .values(
                dirty=False,
                **{name: bindparam(name) for name in updates[0] if name != "event_id"},
            ),
            [{"key": row["event_id"], **row} for row in updates],
        )
    return sum(1 for row in updates if row["state"] == "joined")


def _add_to_live(
    conn: Connection, deltas: Mapping[tuple[str, str, datetime], dict[str, float]]
) -> None:
    if not deltas:
        return
    empty = QuantileSketch().to_json()
    rows = []
    for key in sorted(deltas):  # rollup row locks in key order, as every writer takes them
        counters: dict[str, float] = dict.fromkeys(LIVE_COUNTERS, 0)
        counters.update(deltas[key])
        typed = {
            name: value if LIVE.c[name].type.python_type is float else int(value)
            for name, value in counters.items()
        }
        rows.append({"rollout": key[0], "arm": key[1], "minute": key[2], **typed,
                     "latency_sketch": empty, "ttft_sketch": empty})  # fmt: skip
    bulk.upsert_add(conn, LIVE, rows, keys=_LIVE_KEY, insert_only=_SKETCHES)
