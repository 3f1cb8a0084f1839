"""The ingest journal: each tap batch stays in Redis, apart from the queue, until stored.

kombu's Redis transport takes a message with ``BRPOP`` and only then records it as
unacknowledged, so a worker killed in between loses the message (docs/guarantees.md
2.11), and during a Postgres outage every batch passes that gap again at each retry.
The tap therefore also writes each batch it published under its own id (a hash of
payloads and a sorted set of when each was last seen alive); the worker deletes it once
the batch is stored (or rejected into dead letters). A batch whose entry stays
untouched for ``grace_s`` (with no backlog in the ingest queue) was lost on the way,
and the sweep publishes it again. Ingest is idempotent by event id, so a batch that was only
slow is stored once all the same.

The tap writes the journal after the message is sent and never fails on it (a batch
whose entry could not be written is only as safe as before). A worker fast enough to
store the batch before the tap's write lands leaves an entry behind: the sweep
republishes it once, ingest finds every event already stored, and the entry goes.
Worker-side calls are best effort too: a settle that fails leaves an entry the sweep
republishes, a duplicate that ingest absorbs.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import redis
import structlog

from shadowcanary import constants

log = structlog.get_logger(__name__)

# Entries no sweep could republish for this long (no worker ever ran) are dropped, loudly.
MAX_AGE_S = 24 * 3600.0
# More batches than this waiting in the ingest queue is a backlog: no sweeping then.
BACKLOG_BATCHES = 50


@dataclass(frozen=True, slots=True)
class SweepResult:
    republished: int
    dropped_too_old: int


class IngestJournal:
    """The worker's side: settle stored batches, keep live ones fresh, republish lost ones."""

    def __init__(self, client: redis.Redis, *, clock: Callable[[], float] = time.time) -> None:
        self._redis = client
        self._clock = clock

    def settle(self, journal_id: str | None) -> None:
        """The batch is stored: forget it."""
        if not journal_id:
            return
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.hdel(constants.INGEST_JOURNAL_KEY, journal_id)
            pipe.zrem(constants.INGEST_JOURNAL_INDEX_KEY, journal_id)
            pipe.execute()
        except redis.RedisError as exc:  # the sweep will republish it: a duplicate, absorbed
            log.info("ingest.journal_settle_failed", error=type(exc).__name__)

    def touch(self, journal_id: str | None) -> None:
        """The batch is alive (being ingested, or retried after an outage)."""
        if not journal_id:
            return
        try:
            self._redis.zadd(
                constants.INGEST_JOURNAL_INDEX_KEY, {journal_id: self._clock()}, xx=True
            )
        except redis.RedisError as exc:
            log.info("ingest.journal_touch_failed", error=type(exc).__name__)

    def pending(self) -> int:
        return int(self._redis.zcard(constants.INGEST_JOURNAL_INDEX_KEY))

    def sweep(
        self, grace_s: float, republish: Callable[[list[Any], str], None], *, limit: int = 200
    ) -> SweepResult:
        """Republish batches untouched for ``grace_s``, unless the queue has a backlog.

        Behind a backlog an old entry may just be waiting its turn; it is left alone
        until the queue is short again (a batch swept while still queued would only be
        stored once, but the sweep would add to the backlog).
        """
        if self._redis.llen(constants.QUEUE_INGEST) > BACKLOG_BATCHES:
            return SweepResult(0, 0)
        now = self._clock()
        stale: list[tuple[bytes, float]] = self._redis.zrangebyscore(  # type: ignore[assignment]
            constants.INGEST_JOURNAL_INDEX_KEY,
            "-inf",
            now - grace_s,
            start=0,
            num=limit,
            withscores=True,
        )
        republished = dropped = 0
        for raw_id, last_seen in stale:
            journal_id = raw_id.decode()
            payload: bytes | None = self._redis.hget(  # type: ignore[assignment]
                constants.INGEST_JOURNAL_KEY, journal_id
            )
            if payload is None or now - float(last_seen) > MAX_AGE_S:
                self.settle(journal_id)
                dropped += payload is not None
                continue
            events = orjson.loads(zlib.decompress(payload))
            republish(events, journal_id)
            self.touch(journal_id)
            republished += 1
        if dropped:
            log.error(
                "ingest.journal_dropped_too_old",
                count=dropped,
                hint="no worker stored these batches for a day; are workers running?",
            )
        return SweepResult(republished, dropped)
