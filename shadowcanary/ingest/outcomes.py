"""Ingest of user outcome reports: validate each, merge into Postgres, join to captures.

Like captured events, each report of a batch stands alone: an invalid one goes to the
dead-letter table (stage ``outcome``) with the reason, the others are stored. Storing
merges per event id (``shadowcanary.store.outcomes``), so a batch delivered twice by
the broker changes nothing the second time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog

from shadowcanary.errors import InvalidEvent, PermanentError
from shadowcanary.events import now_utc
from shadowcanary.outcomes import OutcomeReport, parse_outcome
from shadowcanary.shadow_results import DeadLetter
from shadowcanary.store.outcomes import OutcomeStore
from shadowcanary.store.repository import Store

log = structlog.get_logger(__name__)

STAGE = "outcome"


@dataclass(frozen=True, slots=True)
class OutcomeIngestResult:
    accepted: int  # reports stored (duplicates included: they merge)
    new_ids: int  # event ids reported for the first time
    joined: int  # joined to their capture right away (the rest wait for the sweep)
    rejected: int  # dead-lettered


class OutcomeIngest:
    """Turns one Celery batch of raw outcome reports into merged, joined rows."""

    def __init__(
        self, store: Store, outcomes: OutcomeStore, *, clock: Callable[[], datetime] = now_utc
    ) -> None:
        self._store = store
        self.outcomes = outcomes
        self._clock = clock

    def ingest(self, raw_reports: Sequence[Any]) -> OutcomeIngestResult:
        valid: list[OutcomeReport] = []
        letters: list[DeadLetter] = []
        for raw in raw_reports:
            try:
                valid.append(_validate(raw))
            except PermanentError as exc:
                event_id = raw.get("event_id") if isinstance(raw, dict) else None
                letters.append(
                    DeadLetter(
                        stage=STAGE,
                        error_class=type(exc).__name__,
                        message=str(exc),
                        attempts=1,
                        event_id=event_id[:128] if isinstance(event_id, str) else None,
                        payload={"raw": json.dumps(raw, default=str)[:4_000]},
                    )
                )
        now = self._clock()
        if letters:
            self._store.record_dead_letters(letters, recorded_at=now)
            log.warning("outcomes.rejected", count=len(letters), first_error=letters[0].message)
        result = self.outcomes.record(valid, received_at=now)
        return OutcomeIngestResult(
            accepted=result.reports,
            new_ids=result.new_ids,
            joined=result.joined,
            rejected=len(letters),
        )


def _validate(raw: Any) -> OutcomeReport:
    if not isinstance(raw, dict):
        raise InvalidEvent(f"an outcome report must be a JSON object, got {type(raw).__name__}")
    try:
        size = len(orjson.dumps(raw, default=str))
    except (TypeError, orjson.JSONEncodeError) as exc:  # e.g. integers past 64 bits
        raise InvalidEvent(f"outcome report cannot be encoded as JSON: {exc}") from exc
    return parse_outcome(raw, size=size)
