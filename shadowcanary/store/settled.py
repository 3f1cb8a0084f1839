"""Which events already have their one outcome: a candidate replay or a replay dead letter.

An event ends with exactly one of the two. Both writers lock the event's capture row
first (``lock_captures``), then look here, so a redelivered copy of a replay task that
runs beside (or after) the original cannot add the other outcome.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Connection

# One array parameter, not one bind per id: a fixed statement psycopg caches.
_LOCK_CAPTURES = (
    "SELECT event_id FROM captures WHERE event_id = ANY(%s) ORDER BY event_id FOR NO KEY UPDATE"
)
_DEAD_LETTERED = (
    "SELECT DISTINCT event_id FROM dead_letters WHERE stage = 'replay' AND event_id = ANY(%s)"
)
_CANDIDATE_REPLAYED = "SELECT event_id FROM replays WHERE kind = 'candidate' AND event_id = ANY(%s)"


def lock_captures(conn: Connection, event_ids: Collection[str]) -> set[str]:
    """Lock the captures of ``event_ids`` (in id order: no deadlock); returns those stored."""
    return {row[0] for row in conn.exec_driver_sql(_LOCK_CAPTURES, (sorted(event_ids),))}


def replay_dead_lettered(conn: Connection, event_ids: Collection[str]) -> set[str]:
    """The events among ``event_ids`` given up on (their outcome is the dead letter)."""
    if not event_ids:
        return set()
    return {row[0] for row in conn.exec_driver_sql(_DEAD_LETTERED, (list(event_ids),))}


def candidate_replayed(conn: Connection, event_ids: Collection[str]) -> set[str]:
    """The events among ``event_ids`` whose candidate replay is stored (their outcome)."""
    if not event_ids:
        return set()
    return {row[0] for row in conn.exec_driver_sql(_CANDIDATE_REPLAYED, (list(event_ids),))}


# Baseline answers (the ones replayed) with neither outcome, oldest first. The
# received_at range keeps the scan on its index, however big the table grows.
_UNSETTLED = (
    "SELECT c.event_id FROM captures c"
    " WHERE c.received_at >= %s AND c.received_at < %s"
    " AND c.arm = 'baseline' AND c.status = 'ok'"
    " AND NOT EXISTS (SELECT 1 FROM replays r"
    "  WHERE r.event_id = c.event_id AND r.kind = 'candidate')"
    " AND NOT EXISTS (SELECT 1 FROM dead_letters d"
    "  WHERE d.event_id = c.event_id AND d.stage = 'replay')"
    " ORDER BY c.received_at LIMIT %s"
)


def unsettled(
    conn: Connection, received_from: datetime, received_before: datetime, limit: int
) -> list[str]:
    """Stored baseline answers received in the range that have no outcome yet."""
    rows = conn.exec_driver_sql(_UNSETTLED, (received_from, received_before, limit))
    return [row[0] for row in rows]
