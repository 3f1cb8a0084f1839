"""Rollouts and their audit log in Postgres.

A rollout is one row, written with optimistic concurrency: every ``save`` names the
version it read and fails with ``StaleRollout`` when another writer (an operator's
command, a second controller) got there first, so nobody acts on a state they never
saw. The audit log is append-only: this module has no path that changes or deletes an
entry, and the database refuses to (migration 0003).

A name belongs to one *active* rollout at a time (running, paused or overridden).
Once a rollout has finished (completed, rolled back, aborted) ``create_rollout`` may
start a new one under the same name: the row is replaced, its version keeps counting
up, and the old run's audit entries stay in the log before the new START entry.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from psycopg import errors as pg_errors
from sqlalchemy import Connection, Engine, Row, Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from shadowcanary.errors import PermanentError, ServiceUnavailable
from shadowcanary.plan import RolloutPlan
from shadowcanary.rollout_records import (
    AuditAction,
    AuditEntry,
    RolloutRecord,
    RolloutStatus,
)
from shadowcanary.store.models import RolloutAuditRow, RolloutRow

if TYPE_CHECKING:
    from shadowcanary.store.evidence_reads import EvidenceCache

log = structlog.get_logger(__name__)
T = TypeVar("T")

ROLLOUTS: Table = RolloutRow.__table__  # type: ignore[assignment]
AUDIT: Table = RolloutAuditRow.__table__  # type: ignore[assignment]


class RolloutNotFound(PermanentError):
    """No rollout has this name."""


class RolloutExists(PermanentError):
    """An active rollout already has this name."""


class StaleRollout(PermanentError):
    """Someone else saved the rollout since it was read: re-read it and decide again."""

    def __init__(self, message: str, *, expected: int, current: int, hint: str) -> None:
        super().__init__(message, hint=hint)
        self.expected = expected
        self.current = current


class RolloutStore:
    """Rollout state and audit log, behind one object per process."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # load_evidence's memory of unchanged minutes, per rollout (see controller.evidence).
        self.evidence_cache: dict[str, EvidenceCache] = {}

    @property
    def engine(self) -> Engine:
        return self._engine

    # -- rollouts ---------------------------------------------------------------------

    def create_rollout(self, plan: RolloutPlan, *, now: datetime, actor: str) -> RolloutRecord:
        """Start a rollout of ``plan`` (step -1, flag at 0 %) and write its START entry.

        Raises:
            RolloutExists: an active rollout already has ``plan.name``.
        """
        _require_aware(now=now)
        values = {
            "plan": plan.model_dump(mode="json"),
            "status": RolloutStatus.RUNNING.value,
            "step_index": -1,
            "percent": 0,
            "started_at": now,
            "step_started_at": now,
            "updated_at": now,
            "baseline_p99_ms": None,
        }
        start = AuditEntry(
            id=None,
            at=now,
            rollout=plan.name,
            actor=actor,
            action=AuditAction.START,
            from_percent=None,
            to_percent=0,
            reason=(
                f"rollout started: {plan.baseline} -> {plan.candidate} on flag {plan.flag}, "
                f"steps {' -> '.join(f'{p} %' for p in plan.step_percents)}"
            ),
        )

        def work(conn: Connection) -> RolloutRecord:
            existing = conn.execute(
                select(ROLLOUTS).where(ROLLOUTS.c.name == plan.name).with_for_update()
            ).one_or_none()
            if existing is None:
                stmt = (
                    pg_insert(ROLLOUTS)
                    .values(name=plan.name, version=1, **values)
                    .on_conflict_do_nothing(index_elements=["name"])
                    .returning(*ROLLOUTS.c)
                )
                row = conn.execute(stmt).one_or_none()
                if row is None:  # another process created it between our read and insert
                    raise _exists(plan.name, RolloutStatus.RUNNING)
            else:
                status = RolloutStatus(existing.status)
                if status.active:
                    raise _exists(plan.name, status)
                row = conn.execute(
                    update(ROLLOUTS)
                    .where(ROLLOUTS.c.name == plan.name)
                    .values(version=existing.version + 1, **values)
                    .returning(*ROLLOUTS.c)
                ).one()
            _insert_audit(conn, start)
            return _record(row)

        record = self._transaction("creating a rollout", work)
        log.info("rollout created", rollout=record.name, actor=actor, version=record.version)
        return record

    def get(self, name: str) -> RolloutRecord:
        """The rollout called ``name``.

        Raises:
            RolloutNotFound: with the names that do exist.
        """

        def work(conn: Connection) -> RolloutRecord:
            row = conn.execute(select(ROLLOUTS).where(ROLLOUTS.c.name == name)).one_or_none()
            if row is None:
                raise _not_found(conn, name)
            return _record(row)

        return self._read("reading a rollout", work)

    def list(self) -> builtins.list[RolloutRecord]:
        """Every rollout, active or finished, by name."""
        return self._read(
            "listing rollouts",
            lambda conn: [
                _record(row) for row in conn.execute(select(ROLLOUTS).order_by(ROLLOUTS.c.name))
            ],
        )

    def save(self, record: RolloutRecord, audit: AuditEntry | None = None) -> RolloutRecord:
        """Write ``record`` (and ``audit``) in one transaction; returns it at its new version.

        Raises:
            StaleRollout: the stored version is no longer ``record.version``.
            RolloutNotFound: there is no such rollout.
        """
        _require_aware(
            started_at=record.started_at,
            step_started_at=record.step_started_at,
            updated_at=record.updated_at,
        )
        if audit is not None and audit.rollout != record.name:
            raise ValueError(
                f"audit entry for {audit.rollout!r} saved with rollout {record.name!r}"
            )

        def work(conn: Connection) -> RolloutRecord:
            row = conn.execute(
                update(ROLLOUTS)
                .where(ROLLOUTS.c.name == record.name, ROLLOUTS.c.version == record.version)
                .values(version=record.version + 1, **_values(record))
                .returning(*ROLLOUTS.c)
            ).one_or_none()
            if row is None:
                current = conn.execute(
                    select(ROLLOUTS.c.version).where(ROLLOUTS.c.name == record.name)
                ).scalar_one_or_none()
                if current is None:
                    raise _not_found(conn, record.name)
                raise StaleRollout(
                    f"rollout {record.name!r} changed since it was read "
                    f"(read version {record.version}, stored version {current})",
                    expected=record.version,
                    current=current,
                    hint="another controller or an operator command saved it first; "
                    "read it again and decide on the new state",
                )
            if audit is not None:
                _insert_audit(conn, audit)
            return _record(row)

        return self._transaction("saving a rollout", work)

    # -- audit log --------------------------------------------------------------------

    def append_audit(self, entry: AuditEntry) -> AuditEntry:
        """Add one entry to a rollout's audit log; returns it with its id.

        Raises:
            RolloutNotFound: the entry names no rollout.
        """
        return self._transaction("appending to the audit log", lambda c: _insert_audit(c, entry))

    def history(
        self,
        name: str,
        *,
        limit: int = 100,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> builtins.list[AuditEntry]:
        """The newest ``limit`` audit entries of a rollout in [since, until), newest first.

        Raises:
            RolloutNotFound: there is no such rollout.
        """

        def work(conn: Connection) -> builtins.list[AuditEntry]:
            stmt = select(AUDIT).where(AUDIT.c.rollout == name)
            if since is not None:
                stmt = stmt.where(AUDIT.c.at >= since)
            if until is not None:
                stmt = stmt.where(AUDIT.c.at < until)
            rows = conn.execute(
                stmt.order_by(AUDIT.c.at.desc(), AUDIT.c.id.desc()).limit(limit)
            ).all()
            if not rows:
                exists = conn.execute(
                    select(ROLLOUTS.c.name).where(ROLLOUTS.c.name == name)
                ).one_or_none()
                if exists is None:
                    raise _not_found(conn, name)
            return [_entry(row) for row in rows]

        return self._read("reading the audit log", work)

    def runs(self, name: str) -> builtins.list[AuditEntry]:
        """The START entries of a rollout, oldest first: one per run (its id is the run id)."""

        def work(conn: Connection) -> builtins.list[AuditEntry]:
            rows = conn.execute(
                select(AUDIT)
                .where(AUDIT.c.rollout == name, AUDIT.c.action == AuditAction.START.value)
                .order_by(AUDIT.c.at, AUDIT.c.id)
            ).all()
            return [_entry(row) for row in rows]

        return self._read("reading the rollout's runs", work)

    def percent_timeline(self, name: str) -> builtins.list[tuple[datetime, int]]:
        """The flag's percentage over the current run: (since when, percent), oldest first.

        Built from the audit entries that set or observed a percentage since the
        rollout (re)started; consecutive entries with the same percentage are merged.

        Raises:
            RolloutNotFound: there is no such rollout.
        """

        def work(conn: Connection) -> builtins.list[tuple[datetime, int]]:
            started = conn.execute(
                select(ROLLOUTS.c.started_at).where(ROLLOUTS.c.name == name)
            ).scalar_one_or_none()
            if started is None:
                raise _not_found(conn, name)
            return timeline(conn, name, since=started)

        return self._read("reading the percent timeline", work)

    # -- plumbing ---------------------------------------------------------------------

    def _transaction(self, what: str, work: Callable[[Connection], T]) -> T:
        try:
            with self._engine.begin() as conn:
                return work(conn)
        except OperationalError as exc:
            raise unavailable(what, exc) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise unavailable(what, exc) from exc
            raise

    def _read(self, what: str, work: Callable[[Connection], T]) -> T:
        try:
            with self._engine.connect() as conn:
                return work(conn)
        except OperationalError as exc:
            raise unavailable(what, exc) from exc


def timeline(conn: Connection, name: str, *, since: datetime) -> list[tuple[datetime, int]]:
    """``percent_timeline`` on an open connection (one indexed range read)."""
    rows = conn.execute(
        select(AUDIT.c.at, AUDIT.c.to_percent)
        .where(AUDIT.c.rollout == name, AUDIT.c.at >= since, AUDIT.c.to_percent.is_not(None))
        .order_by(AUDIT.c.at, AUDIT.c.id)
    ).all()
    points: list[tuple[datetime, int]] = []
    for at, percent in rows:
        if not points or points[-1][1] != percent:
            points.append((_utc(at), int(percent)))
    return points


def unavailable(what: str, exc: DBAPIError) -> ServiceUnavailable:
    """The error a controller holds on: Postgres could not answer."""
    return ServiceUnavailable(
        f"Postgres failed while {what}: {type(exc.orig).__name__}: {exc.orig}",
        hint="check that Postgres is up and SHADOWCANARY_DATABASE_URL points at it; "
        "the controller holds and retries",
    )


def _insert_audit(conn: Connection, entry: AuditEntry) -> AuditEntry:
    _require_aware(at=entry.at)
    try:
        # A savepoint: a missing rollout must not abort the caller's transaction state.
        with conn.begin_nested():
            new_id = conn.execute(
                pg_insert(AUDIT)
                .values(
                    at=entry.at,
                    rollout=entry.rollout,
                    actor=entry.actor,
                    action=entry.action.value,
                    from_percent=entry.from_percent,
                    to_percent=entry.to_percent,
                    reason=entry.reason,
                    decision=entry.decision,
                    inputs=entry.inputs,
                )
                .returning(AUDIT.c.id)
            ).scalar_one()
    except IntegrityError as exc:
        if isinstance(exc.orig, pg_errors.ForeignKeyViolation):
            raise _not_found(conn, entry.rollout) from exc
        raise
    return AuditEntry(
        id=new_id,
        at=entry.at,
        rollout=entry.rollout,
        actor=entry.actor,
        action=entry.action,
        from_percent=entry.from_percent,
        to_percent=entry.to_percent,
        reason=entry.reason,
        decision=entry.decision,
        inputs=entry.inputs,
    )


def _values(record: RolloutRecord) -> dict[str, Any]:
    return {
        "plan": record.plan.model_dump(mode="json"),
        "status": record.status.value,
        "step_index": record.step_index,
        "percent": record.percent,
        "started_at": record.started_at,
        "step_started_at": record.step_started_at,
        "updated_at": record.updated_at,
        "baseline_p99_ms": record.baseline_p99_ms,
    }


def _record(row: Row[Any]) -> RolloutRecord:
    return RolloutRecord(
        name=row.name,
        plan=RolloutPlan.model_validate(row.plan),
        status=RolloutStatus(row.status),
        step_index=row.step_index,
        percent=row.percent,
        started_at=_utc(row.started_at),
        step_started_at=_utc(row.step_started_at),
        updated_at=_utc(row.updated_at),
        baseline_p99_ms=row.baseline_p99_ms,
        version=row.version,
    )


def _entry(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=_utc(row.at),
        rollout=row.rollout,
        actor=row.actor,
        action=AuditAction(row.action),
        from_percent=row.from_percent,
        to_percent=row.to_percent,
        reason=row.reason,
        decision=row.decision,
        inputs=row.inputs,
    )


def _not_found(conn: Connection, name: str) -> RolloutNotFound:
    known = conn.execute(
        select(ROLLOUTS.c.name, ROLLOUTS.c.status).order_by(ROLLOUTS.c.name).limit(20)
    ).all()
    if known:
        listed = ", ".join(f"{n} ({s})" for n, s in known)
        hint = f"known rollouts: {listed}; `shadowcanary rollout status` lists them"
    else:
        hint = "no rollout has been started yet; start one with `shadowcanary rollout start PLAN`"
    return RolloutNotFound(f"no rollout named {name!r}", hint=hint)


def _exists(name: str, status: RolloutStatus) -> RolloutExists:
    return RolloutExists(
        f"rollout {name!r} is already {status.value}",
        hint="finish it first (`shadowcanary rollout abort` or `rollback`), "
        "or give the new plan another name",
    )


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _require_aware(**moments: datetime) -> None:
    # A naive datetime would be read in the Postgres session's time zone: silently wrong.
    for name, moment in moments.items():
        if moment.tzinfo is None:
            raise ValueError(
                f"{name} must be timezone-aware (e.g. datetime.now(UTC)), got {moment}"
            )
