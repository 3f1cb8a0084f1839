"""Ingest: validate captured events from the tap, store them, and schedule replays.

Each event of a batch stands alone: an invalid one goes to the dead-letter table with
the reason and the others are stored. Storing is idempotent by event id, so a batch
delivered twice (the broker's at-least-once) changes nothing the second time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from shadowcanary.errors import InvalidEvent, PermanentError
from shadowcanary.events import Arm, CallStatus, CapturedCall, now_utc, parse_event
from shadowcanary.judge import assess, output_from_capture
from shadowcanary.settings import Settings
from shadowcanary.shadow_results import DeadLetter
from shadowcanary.store.repository import AssessedCapture, Store

log = structlog.get_logger(__name__)

# A dead letter keeps the raw event for a person to look at, but not without bound.
_MAX_DEAD_LETTER_PAYLOAD_CHARS = 64_000


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int  # newly stored
    duplicates: int  # already stored by an earlier delivery
    rejected: int  # dead-lettered
    replays_scheduled: int


def _payload_for_dead_letter(raw: Any) -> dict[str, object]:
    if isinstance(raw, dict):
        text = json.dumps(raw, default=str)
        if len(text) <= _MAX_DEAD_LETTER_PAYLOAD_CHARS:
            return raw
        return {"truncated": text[:_MAX_DEAD_LETTER_PAYLOAD_CHARS]}
    return {"raw": repr(raw)[:_MAX_DEAD_LETTER_PAYLOAD_CHARS]}


def needs_replay(event: CapturedCall, rollback_target_rate: float = 0.0) -> bool:
    """Shadow what the baseline answered (the candidate is compared to it), and a sample of
    what the candidate answered: replayed to the baseline, the rollback target."""
    if event.status is not CallStatus.OK:
        return False
    if event.arm is Arm.BASELINE:
        return True
    return in_rollback_target_sample(event.event_id, rollback_target_rate)


def in_replay_sample(event_id: str, rate: float) -> bool:
    """Deterministic: whether a baseline answer is replayed at the adaptive rate ``rate``."""
    if rate >= 1.0:
        return True
    digest = hashlib.blake2b(event_id.encode(), digest_size=8, person=b"adaptive").digest()
    return int.from_bytes(digest) / 2**64 < rate


def in_rollback_target_sample(event_id: str, rate: float) -> bool:
    """Deterministic, so a redelivered event is sampled alike (salted apart from the noise
    floor's sample, which is drawn from the other arm anyway)."""
    if rate <= 0:
        return False
    digest = hashlib.blake2b(event_id.encode(), digest_size=8, person=b"rollback").digest()
    return int.from_bytes(digest) / 2**64 < rate


class IngestService:
    """Turns one Celery batch of raw events into stored captures and replay tasks."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        schedule_replays: Callable[[list[str]], None],
        *,
        clock: Callable[[], datetime] = now_utc,
        replay_rates: Callable[[Collection[str]], Mapping[str, float]] | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._schedule_replays = schedule_replays
        self._clock = clock
        # Adaptive sampling (judge/sampling.py): a rollout absent here replays everything.
        self._replay_rates = replay_rates

    def ingest(self, raw_events: Sequence[Any]) -> IngestResult:
        valid: list[AssessedCapture] = []
        letters: list[DeadLetter] = []
        for raw in raw_events:
            try:
                valid.append(self._assess(raw))
            except PermanentError as exc:
                event_id = raw.get("event_id") if isinstance(raw, dict) else None
                letters.append(
                    DeadLetter(
                        stage="ingest",
                        error_class=type(exc).__name__,
                        message=str(exc),
                        attempts=1,
                        event_id=event_id if isinstance(event_id, str) else None,
                        payload=_payload_for_dead_letter(raw),
                    )
                )
        now = self._clock()
        if letters:
            self._store.record_dead_letters(letters, recorded_at=now)
            log.warning("ingest.rejected", count=len(letters), first_error=letters[0].error_class)
        new_ids = self._store.insert_captures(valid, received_at=now) if valid else []
        # Schedule from every valid event, not only the new ones: if an earlier delivery
        # stored the batch but died before scheduling, this one must not lose the replays.
        # Replays are idempotent, so scheduling twice costs nothing but a lookup.
        target_rate = self._settings.replay.rollback_target_rate
        wanted = [c.event for c in valid if needs_replay(c.event, target_rate)]
        rollouts = {e.rollout for e in wanted if e.rollout is not None}
        rates = self._replay_rates(rollouts) if self._replay_rates and rollouts else {}
        to_replay = [
            e.event_id
            for e in wanted
            if e.arm is not Arm.BASELINE
            or in_replay_sample(e.event_id, rates.get(e.rollout or "", 1.0))
        ]
        batch = self._settings.replay.batch_size
        for start in range(0, len(to_replay), batch):
            self._schedule_replays(to_replay[start : start + batch])
        return IngestResult(
            accepted=len(new_ids),
            duplicates=len(valid) - len(new_ids),
            rejected=len(letters),
            replays_scheduled=len(to_replay),
        )

    def _assess(self, raw: Any) -> AssessedCapture:
        if not isinstance(raw, dict):
            raise InvalidEvent(f"event must be a JSON object, got {type(raw).__name__}")
        event = parse_event(raw, max_bytes=self._settings.tap.max_event_bytes)
        self._settings.endpoint(event.model)  # UnknownModel: no price, no replay target
        cost = None
        if event.prompt_tokens is not None and event.completion_tokens is not None:
            cost = self._settings.cost_usd(
                event.model, event.prompt_tokens, event.completion_tokens, event.cached_tokens
            )
        flags = assess(output_from_capture(event, cost), event.request) if event.response else None
        return AssessedCapture(event=event, flags=flags, cost_usd=cost)
