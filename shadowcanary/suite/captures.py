"""Cases from captured live traffic: a route's recent baseline calls, replayed offline.

The captured answer is the baseline arm (one recording per case), so only the
candidate is called. Only successful baseline-arm calls qualify: a candidate-arm
capture was answered by the candidate itself, and a failed call has no answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError

from shadowcanary.errors import ConfigError, ServiceUnavailable
from shadowcanary.events import Arm, CallStatus, CapturedCall, now_utc
from shadowcanary.judge import output_from_capture
from shadowcanary.settings import Settings
from shadowcanary.store.models import CaptureRow
from shadowcanary.suite.cases import Expectations, SuiteCase

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNIT = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}


def parse_since(value: str, *, now: datetime) -> datetime:
    """'24h', '30m', '7d', '2w', '90s' before ``now``, or an ISO 8601 timestamp.

    Raises:
        ConfigError: neither form.
    """
    text = value.strip().lower()
    if match := _DURATION.match(text):
        return now - timedelta(seconds=float(match.group(1)) * _UNIT[match.group(2)])
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(
            f"--since {value!r} is neither a duration nor a timestamp",
            hint="use e.g. 24h, 30m, 7d or 2026-06-01T00:00:00Z",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_captures(
    engine: Engine,
    *,
    route: str,
    since: datetime,
    limit: int,
    rollout: str | None = None,
) -> list[CapturedCall]:
    """The route's newest successful baseline-arm captures started at or after ``since``.

    Raises:
        ServiceUnavailable: Postgres cannot be read.
    """
    table = CaptureRow.__table__
    stmt = (
        select(table.c.event)
        .where(
            table.c.route == route,
            table.c.started_at >= since,
            table.c.arm == Arm.BASELINE.value,
            table.c.status == CallStatus.OK.value,
        )
        .order_by(table.c.started_at.desc(), table.c.event_id)
        .limit(limit)
    )
    if rollout is not None:
        stmt = stmt.where(table.c.rollout == rollout)
    try:
        with engine.connect() as conn:
            documents = conn.execute(stmt).scalars().all()
    except OperationalError as exc:
        raise ServiceUnavailable(
            f"could not read captures from Postgres: {type(exc.orig).__name__}",
            hint="check that Postgres is up and SHADOWCANARY_DATABASE_URL points at it",
        ) from exc
    # Oldest first: a report reads in the order traffic arrived.
    return [CapturedCall.model_validate(doc) for doc in reversed(documents)]


def cases_from_captures(
    captures: Sequence[CapturedCall], settings: Settings, *, min_similarity: float | None
) -> list[SuiteCase]:
    """One case per capture, its recorded answer as the baseline arm."""
    cases = []
    for event in captures:
        cost = None
        if (
            event.model in settings.models
            and event.prompt_tokens is not None
            and event.completion_tokens is not None
        ):
            cost = settings.cost_usd(event.model, event.prompt_tokens, event.completion_tokens)
        cases.append(
            SuiteCase(
                case_id=event.event_id,
                request=event.request,
                expect=Expectations(min_similarity=min_similarity),
                source=f"capture {event.route} {event.started_at:%Y-%m-%dT%H:%M:%SZ}",
                recorded_baseline=output_from_capture(event, cost),
            )
        )
    return cases


def load_capture_cases(
    settings: Settings,
    route: str,
    *,
    since: str,
    limit: int,
    rollout: str | None = None,
    min_similarity: float | None = None,
) -> list[SuiteCase]:
    """Cases from the configured store (the embedded Postgres when no URL is set).

    Raises:
        ConfigError: ``since`` is unreadable, or the route has no qualifying captures.
        ServiceUnavailable: Postgres cannot be reached.
    """
    from shadowcanary.cli_support import database_url as migrated_database_url
    from shadowcanary.store.db import make_engine

    start = parse_since(since, now=now_utc())
    database_url = migrated_database_url(settings)
    engine = make_engine(database_url, pool_size=1)
    try:
        captures = read_captures(engine, route=route, since=start, limit=limit, rollout=rollout)
    finally:
        engine.dispose()
    if not captures:
        raise ConfigError(
            f"no successful baseline captures of route {route!r} since {start:%Y-%m-%d %H:%M} UTC",
            hint="check the route name (shadowcanary status) or widen --since",
        )
    return cases_from_captures(captures, settings, min_similarity=min_similarity)
