"""The tap's emitter: microseconds on the caller's thread, everything else in the background.

``Tap.emit`` only decides sampling, appends to a bounded in-memory buffer and
returns. A daemon thread drains the buffer in batches, redacts, serialises, drops
what is too large and publishes each batch as one Celery message on the ingest
queue. The tap fails open: when Redis is slow or down, or the buffer is full, events
are dropped and counted (``Tap.stats()``, Prometheus), never raised to the caller.

A publish that timed out may still have reached Redis (the server may read it
later); those events are counted ``publish_failed`` although they may be ingested.
Ingestion is idempotent by ``event_id``, so a retry elsewhere never double counts.
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType, TracebackType
from typing import Any, Self

import redis
import structlog

from shadowcanary.errors import ServiceUnavailable
from shadowcanary.events import CapturedCall
from shadowcanary.outcomes import Feedback, OutcomeReport, TaskOutcome
from shadowcanary.settings import TapSettings
from shadowcanary.tap import metrics
from shadowcanary.tap.outcome_buffer import OutcomeBuffer, OutcomeStats
from shadowcanary.tap.publisher import BatchPublisher
from shadowcanary.tap.redaction import Redactor
from shadowcanary.tap.sampling import Sampler
from shadowcanary.tap.stats import publish_tap_stats
from shadowcanary.tap.wire import EventsWriter
from shadowcanary.urls import redis_py_url

log = structlog.get_logger(__name__)

_FAILURE_LOG_EVERY_S = 10.0
_SHARE_EVERY_S = 2.0


class DropReason(StrEnum):
    """Why the tap dropped an event instead of delivering it."""

    BUFFER_FULL = "buffer_full"  # the in-memory buffer was full (Redis slower than traffic)
    TOO_LARGE = "too_large"  # serialised event over max_event_bytes
    PUBLISH_FAILED = "publish_failed"  # Redis down, slow or refusing
    TAP_ERROR = "tap_error"  # capturing or serialising the call failed (a tap bug)
    CLOSED = "closed"  # emitted after close(), or still buffered when close() gave up


@dataclass(frozen=True, slots=True)
class TapStats:
    """Counters since the tap started. After ``close()``:
    ``emitted == sampled_out + dropped_total + published``."""

    emitted: int
    sampled_out: int
    dropped: Mapping[DropReason, int]
    published: int
    buffer_depth: int

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


def _detectors(settings: TapSettings) -> list[Callable[[str], str]]:
    """The optional slow detectors the settings ask for (Presidio, imported only then)."""
    if not settings.presidio_entities:
        return []
    from shadowcanary.tap.presidio import presidio_detector  # optional: only when asked for

    return [presidio_detector(settings.presidio_entities, settings.presidio_language)]


class Tap:
    """Fail-open, bounded, batching emitter of captured calls to the ingest queue."""

    def __init__(self, settings: TapSettings, redis_url: str) -> None:
        """Build the tap and start its background thread.

        Raises:
            ConfigError: a custom redaction pattern or a sample rate is invalid, or
                Presidio is asked for and not installed.
        """
        self._settings = settings
        self._sampler = Sampler(settings.default_sample_rate, settings.sample_rates)
        self._redactor = Redactor(settings.redact_patterns, detectors=_detectors(settings))
        self._redis_url = redis_url
        self._capacity = settings.buffer_size
        self._batch_size = settings.batch_size
        self._piece_events = settings.batch_size  # events written per buffer (adapts to size)
        self._closed = False
        self._give_up = False  # close() timed out: drop what is left instead of publishing
        self._emitted = 0
        self._sampled_out = 0
        self._published = 0
        self._drops = dict.fromkeys(DropReason, 0)
        self._reported = self._metric_values()
        self._failing_since: float | None = None
        self._last_shared = 0.0
        self._stats_client: redis.Redis | None = None
        self._instance = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._last_failure_log = 0.0
        self._start_runtime()
        atexit.register(self.close)
        _tap_ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _restart_in_child(_tap_ref))

    def _start_runtime(self) -> None:
        # Everything a forked child must not share with its parent.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._buffer: list[CapturedCall] = []
        self._outcomes = OutcomeBuffer(self._capacity, self._batch_size)
        self._publisher = BatchPublisher(
            self._redis_url, timeout_s=self._settings.publish_timeout_s
        )
        self._thread = threading.Thread(target=self._run, name="shadowcanary-tap", daemon=True)
        self._thread.start()

    # -- the caller's side: keep it to a dict lookup, a lock and an append ----------

    def emit(self, event: CapturedCall) -> None:
        """Queue ``event`` for publishing; never blocks on I/O and never raises."""
        try:
            keep = self._sampler.keep(event.route, event.event_id)
        except Exception:  # noqa: BLE001 - the tap must never raise into the caller
            self.record_tap_error()
            return
        with self._lock:
            self._emitted += 1
            if not keep:
                self._sampled_out += 1
            elif self._closed:
                self._drops[DropReason.CLOSED] += 1
            elif len(self._buffer) >= self._capacity:
                self._drops[DropReason.BUFFER_FULL] += 1
            else:
                self._buffer.append(event)
                if len(self._buffer) == self._batch_size:
                    self._wake.set()

    def outcome(
        self,
        event_id: str | None,
        *,
        task: TaskOutcome | str | None = None,
        feedback: Feedback | str | None = None,
        retried: bool = False,
        escalated: bool = False,
        value: float | None = None,
        rollout: str | None = None,
    ) -> bool:
        """Report what happened after the answer of call ``event_id``; never raises.

        ``event_id`` is the call's id: ``shadowcanary.tap.last_event_id()`` right after
        a tapped call, or the gateway's ``x-shadowcanary-event-id`` response header.
        ``task`` is "completed" or "abandoned", ``feedback`` "up" or "down"; ``retried``
        (the user regenerated), ``escalated`` (handed to a person) and ``value`` (any
        number) are optional too (shadowcanary/outcomes.py). Returns False when the
        report was dropped: invalid (logged at warning), ``event_id`` None (the call
        was not captured), or the buffer is full or closed; see ``outcome_stats()``.
        """
        fields: dict[str, Any] = {"task": task, "feedback": feedback, "retried": retried}
        fields |= {"escalated": escalated, "value": value, "rollout": rollout}
        added = self._outcomes.add(event_id, fields)
        if added and self._outcomes.pending() >= self._batch_size:
            self._wake.set()
        return added

    def outcome_report(self, report: OutcomeReport) -> bool:
        """Queue an already validated report (the gateway's ``POST /v1/tap/outcomes``)."""
        return self._outcomes.add_report(report)

    def outcome_stats(self) -> OutcomeStats:
        return self._outcomes.stats()

    def keeps(self, route: str, event_id: str) -> bool:
        """Whether an event would be sampled in: lets callers skip building unsampled events."""
        return self._sampler.keep(route, event_id)

    def record_sampled_out(self) -> None:
        """Count a call the caller did not build an event for because ``keeps`` said no."""
        with self._lock:
            self._emitted += 1
            self._sampled_out += 1

    def record_tap_error(self) -> None:
        """Count a call lost because capturing it failed (the error was logged by the caller)."""
        with self._lock:
            self._drops[DropReason.TAP_ERROR] += 1

    def stats(self) -> TapStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return TapStats(
                emitted=self._emitted,
                sampled_out=self._sampled_out,
                dropped=MappingProxyType(dict(self._drops)),
                published=self._published,
                buffer_depth=len(self._buffer),
            )

    def close(self, timeout_s: float = 5.0) -> None:
        """Publish what is buffered (waiting at most ``timeout_s``), then stop.

        Whatever could not be published in time is dropped and counted ``closed``.
        Safe to call more than once; later ``emit`` calls are dropped and counted.
        """
        with self._lock:
            already = self._closed
            self._closed = True
        self._outcomes.closed = True
        if not already:
            atexit.unregister(self.close)
        self._wake.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._give_up = True
            self._wake.set()
            self._thread.join(self._settings.publish_timeout_s + 1.0)
        if not self._thread.is_alive():
            self._publisher.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the background thread --------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self._settings.flush_interval_s)
            self._wake.clear()
            with self._lock:
                events, self._buffer = self._buffer, []
                stopping = self._closed
            try:
                if events:
                    self._deliver(events)
                if self._outcomes.pending():
                    # After the events: a capture and its outcome usually go in that order.
                    self._outcomes.flush(self._publisher.publish_outcomes)
                self._report_metrics()
                self._maybe_share_stats(force=stopping)
            except Exception as exc:  # a bug must not kill the thread for good
                self._count_drops(DropReason.TAP_ERROR, len(events))
                # The class only: exception texts (e.g. validation errors) can quote prompts.
                log.error(
                    "tap_drain_failed",
                    events=len(events),
                    error=type(exc).__name__,
                    hint="a bug in the tap, not in your events: please report it with the "
                    "traceback logged at debug level (SHADOWCANARY_LOG_LEVEL=debug)",
                )
                log.debug("tap_drain_failed_traceback", exc_info=True)
            if stopping:
                with self._lock:
                    if not self._buffer and not self._outcomes.pending():
                        return

    def _deliver(self, events: list[CapturedCall]) -> None:
        publish_ok = True
        for start in range(0, len(events), self._batch_size):
            chunk = events[start : start + self._batch_size]
            if self._give_up:
                self._count_drops(DropReason.CLOSED, len(events) - start)
                return
            if not publish_ok:
                # One attempt per drain: a dead Redis costs one timeout, not one per batch.
                self._count_drops(DropReason.PUBLISH_FAILED, len(chunk))
                continue
            pieces, count = self._serialise(chunk)
            if count:
                publish_ok = self._publish(pieces, count)

    def _serialise(self, chunk: list[CapturedCall]) -> tuple[list[bytes], int]:
        """The chunk's events as redacted JSON pieces (comma-separated objects) and their count.

        Events are written many to a buffer, in pieces no larger than ``max_event_bytes``
        (so no event in a piece can be too large); a piece over the limit is written
        again in smaller pieces, down to single events, which are then dropped.
        """
        limit = self._settings.max_event_bytes
        writer, events, errors = self._redactor.events_writer(chunk)
        pieces: list[bytes] = []
        count = too_large = 0
        start = 0
        while start < len(events):
            piece = events[start : start + self._piece_events]
            try:
                raw = writer.write_many(piece)
            except Exception:  # noqa: BLE001 - find the bad event, keep the others
                raw = None
            if raw is not None and len(raw) <= limit:
                pieces.append(raw[1:-1])  # without the brackets: the publisher joins pieces
                count += len(piece)
                start += len(piece)
                if len(raw) < limit // 4 and len(piece) == self._piece_events:
                    self._piece_events = min(2 * self._piece_events, self._batch_size)
            elif raw is not None and len(piece) > 1:
                # Aim at half the limit with the sizes just seen.
                self._piece_events = max(1, len(piece) * limit // (2 * len(raw)))
            else:
                bad, big, good = self._write_one_by_one(writer, piece, limit)
                errors += bad
                too_large += big
                pieces.extend(good)
                count += len(good)
                start += len(piece)
        if too_large:
            self._count_drops(DropReason.TOO_LARGE, too_large)
        if errors:
            self._count_drops(DropReason.TAP_ERROR, errors)
            log.warning(
                "tap_serialise_failed",
                events=errors,
                cause="an event could not be written as JSON (e.g. a lone surrogate in its text)",
                hint="those events were dropped and counted as tap_error; fix the text the "
                "service passes to the tap",
            )
        return pieces, count

    @staticmethod
    def _write_one_by_one(
        writer: EventsWriter, events: list[CapturedCall], limit: int
    ) -> tuple[int, int, list[bytes]]:
        """(unwritable, too large, JSON of the others) for events written one at a time."""
        errors = too_large = 0
        good = []
        for event in events:
            try:
                raw = writer.write_one(event)
            except Exception:  # noqa: BLE001 - e.g. a lone surrogate: drop this event only
                errors += 1
                continue
            if len(raw) > limit:
                too_large += 1
            else:
                good.append(raw)
        return errors, too_large, good

    def _publish(self, pieces: list[bytes], count: int) -> bool:
        started = time.perf_counter()
        try:
            self._publisher.publish(pieces, count)
        except ServiceUnavailable as exc:
            metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
            self._count_drops(DropReason.PUBLISH_FAILED, count)
            self._log_failure(exc, count)
            return False
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
        with self._lock:
            self._published += count
        if self._failing_since is not None:
            log.info(
                "tap_publish_recovered", down_for_s=round(time.monotonic() - self._failing_since, 1)
            )
            self._failing_since = None
        return True

    def _log_failure(self, exc: ServiceUnavailable, events: int) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        elif now - self._last_failure_log < _FAILURE_LOG_EVERY_S:
            return
        self._last_failure_log = now
        stats = self.stats()
        log.warning(
            "tap_publish_failed",
            events=events,
            dropped_publish_failed=stats.dropped[DropReason.PUBLISH_FAILED],
            buffer_depth=stats.buffer_depth,
            error=type(exc.__cause__ or exc).__name__,
            cause=exc.message,  # the publisher's text: names the URL and the reason, no events
            hint=exc.hint,
        )

    def _count_drops(self, reason: DropReason, n: int) -> None:
        with self._lock:
            self._drops[reason] += n

    def _metric_values(self) -> tuple[int, int, dict[DropReason, int]]:
        return self._emitted, self._published, dict(self._drops)

    def _report_metrics(self) -> None:
        with self._lock:
            current = self._metric_values()
            depth = len(self._buffer)
        emitted, published, drops = current
        last_emitted, last_published, last_drops = self._reported
        if emitted > last_emitted:
            metrics.EVENTS_EMITTED.inc(emitted - last_emitted)
        if published > last_published:
            metrics.EVENTS_PUBLISHED.inc(published - last_published)
        for reason, count in drops.items():
            if count > last_drops[reason]:
                metrics.EVENTS_DROPPED.labels(reason=reason.value).inc(count - last_drops[reason])
        metrics.BUFFER_DEPTH.set(depth)
        self._reported = current

    def _maybe_share_stats(self, *, force: bool = False) -> None:
        """Every few seconds, leave this tap's counters in Redis for ``shadowcanary status``."""
        now = time.monotonic()
        if self._failing_since is not None or (
            not force and now - self._last_shared < _SHARE_EVERY_S
        ):
            return  # Redis is down: publishing is what matters when it returns
        self._last_shared = now
        stats = self.stats()
        counters = {
            "emitted": stats.emitted,
            "published": stats.published,
            "sampled_out": stats.sampled_out,
            "dropped": stats.dropped_total,
            "buffered": stats.buffer_depth,
        }
        try:
            if self._stats_client is None:
                self._stats_client = redis.Redis.from_url(
                    redis_py_url(self._redis_url),
                    socket_timeout=self._settings.publish_timeout_s,
                    socket_connect_timeout=self._settings.publish_timeout_s,
                )
            publish_tap_stats(self._stats_client, self._instance, counters)
        except redis.RedisError:
            pass  # best effort: the counters are also Prometheus metrics

    def _after_fork(self) -> None:
        # The parent's thread and sockets do not exist here, and its buffered events and
        # counts are the parent's: start empty with a fresh runtime.
        self._emitted = self._sampled_out = self._published = 0
        self._drops = dict.fromkeys(DropReason, 0)
        self._reported = self._metric_values()
        self._start_runtime()


def _restart_in_child(ref: weakref.ref[Tap]) -> None:
    tap = ref()
    if tap is not None and not tap._closed:
        tap._after_fork()
