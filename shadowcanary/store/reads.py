"""Reading the rollups: counters summed in SQL, sketches merged in Python. O(buckets)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, Table, cast, func, select

from shadowcanary.events import Arm
from shadowcanary.shadow_results import ReplayKind
from shadowcanary.store.models import (
    LIVE_COUNTERS,
    SHADOW_COUNTERS,
    CaptureRow,
    DeadLetterRow,
    LiveRollupRow,
    ShadowRollupRow,
)
from shadowcanary.store.sketch import QuantileSketch, merge_all
from shadowcanary.store.totals import LiveTotals, ShadowTotals, StoreCounts

LIVE: Table = LiveRollupRow.__table__  # type: ignore[assignment]
SHADOW: Table = ShadowRollupRow.__table__  # type: ignore[assignment]
DEAD_LETTERS: Table = DeadLetterRow.__table__  # type: ignore[assignment]
CAPTURES: Table = CaptureRow.__table__  # type: ignore[assignment]


def _sums(table: Table, names: Sequence[str]) -> list[Any]:
    # sum(bigint) is numeric in Postgres; cast back so Python gets int, not Decimal.
    return [cast(func.coalesce(func.sum(table.c[n]), 0), table.c[n].type).label(n) for n in names]


def _window(
    stmt: Select[Any],
    table: Table,
    rollout: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Select[Any]:
    if rollout is not None:
        stmt = stmt.where(table.c.rollout == rollout)
    if since is not None:
        stmt = stmt.where(table.c.minute >= since)
    if until is not None:
        stmt = stmt.where(table.c.minute < until)
    return stmt


def live_totals(
    conn: Connection, rollout: str | None, since: datetime | None, until: datetime | None
) -> dict[Arm, LiveTotals]:
    """Per arm, every arm present (zeros when it has no data)."""
    counters = conn.execute(
        _window(
            select(LIVE.c.arm, func.count().label("buckets"), *_sums(LIVE, LIVE_COUNTERS)),
            LIVE,
            rollout,
            since,
            until,
        ).group_by(LIVE.c.arm)
    ).mappings()
    by_arm: dict[str, dict[str, Any]] = {row["arm"]: dict(row) for row in counters}
    sketch_rows = conn.execute(
        _window(
            select(LIVE.c.arm, LIVE.c.latency_sketch, LIVE.c.ttft_sketch),
            LIVE,
            rollout,
            since,
            until,
        )
    ).all()
    latency: dict[str, list[QuantileSketch]] = {}
    ttft: dict[str, list[QuantileSketch]] = {}
    for arm, latency_doc, ttft_doc in sketch_rows:
        latency.setdefault(arm, []).append(QuantileSketch.from_json(latency_doc))
        ttft.setdefault(arm, []).append(QuantileSketch.from_json(ttft_doc))
    result: dict[Arm, LiveTotals] = {}
    for arm in Arm:
        row = by_arm.get(arm.value)
        if row is None:
            result[arm] = LiveTotals()
            continue
        row.pop("arm")
        result[arm] = LiveTotals(
            **row,
            latency_sketch=merge_all(latency.get(arm.value, [])),
            ttft_sketch=merge_all(ttft.get(arm.value, [])),
        )
    return result


def shadow_totals(
    conn: Connection, rollout: str | None, since: datetime | None, until: datetime | None
) -> dict[ReplayKind, ShadowTotals]:
    """Per replay kind, every kind present (zeros when it has no data)."""
    rows = conn.execute(
        _window(
            select(SHADOW.c.kind, func.count().label("buckets"), *_sums(SHADOW, SHADOW_COUNTERS)),
            SHADOW,
            rollout,
            since,
            until,
        ).group_by(SHADOW.c.kind)
    ).mappings()
    by_kind = {row["kind"]: {k: v for k, v in row.items() if k != "kind"} for row in rows}
    return {kind: ShadowTotals(**by_kind.get(kind.value, {})) for kind in ReplayKind}


def counts(conn: Connection) -> StoreCounts:
    captured = {
        arm: int(total)
        for arm, total in conn.execute(
            select(LIVE.c.arm, func.coalesce(func.sum(LIVE.c.requests), 0)).group_by(LIVE.c.arm)
        )
    }
    replays, failed, skipped, compared = conn.execute(
        select(*_sums(SHADOW, ("replays", "other_failed", "skipped_budget", "n")))
    ).one()
    dead = conn.execute(select(func.count()).select_from(DEAD_LETTERS)).scalar_one()
    return StoreCounts(
        captured={arm: captured.get(arm.value, 0) for arm in Arm},
        replayed_ok=replays - failed - skipped,
        replayed_failed=failed,
        replayed_skipped_budget=skipped,
        compared=compared,
        dead_lettered=dead,
    )


def dead_lettered_replays(conn: Connection, rollout: str) -> int:
    """Events of ``rollout`` whose replay was given up on (they will never be compared)."""
    letters = DEAD_LETTERS.join(CAPTURES, DEAD_LETTERS.c.event_id == CAPTURES.c.event_id)
    return int(
        conn.execute(
            select(func.count(func.distinct(DEAD_LETTERS.c.event_id)))
            .select_from(letters)
            .where(DEAD_LETTERS.c.stage == "replay", CAPTURES.c.rollout == rollout)
        ).scalar_one()
    )
