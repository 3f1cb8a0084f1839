"""Cases from captured live traffic: a route's recent baseline calls, replayed offline.

The captured answer is the baseline arm (one recording per case), so only the
candidate is called. Only successful baseline-arm calls qualify: a candidate-arm
capture was answered by the candidate itself, and a failed call has no answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from shadowcanary.errors import ConfigError
from shadowcanary.events import CapturedCall, now_utc
from shadowcanary.judge import output_from_capture
from shadowcanary.settings import Settings
from shadowcanary.store.capture_reads import read_captures
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
    engine: Engine,
    settings: Settings,
    route: str,
    *,
    since: str,
    limit: int,
    rollout: str | None = None,
    min_similarity: float | None = None,
) -> list[SuiteCase]:
    """Cases from the route's captures in the store ``engine`` points at.

    Raises:
        ConfigError: ``since`` is unreadable, or the route has no qualifying captures.
        ServiceUnavailable: Postgres cannot be reached.
    """
    start = parse_since(since, now=now_utc())
    captures = read_captures(engine, route=route, since=start, limit=limit, rollout=rollout)
    if not captures:
        raise ConfigError(
            f"no successful baseline captures of route {route!r} since {start:%Y-%m-%d %H:%M} UTC",
            hint="check the route name (shadowcanary status) or widen --since",
        )
    return cases_from_captures(captures, settings, min_similarity=min_similarity)
