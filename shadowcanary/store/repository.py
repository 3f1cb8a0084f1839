"""The store: idempotent batched writes of raw rows plus their rollups, and rollup reads.

Delivery is at-least-once, so every write is keyed (event id; event id and replay
kind) and inserted with ``ON CONFLICT DO NOTHING ... RETURNING``: only rows new to
the database feed the rollups, in the same transaction, so a redelivered batch
changes nothing (exactly-once effect).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

import structlog
from psycopg import errors as pg_errors
from sqlalchemy import Connection, Engine, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, OperationalError

from shadowcanary.errors import ServiceUnavailable
from shadowcanary.events import Arm, CapturedCall
from shadowcanary.shadow_results import DeadLetter, ReplayKind, ReplayRecord
from shadowcanary.store import bulk, purge, reads, rows, settled
from shadowcanary.store.inputs import AssessedCapture
from shadowcanary.store.models import (
    CaptureRow,
    ComparisonRow,
    DeadLetterRow,
    ReplayRow,
)
from shadowcanary.store.rollups import (
    RollupKey,
    add_paired_difference,
    add_replay,
    live_buckets,
    shadow_bucket,
    upsert_live,
    upsert_shadow,
)
from shadowcanary.store.totals import Headline, LiveTotals, ShadowTotals, StoreCounts

__all__ = ["AssessedCapture", "Store"]

log = structlog.get_logger(__name__)
T = TypeVar("T")

CAPTURES: Table = CaptureRow.__table__  # type: ignore[assignment]
REPLAYS: Table = ReplayRow.__table__  # type: ignore[assignment]
COMPARISONS: Table = ComparisonRow.__table__  # type: ignore[assignment]
DEAD_LETTERS: Table = DeadLetterRow.__table__  # type: ignore[assignment]

# Lock conflicts Postgres resolves by aborting one transaction: retrying is the fix.
_RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)
_ATTEMPTS = 4


class Store:
    """Everything shadowcanary keeps in Postgres, behind one object per process."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- writes -----------------------------------------------------------------------

    def insert_captures(
        self, captures: Sequence[AssessedCapture], *, received_at: datetime
    ) -> list[str]:
        """Store live calls and roll up the ones new to the database; returns their ids."""
        _require_aware(received_at=received_at)
        unique: dict[str, AssessedCapture] = {}
        for capture in captures:
            unique.setdefault(capture.event.event_id, capture)
        if not unique:
            return []
        # Sorted: concurrent batches with overlapping ids then wait instead of deadlocking.
        ordered = [unique[event_id] for event_id in sorted(unique)]
        values = [rows.capture_row(c, received_at) for c in ordered]

        def work(conn: Connection) -> set[str]:
            inserted = bulk.insert_new(
                conn, CAPTURES, values, conflict=("event_id",), returning=("event_id",)
            )
            new = {event_id for (event_id,) in inserted}
            upsert_live(conn, live_buckets(c for c in ordered if c.event.event_id in new))
            return new

        new = self._transaction("inserting captures", work)
        log.debug("captures stored", received=len(captures), new=len(new))
        return [event_id for event_id in unique if event_id in new]

    def record_replays(self, records: Sequence[ReplayRecord], *, recorded_at: datetime) -> int:
        """Store replays and comparisons, rolling up the new ones; returns how many were new.

        Call it after the captures' ``insert_captures`` committed: a replay whose capture
        is not stored (never inserted, or purged) is skipped with a warning.
        """
        _require_aware(recorded_at=recorded_at)
        unique: dict[tuple[str, str], ReplayRecord] = {}
        for record in records:
            unique.setdefault((record.event_id, record.kind.value), record)
        if not unique:
            return 0
        ordered = [unique[key] for key in sorted(unique)]
        event_ids = sorted({record.event_id for record in ordered})

        def work(conn: Connection) -> int:
            # Lock the captures first, in id order: two workers recording the candidate
            # and the noise replay of one event run one after the other, so the second
            # sees the first's comparison and the paired difference is added exactly once.
            # One array parameter, not one bind per id: a fixed statement psycopg caches.
            captured = {
                row.event_id: row
                for row in conn.exec_driver_sql(
                    "SELECT event_id, rollout, started_at FROM captures "
                    "WHERE event_id = ANY(%s) ORDER BY event_id FOR NO KEY UPDATE",
                    (event_ids,),
                )
            }
            # A dead letter is the event's outcome: a late or redelivered replay adds nothing.
            given_up = settled.replay_dead_lettered(conn, captured.keys())
            kept = [r for r in ordered if r.event_id in captured and r.event_id not in given_up]
            if len(kept) + sum(r.event_id in given_up for r in ordered) < len(ordered):
                missing = sorted({r.event_id for r in ordered} - captured.keys())
                log.warning(
                    "replays for unknown captures skipped",
                    count=len(missing),
                    event_ids=missing[:10],
                )
            if not kept:
                return 0
            new_keys = set(
                bulk.insert_new(
                    conn,
                    REPLAYS,
                    [rows.replay_row(r, recorded_at) for r in kept],
                    conflict=("event_id", "kind"),
                    returning=("event_id", "kind"),
                )
            )
            new = [r for r in kept if (r.event_id, r.kind.value) in new_keys]
            compared = [r for r in new if r.comparison is not None]
            bulk.insert_new(
                conn,
                COMPARISONS,
                [
                    rows.comparison_row(r, cmp, captured[r.event_id].rollout, recorded_at)
                    for r in compared
                    if (cmp := r.comparison) is not None
                ],
                conflict=("event_id", "kind"),
            )
            buckets: dict[RollupKey, dict[str, float]] = {}
            for record in new:
                capture = captured[record.event_id]
                add_replay(
                    shadow_bucket(buckets, capture.rollout, record.kind, capture.started_at), record
                )
            for event_id, difference in _completed_pairs(conn, {r.event_id for r in compared}):
                capture = captured[event_id]
                bucket = shadow_bucket(
                    buckets, capture.rollout, ReplayKind.CANDIDATE, capture.started_at
                )
                add_paired_difference(bucket, difference)
            upsert_shadow(conn, buckets)
            return len(new)

        new_count = self._transaction("recording replays", work)
        log.debug("replays stored", received=len(records), new=new_count)
        return new_count

    def record_replay_dead_letters(
        self, letters: Sequence[DeadLetter], *, recorded_at: datetime
    ) -> int:
        """Give up on events that have no outcome yet; returns how many letters were new.

        An event already compared, or already dead-lettered by an earlier delivery, is
        left alone: each event ends with exactly one outcome.
        """
        _require_aware(recorded_at=recorded_at)
        by_event = {letter.event_id: letter for letter in letters if letter.event_id}

        def work(conn: Connection) -> int:
            stored = settled.lock_captures(conn, by_event)
            done = settled.replay_dead_lettered(conn, stored) | settled.candidate_replayed(
                conn, stored
            )
            values = [
                rows.dead_letter_row(letter, recorded_at)
                for event_id, letter in sorted(by_event.items())
                if event_id in stored and event_id not in done
            ]
            if values:
                conn.execute(pg_insert(DEAD_LETTERS), values)
            return len(values)

        if not by_event:
            return 0
        new = self._transaction("recording replay dead letters", work)
        log.info("replay dead letters recorded", count=new, already_settled=len(by_event) - new)
        return new

    def record_dead_letters(self, letters: Sequence[DeadLetter], *, recorded_at: datetime) -> None:
        """Keep events that could not be processed, with the reason, for a person to look at."""
        _require_aware(recorded_at=recorded_at)
        if not letters:
            return
        values = [rows.dead_letter_row(letter, recorded_at) for letter in letters]
        self._transaction(
            "recording dead letters", lambda conn: conn.execute(pg_insert(DEAD_LETTERS), values)
        )
        log.info(
            "dead letters recorded",
            count=len(values),
            stages=sorted({letter.stage for letter in letters}),
        )

    def purge(
        self,
        older_than: datetime,
        *,
        rollups_older_than: datetime | None = None,
        batch_size: int = 5_000,
    ) -> dict[str, int]:
        """Delete raw rows older than ``older_than`` in batches; keep rollups unless told.

        Captures go by ``received_at`` (their replays and comparisons with them), dead
        letters by ``recorded_at``, outcome reports by ``received_at``, rollups (only
        when ``rollups_older_than`` is given) by their minute. Rows locked by a writer
        right now are left for the next run. Returns the number of rows deleted per table.
        """
        _require_aware(older_than=older_than, rollups_older_than=rollups_older_than)
        deleted = dict.fromkeys(purge.PURGED_TABLES, 0)
        steps: list[tuple[str, Callable[[Connection], dict[str, int]]]] = [
            ("captures", lambda c: purge.captures_batch(c, older_than, batch_size)),
            ("dead_letters", lambda c: purge.dead_letters_batch(c, older_than, batch_size)),
            ("outcomes", lambda c: purge.outcomes_batch(c, older_than, batch_size)),
        ]
        if rollups_older_than is not None:
            cutoff = rollups_older_than
            steps.append(("rollups", lambda c: purge.rollups_batch(c, cutoff, batch_size)))
        for what, batch in steps:
            while True:
                counts = self._transaction(f"purging {what}", batch)
                for table, n in counts.items():
                    deleted[table] += n
                if max(counts.values()) < batch_size:
                    break
        log.info("purged", older_than=older_than.isoformat(), **deleted)
        return deleted

    # -- reads ------------------------------------------------------------------------

    def get_captures(self, event_ids: Sequence[str]) -> dict[str, CapturedCall]:
        """The stored events by id (ids not found are absent from the result)."""
        if not event_ids:
            return {}
        # The event as JSON text, validated by pydantic's JSON parser: cheaper than
        # psycopg's json.loads into dicts and then validating the dicts.
        rows = self._read(
            "reading captures",
            lambda conn: conn.exec_driver_sql(
                "SELECT event_id, event::text FROM captures WHERE event_id = ANY(%s)",
                (list(event_ids),),
            ).all(),
        )
        return {event_id: CapturedCall.model_validate_json(event) for event_id, event in rows}

    def replays_done(self, event_ids: Sequence[str]) -> set[tuple[str, ReplayKind]]:
        """Which (event, kind) replays are already stored: the workers skip those."""
        if not event_ids:
            return set()
        rows = self._read(
            "reading replays",
            lambda conn: conn.exec_driver_sql(
                "SELECT event_id, kind FROM replays WHERE event_id = ANY(%s)", (list(event_ids),)
            ).all(),
        )
        return {(event_id, ReplayKind(kind)) for event_id, kind in rows}

    def replay_work(
        self, event_ids: Sequence[str]
    ) -> tuple[dict[str, CapturedCall], set[tuple[str, ReplayKind]]]:
        """``get_captures`` and ``replays_done`` of the same ids in one round trip.

        A replay batch starts with both; on a busy worker each round trip also waits
        for the GIL, so one query instead of two shortens every batch.
        """
        if not event_ids:
            return {}, set()
        rows = self._read(
            "reading captures to replay",
            lambda conn: conn.exec_driver_sql(
                "SELECT c.event_id, c.event::text,"
                " (SELECT array_agg(r.kind) FROM replays r WHERE r.event_id = c.event_id),"
                " EXISTS (SELECT 1 FROM dead_letters d"
                "  WHERE d.event_id = c.event_id AND d.stage = 'replay')"
                " FROM captures c WHERE c.event_id = ANY(%s)",
                (list(event_ids),),
            ).all(),
        )
        captures = {eid: CapturedCall.model_validate_json(event) for eid, event, _, _ in rows}
        # A dead-lettered event is settled: a redelivered task must not replay it again.
        done = {
            (event_id, ReplayKind(kind))
            for event_id, _, kinds, given_up in rows
            for kind in (tuple(ReplayKind) if given_up else kinds or ())
        }
        return captures, done

    def unsettled_captures(
        self, *, received_from: datetime, received_before: datetime, limit: int
    ) -> list[str]:
        """Baseline answers stored in the range with no outcome yet (their replay was lost)."""
        _require_aware(received_from=received_from, received_before=received_before)
        return self._read(
            "finding captures without an outcome",
            lambda conn: settled.unsettled(conn, received_from, received_before, limit),
        )

    def counts(self) -> StoreCounts:
        """Totals from the rollups (and the small dead-letter table): cheap at any size."""
        return self._read("counting", reads.counts)

    def live_totals(
        self, rollout: str | None, since: datetime, until: datetime
    ) -> dict[Arm, LiveTotals]:
        """Live outcomes per arm over minutes in [since, until), every arm present.

        ``rollout=None`` merges every rollout; '' is traffic outside any rollout.
        """
        _require_aware(since=since, until=until)
        return self._read(
            "reading live rollups", lambda c: reads.live_totals(c, rollout, since, until)
        )

    def shadow_totals(
        self, rollout: str | None, since: datetime, until: datetime
    ) -> dict[ReplayKind, ShadowTotals]:
        """Replay and comparison totals per kind over minutes in [since, until)."""
        _require_aware(since=since, until=until)
        return self._read(
            "reading shadow rollups", lambda c: reads.shadow_totals(c, rollout, since, until)
        )

    def dead_lettered_replays(self, rollout: str) -> int:
        """Events of ``rollout`` dead-lettered at the replay stage: never to be compared."""
        return self._read(
            "counting dead-lettered replays", lambda c: reads.dead_lettered_replays(c, rollout)
        )

    def headline(self, rollout: str | None = None) -> Headline:
        """The figures an operator looks at first, over all stored rollups of ``rollout``."""

        def work(conn: Connection) -> Headline:
            shadow = reads.shadow_totals(conn, rollout, None, None)
            live = reads.live_totals(conn, rollout, None, None)
            return Headline.of(rollout, shadow, live)

        return self._read("reading the headline", work)

    # -- plumbing ---------------------------------------------------------------------

    def _transaction(self, what: str, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one transaction, retrying lock conflicts Postgres aborted.

        Raises:
            ServiceUnavailable: Postgres is unreachable or kept aborting the transaction.
        """
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self._engine.begin() as conn:
                    return work(conn)
            except OperationalError as exc:
                if isinstance(exc.orig, _RETRYABLE) and attempt < _ATTEMPTS:
                    log.info(
                        "transaction retried",
                        what=what,
                        attempt=attempt,
                        error=type(exc.orig).__name__,
                    )
                    continue
                raise _unavailable(what, exc) from exc
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    raise _unavailable(what, exc) from exc
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, what: str, work: Callable[[Connection], T]) -> T:
        try:
            with self._engine.connect() as conn:
                return work(conn)
        except OperationalError as exc:
            raise _unavailable(what, exc) from exc


def _require_aware(**moments: datetime | None) -> None:
    # A naive datetime would be read in the Postgres session's time zone: silently wrong.
    for name, moment in moments.items():
        if moment is not None and moment.tzinfo is None:
            raise ValueError(
                f"{name} must be timezone-aware (e.g. datetime.now(UTC)), got {moment}"
            )


def _unavailable(what: str, exc: DBAPIError) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"Postgres failed while {what}: {type(exc.orig).__name__}: {exc.orig}",
        hint="check that Postgres is up and SHADOWCANARY_DATABASE_URL points at it; "
        "the task will be retried",
    )


def _completed_pairs(conn: Connection, event_ids: set[str]) -> list[tuple[str, float]]:
    """D = candidate - noise lexical similarity for events that now have both comparisons.

    Only events that got a new comparison in this transaction are asked about, and
    their capture rows are locked, so each pair is found complete exactly once.
    """
    if not event_ids:
        return []
    rows = conn.exec_driver_sql(
        "SELECT event_id, kind, lexical_similarity FROM comparisons WHERE event_id = ANY(%s)",
        (sorted(event_ids),),
    ).all()
    by_event: dict[str, dict[str, float]] = {}
    for event_id, kind, similarity in rows:
        by_event.setdefault(event_id, {})[kind] = similarity
    return [
        (event_id, sims[ReplayKind.CANDIDATE.value] - sims[ReplayKind.NOISE.value])
        for event_id, sims in sorted(by_event.items())
        if ReplayKind.CANDIDATE.value in sims and ReplayKind.NOISE.value in sims
    ]
