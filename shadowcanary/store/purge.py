"""Retention: delete old raw rows in small batches, each batch its own short transaction.

Batches keep locks and WAL bursts small so the purge can run beside live writers.
``FOR UPDATE SKIP LOCKED`` leaves rows a writer holds right now for the next run
instead of waiting on them (or deadlocking with them).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Table, delete, select, tuple_

from shadowcanary.store.models import (
    CaptureRow,
    ComparisonRow,
    DeadLetterRow,
    JudgeRollupRow,
    JudgeVerdictRow,
    LiveRollupRow,
    OutcomeRow,
    ReplayRow,
    ShadowRollupRow,
)

CAPTURES: Table = CaptureRow.__table__  # type: ignore[assignment]
REPLAYS: Table = ReplayRow.__table__  # type: ignore[assignment]
COMPARISONS: Table = ComparisonRow.__table__  # type: ignore[assignment]
DEAD_LETTERS: Table = DeadLetterRow.__table__  # type: ignore[assignment]
LIVE_ROLLUPS: Table = LiveRollupRow.__table__  # type: ignore[assignment]
SHADOW_ROLLUPS: Table = ShadowRollupRow.__table__  # type: ignore[assignment]
OUTCOMES: Table = OutcomeRow.__table__  # type: ignore[assignment]
VERDICTS: Table = JudgeVerdictRow.__table__  # type: ignore[assignment]
JUDGE_ROLLUPS: Table = JudgeRollupRow.__table__  # type: ignore[assignment]

PURGED_TABLES = (
    "captures",
    "replays",
    "comparisons",
    "dead_letters",
    "outcomes",
    "live_rollups",
    "shadow_rollups",
    "judge_verdicts",
    "judge_rollups",
)


def captures_batch(conn: Connection, older_than: datetime, batch_size: int) -> dict[str, int]:
    """Delete up to ``batch_size`` captures received before ``older_than``, children first."""
    ids = list(
        conn.execute(
            select(CAPTURES.c.event_id)
            .where(CAPTURES.c.received_at < older_than)
            .order_by(CAPTURES.c.received_at)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    if not ids:
        return {"captures": 0}
    # Explicit child deletes (the foreign keys would cascade) so the counts are exact.
    comparisons = conn.execute(delete(COMPARISONS).where(COMPARISONS.c.event_id.in_(ids))).rowcount
    verdicts = conn.execute(delete(VERDICTS).where(VERDICTS.c.event_id.in_(ids))).rowcount
    replays = conn.execute(delete(REPLAYS).where(REPLAYS.c.event_id.in_(ids))).rowcount
    captures = conn.execute(delete(CAPTURES).where(CAPTURES.c.event_id.in_(ids))).rowcount
    return {
        "captures": captures,
        "replays": replays,
        "comparisons": comparisons,
        "judge_verdicts": verdicts,
    }


def dead_letters_batch(conn: Connection, older_than: datetime, batch_size: int) -> dict[str, int]:
    """Delete up to ``batch_size`` dead letters recorded before ``older_than``."""
    doomed = (
        select(DEAD_LETTERS.c.id)
        .where(DEAD_LETTERS.c.recorded_at < older_than)
        .order_by(DEAD_LETTERS.c.recorded_at)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    deleted = conn.execute(delete(DEAD_LETTERS).where(DEAD_LETTERS.c.id.in_(doomed))).rowcount
    return {"dead_letters": deleted}


def outcomes_batch(conn: Connection, older_than: datetime, batch_size: int) -> dict[str, int]:
    """Delete up to ``batch_size`` outcome reports received before ``older_than``.

    What they added to the rollups stays; a duplicate of a purged report would count again.
    """
    doomed = (
        select(OUTCOMES.c.event_id)
        .where(OUTCOMES.c.received_at < older_than)
        .order_by(OUTCOMES.c.received_at)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    deleted = conn.execute(delete(OUTCOMES).where(OUTCOMES.c.event_id.in_(doomed))).rowcount
    return {"outcomes": deleted}


def rollups_batch(conn: Connection, older_than: datetime, batch_size: int) -> dict[str, int]:
    """Delete up to ``batch_size`` minute rows of each rollup table before ``older_than``."""
    deleted: dict[str, int] = {}
    for name, table, second in (
        ("live_rollups", LIVE_ROLLUPS, LIVE_ROLLUPS.c.arm),
        ("shadow_rollups", SHADOW_ROLLUPS, SHADOW_ROLLUPS.c.kind),
    ):
        key = tuple_(table.c.rollout, second, table.c.minute)
        doomed = (
            select(table.c.rollout, second, table.c.minute)
            .where(table.c.minute < older_than)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
        deleted[name] = conn.execute(delete(table).where(key.in_(doomed))).rowcount
    judge = JUDGE_ROLLUPS.c
    doomed = (
        select(judge.rollout, judge.kind, judge.route, judge.minute)
        .where(judge.minute < older_than)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    )
    key = tuple_(judge.rollout, judge.kind, judge.route, judge.minute)
    deleted["judge_rollups"] = conn.execute(delete(JUDGE_ROLLUPS).where(key.in_(doomed))).rowcount
    return deleted
