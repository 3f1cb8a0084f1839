"""The tap's side of user outcomes: validate on the caller's thread, buffer, publish later.

``Tap.outcome(event_id, task="abandoned")`` lands here. Like ``emit`` it is bounded and
fail open: a report that is invalid, arrives while the buffer is full or cannot be
published is dropped and counted (``OutcomeStats``, Prometheus
``shadowcanary_tap_outcomes_dropped_total``), never raised into the caller. The tap's
background thread publishes the buffer as one Celery message per batch
(``constants.TASK_OUTCOMES`` on the ingest queue) at its usual flush interval.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import structlog
from prometheus_client import Counter

from shadowcanary.errors import ServiceUnavailable
from shadowcanary.events import now_utc
from shadowcanary.outcomes import OutcomeReport

log = structlog.get_logger(__name__)

OUTCOMES_PUBLISHED = Counter(
    "shadowcanary_tap_outcomes_published_total", "Outcome reports the tap published to Redis"
)
OUTCOMES_DROPPED = Counter(
    "shadowcanary_tap_outcomes_dropped_total",
    "Outcome reports the tap dropped instead of publishing",
    ["reason"],
)


class OutcomeDrop(StrEnum):
    INVALID = "invalid"  # the report broke the contract (the warning log says how)
    NO_EVENT = "no_event"  # event_id None: the call was not captured (sampled out)
    BUFFER_FULL = "buffer_full"
    PUBLISH_FAILED = "publish_failed"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class OutcomeStats:
    """Counters since the tap started: ``reported == published + sum(dropped) + buffered``."""

    reported: int
    published: int
    dropped: MappingProxyType[OutcomeDrop, int]
    buffered: int


class OutcomeBuffer:
    """Bounded buffer of validated outcome reports; thread-safe."""

    def __init__(self, capacity: int, batch_size: int) -> None:
        self._capacity = capacity
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self._buffer: list[dict[str, Any]] = []
        self._reported = 0
        self._published = 0
        self._drops = dict.fromkeys(OutcomeDrop, 0)
        self.closed = False

    def add(self, event_id: str | None, fields: dict[str, Any]) -> bool:
        """Validate and queue one report; False (counted, logged) when it is dropped."""
        if event_id is None:
            self._count(OutcomeDrop.NO_EVENT)
            return False
        try:
            report = OutcomeReport(event_id=event_id, reported_at=now_utc(), **fields)
        except Exception as exc:  # noqa: BLE001 - the tap must never raise into the caller
            self._count(OutcomeDrop.INVALID)
            # Outcome fields are an id, enums and a number: no prompt text can be quoted.
            log.warning("tap_outcome_invalid", error=str(exc)[:500])
            return False
        return self.add_report(report)

    def add_report(self, report: OutcomeReport) -> bool:
        """Queue an already validated report (the gateway's); False when dropped."""
        with self._lock:
            self._reported += 1
            if self.closed:
                reason: OutcomeDrop | None = OutcomeDrop.CLOSED
            elif len(self._buffer) >= self._capacity:
                reason = OutcomeDrop.BUFFER_FULL
            else:
                reason = None
                self._buffer.append(report.model_dump(mode="json", exclude_none=True))
            if reason is not None:
                self._drops[reason] += 1
        if reason is not None:
            OUTCOMES_DROPPED.labels(reason=reason.value).inc()
            return False
        return True

    def flush(self, publish: Callable[[list[dict[str, Any]]], None]) -> None:
        """Publish what is buffered in batches; one failed publish drops the rest (counted)."""
        with self._lock:
            reports, self._buffer = self._buffer, []
        for start in range(0, len(reports), self._batch_size):
            batch = reports[start : start + self._batch_size]
            try:
                publish(batch)
            except ServiceUnavailable as exc:
                lost = len(reports) - start
                with self._lock:
                    self._drops[OutcomeDrop.PUBLISH_FAILED] += lost
                OUTCOMES_DROPPED.labels(reason=OutcomeDrop.PUBLISH_FAILED.value).inc(lost)
                log.warning("tap_outcomes_publish_failed", reports=lost, cause=exc.message)
                return
            with self._lock:
                self._published += len(batch)
            OUTCOMES_PUBLISHED.inc(len(batch))

    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    def stats(self) -> OutcomeStats:
        with self._lock:
            return OutcomeStats(
                reported=self._reported,
                published=self._published,
                dropped=MappingProxyType(dict(self._drops)),
                buffered=len(self._buffer),
            )

    def _count(self, reason: OutcomeDrop) -> None:
        with self._lock:
            self._reported += 1
            self._drops[reason] += 1
        OUTCOMES_DROPPED.labels(reason=reason.value).inc()
