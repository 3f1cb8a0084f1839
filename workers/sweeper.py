"""Re-schedule the replays of stored events that never got an outcome.

A replay task can be lost after its captures were committed: kombu takes a task from
Redis with ``BRPOP`` and only then records it as unacknowledged, so a worker killed
in between loses it (docs/guarantees.md 2.11), as does a Redis crash without
persistence (2.1). Nothing would ever replay those captures. Every worker runs this
sweep; a Redis lock lets one of them do it per interval. It looks at captures older
than ``grace_s`` (by then every replay still queued, retrying or waiting out an
outage would normally have finished) and younger than a day, and schedules their
replays again. A replay still in flight after all is only done twice in the model
(replays are idempotent; guarantee 2.6).

The same sweep republishes ingest batches lost the same way, from the ingest journal
(shadowcanary/ingest/journal.py): a batch is only stored once, however often it comes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import redis
import structlog

from shadowcanary.errors import TransientError
from shadowcanary.events import now_utc
from shadowcanary.ingest.journal import IngestJournal
from shadowcanary.settings import ReplaySettings
from shadowcanary.store.repository import Store

log = structlog.get_logger(__name__)

_LOCK_KEY = "shadowcanary:replay-sweep"
_LOOKBACK = timedelta(days=1)
_BATCHES_PER_SWEEP = 20


def sweep_grace_s(replay: ReplaySettings) -> float:
    """How old a capture without an outcome must be before its replay counts as lost.

    Three visibility timeouts (a dead worker's tasks are redelivered after one) plus
    every retry's longest backoff.
    """
    return 3 * replay.visibility_timeout_s + replay.max_attempts * replay.backoff_max_s


def sweep_interval_s(replay: ReplaySettings) -> float:
    return float(min(300, max(5, replay.visibility_timeout_s)))


class ReplaySweeper:
    """A daemon thread in each worker process; one sweep per interval across workers."""

    def __init__(
        self,
        replay: ReplaySettings,
        store: Store,
        redis_url: str,
        schedule_replays: Callable[[list[str]], None],
        *,
        journal: IngestJournal | None = None,
        republish_ingest: Callable[[list[Any], str], None] | None = None,
        ingest_grace_s: float = 60.0,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self._journal = journal
        self._republish_ingest = republish_ingest
        self._ingest_grace_s = ingest_grace_s
        self._replay = replay
        self._store = store
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=5)
        self._schedule = schedule_replays
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        interval = sweep_interval_s(self._replay)
        while not self._stop.wait(interval):
            try:
                # NX + EX: one worker sweeps per interval; a dead one's lock just expires.
                if self._redis.set(_LOCK_KEY, "1", nx=True, ex=max(1, int(interval) - 1)):
                    self.sweep_ingest_journal()
                    self.sweep_once()
            except (TransientError, redis.RedisError) as exc:
                log.warning("replay.sweep_skipped", error=type(exc).__name__)

    def sweep_ingest_journal(self) -> int:
        """Republish journalled ingest batches that were lost on the way; returns how many."""
        if self._journal is None or self._republish_ingest is None:
            return 0
        result = self._journal.sweep(self._ingest_grace_s, self._republish_ingest)
        if result.republished:
            log.warning("ingest.swept", batches=result.republished)
        return result.republished

    def sweep_once(self) -> int:
        """Schedule the replays of captures without an outcome; returns how many."""
        now = self._clock()
        batch = self._replay.batch_size
        lost = self._store.unsettled_captures(
            received_from=now - _LOOKBACK,
            received_before=now - timedelta(seconds=sweep_grace_s(self._replay)),
            limit=batch * _BATCHES_PER_SWEEP,
        )
        for start in range(0, len(lost), batch):
            self._schedule(lost[start : start + batch])
        if lost:
            log.warning("replay.swept", count=len(lost), first=lost[0])
        return len(lost)
