"""The report's shadow and text reads: a similarity histogram, tokens, the worst pairs.

The histogram and token figures are aggregates in SQL (O(bins) rows whatever the
traffic); the pairs are a LIMIT on the comparisons' similarity. Each takes a
``tenant``, joining captures (which hold it). The live figures are in
``shadowcanary.store.live_reads``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, and_, func, select
from sqlalchemy.sql.elements import ColumnElement

from shadowcanary.shadow_results import ReplayKind
from shadowcanary.store.models import (
    CaptureRow,
    ComparisonRow,
    ReplayRow,
)
from shadowcanary.store.sketch import QuantileSketch

CAPTURES: Table = CaptureRow.__table__  # type: ignore[assignment]
REPLAYS: Table = ReplayRow.__table__  # type: ignore[assignment]
COMPARISONS: Table = ComparisonRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class LiveMinute:
    """Live calls of one arm in one stretch of time (a chart bucket, or a rollup minute)."""

    minute: datetime
    arm: str
    requests: int
    failures: int
    latency_sketch: QuantileSketch


@dataclass(frozen=True, slots=True)
class TokenUse:
    """Average tokens and recorded cost per call, over ``calls`` calls (for the cost model)."""

    calls: int
    prompt_tokens: float | None
    completion_tokens: float | None
    cost_usd: float | None


@dataclass(frozen=True, slots=True)
class PairRow:
    """A candidate comparison with the texts it compared, straight from the store."""

    event_id: str
    similarity: float
    route: str
    started_at: datetime
    live_model: str
    event: dict[str, Any]
    candidate_model: str | None
    candidate_output: dict[str, Any] | None


def shadow_tokens(
    conn: Connection, rollout: str, since: datetime, *, tenant: str | None = None
) -> TokenUse:
    """What the candidate's answers to mirrored prompts used, for the cost model.

    With ``tenant``, only the replays of that tenant's calls.
    """
    ok = and_(
        *_tenant_only(tenant),
        REPLAYS.c.kind == ReplayKind.CANDIDATE.value,
        REPLAYS.c.status == "ok",
        REPLAYS.c.prompt_tokens.is_not(None),
        REPLAYS.c.completion_tokens.is_not(None),
        REPLAYS.c.recorded_at >= since,
    )
    count, prompt, completion, cost = conn.execute(
        select(
            func.count(),
            func.avg(REPLAYS.c.prompt_tokens),
            func.avg(REPLAYS.c.completion_tokens),
            func.avg(REPLAYS.c.cost_usd),
        )
        .select_from(REPLAYS.join(CAPTURES, REPLAYS.c.event_id == CAPTURES.c.event_id))
        .where(CAPTURES.c.rollout == rollout, ok)
    ).one()
    return TokenUse(
        calls=int(count),
        prompt_tokens=_float(prompt),
        completion_tokens=_float(completion),
        cost_usd=_float(cost),
    )


@dataclass(frozen=True, slots=True)
class SpendMinute:
    """Shadow replays (every kind) of the calls made in one minute, and what they cost."""

    minute: datetime
    replays: int
    tokens: int
    cost_usd: float


def shadow_spend_by_minute(conn: Connection, rollout: str, since: datetime) -> list[SpendMinute]:
    """Replays, tokens and dollars of the rollout's shadow traffic per minute of the live call.

    By the minute the live call was made (as the rollups and the controller count it),
    not when its replay finished, so it lines up with the decisions.
    """
    minute = func.date_trunc("minute", CAPTURES.c.started_at).label("minute")
    stmt = (
        select(
            minute,
            func.count(),
            func.coalesce(
                func.sum(
                    func.coalesce(REPLAYS.c.prompt_tokens, 0)
                    + func.coalesce(REPLAYS.c.completion_tokens, 0)
                ),
                0,
            ),
            func.coalesce(func.sum(REPLAYS.c.cost_usd), 0.0),
        )
        .select_from(REPLAYS.join(CAPTURES, REPLAYS.c.event_id == CAPTURES.c.event_id))
        .where(CAPTURES.c.rollout == rollout, CAPTURES.c.started_at >= since)
        .group_by(minute)
        .order_by(minute)
    )
    return [
        SpendMinute(at, int(count), int(tokens), float(cost))
        for at, count, tokens, cost in conn.execute(stmt).all()
    ]


def similarity_counts(
    conn: Connection, rollout: str, since: datetime, bins: int, *, tenant: str | None = None
) -> tuple[dict[str, dict[int, int]], dict[str, float]]:
    """Comparisons per kind and similarity bin (1..bins), and the mean per kind.

    With ``tenant``, only the comparisons of that tenant's calls.
    """
    raw = func.width_bucket(COMPARISONS.c.lexical_similarity, 0.0, 1.0, bins)
    # width_bucket puts exactly 1.0 in bin bins+1 (and below 0 in bin 0): fold them in.
    bin_no = func.least(func.greatest(raw, 1), bins).label("bin")
    where = (
        COMPARISONS.c.rollout == rollout,
        COMPARISONS.c.recorded_at >= since,
        *_tenant_only(tenant),
    )
    # The join only narrows to a tenant; without one, comparisons alone answer.
    source = (
        COMPARISONS
        if tenant is None
        else COMPARISONS.join(CAPTURES, COMPARISONS.c.event_id == CAPTURES.c.event_id)
    )
    counts: dict[str, dict[int, int]] = {}
    for kind, bin_index, count in conn.execute(
        select(COMPARISONS.c.kind, bin_no, func.count())
        .select_from(source)
        .where(*where)
        .group_by(COMPARISONS.c.kind, bin_no)
    ):
        counts.setdefault(kind, {})[int(bin_index)] = int(count)
    means = {
        kind: float(mean)
        for kind, mean in conn.execute(
            select(COMPARISONS.c.kind, func.avg(COMPARISONS.c.lexical_similarity))
            .select_from(source)
            .where(*where)
            .group_by(COMPARISONS.c.kind)
        )
        if mean is not None
    }
    return counts, means


def most_divergent(
    conn: Connection, rollout: str, since: datetime, limit: int, *, tenant: str | None = None
) -> list[PairRow]:
    """The candidate comparisons with the lowest lexical similarity, with their texts.

    With ``tenant``, only that tenant's calls: another tenant's prompts never show.
    """
    joined = COMPARISONS.join(CAPTURES, COMPARISONS.c.event_id == CAPTURES.c.event_id).join(
        REPLAYS,
        and_(
            REPLAYS.c.event_id == COMPARISONS.c.event_id,
            REPLAYS.c.kind == COMPARISONS.c.kind,
        ),
    )
    rows = conn.execute(
        select(
            COMPARISONS.c.event_id,
            COMPARISONS.c.lexical_similarity,
            CAPTURES.c.route,
            CAPTURES.c.started_at,
            CAPTURES.c.model,
            CAPTURES.c.event,
            REPLAYS.c.model,
            REPLAYS.c.output,
        )
        .select_from(joined)
        .where(
            COMPARISONS.c.rollout == rollout,
            COMPARISONS.c.kind == ReplayKind.CANDIDATE.value,
            COMPARISONS.c.recorded_at >= since,
            *_tenant_only(tenant),
        )
        .order_by(COMPARISONS.c.lexical_similarity, COMPARISONS.c.event_id)
        .limit(limit)
    ).all()
    return [PairRow(*row) for row in rows]


def _tenant_only(tenant: str | None) -> tuple[ColumnElement[bool], ...]:
    """The filter to one tenant's calls (the query must join captures), or none."""
    return () if tenant is None else (CAPTURES.c.tenant == tenant,)


def _float(value: Any) -> float | None:
    # avg() of integers is numeric in Postgres: Decimal in Python.
    return None if value is None else float(value)
