"""The controller process: tick every rollout it holds the lock of, every interval.

``shadowcanary controller run [--rollout NAME | --all] [--interval 10s]``. Any number
of controller processes may run; per rollout, the one holding its advisory lock acts
and the others stand by, trying the lock every interval, and take over when the
holder dies (Postgres frees a dead session's locks at once).

A tick held by an unreachable dependency is retried with exponential backoff (fast
at first so a blip costs little, then slower); the first good tick resets it. On
SIGTERM the loop finishes the tick in progress, releases its locks (a standby takes
over within its interval) and returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from shadowcanary.controller import metrics
from shadowcanary.controller.policy import TickMemory
from shadowcanary.controller.tick import TickOutcome, TickPorts, TickResult, held_unreachable, tick
from shadowcanary.errors import ServiceUnavailable, ShadowCanaryError
from shadowcanary.rollout_records import RolloutStatus
from shadowcanary.store.locks import LockState, RolloutLock

log = structlog.get_logger(__name__)

# The rollout label of an outage met while listing the rollouts (``--all``), before
# any rollout is known.
EVERY_ROLLOUT = "*"

# Statuses that need a controller: active ones, and rolled-back ones (kept at 0 %).
CONTROLLED = frozenset(
    {
        RolloutStatus.RUNNING,
        RolloutStatus.PAUSED,
        RolloutStatus.OVERRIDDEN,
        RolloutStatus.ROLLED_BACK,
    }
)


def backoff_s(failures: int, interval_s: float, max_backoff_s: float) -> float:
    """Wait before the next try after ``failures`` held ticks in a row: 1 s, 2 s, 4 s, ..."""
    if failures <= 0:
        return interval_s
    first = min(1.0, interval_s)
    return float(min(max_backoff_s, first * 2 ** min(failures - 1, 30)))


@dataclass(frozen=True, slots=True)
class LoopConfig:
    interval_s: float = 10.0
    rollouts: tuple[str, ...] | None = None  # None: every rollout that needs a controller
    max_backoff_s: float = 60.0


def migrate_when_reachable(
    database_url: str,
    config: LoopConfig,
    stop: threading.Event,
    *,
    migrate: Callable[[str], None],
) -> bool:
    """Bring the schema to head before the loop starts, waiting for Postgres if it is down.

    A controller started while Postgres is down has read no rollout: their plans, and
    so their webhooks, live in Postgres. It has nobody to alert and nothing to act on
    (guarantee 2.8), so it logs and counts each failed try and retries with the loop's
    backoff instead of exiting (a supervisor would only restart it into the same
    outage). Returns False if ``stop`` was set first.
    """
    labels = config.rollouts or (EVERY_ROLLOUT,)
    failures = 0
    while not stop.is_set():
        try:
            migrate(database_url)
        except ServiceUnavailable as exc:
            failures += 1
            for label in labels:
                metrics.UNAVAILABLE.labels(label, "postgres").inc()
            log.warning(
                "postgres unreachable at start: holding, nothing read yet",
                service="postgres",
                rollouts=list(labels),
                error=type(exc.__cause__ or exc).__name__,
                attempt=failures,
            )
            stop.wait(backoff_s(failures, config.interval_s, config.max_backoff_s))
        else:
            if failures:
                log.info("postgres reachable: controller starting", after_attempts=failures)
            return True
    return False


@dataclass(slots=True)
class _Slot:
    """One rollout as this process sees it."""

    lock: RolloutLock
    memory: TickMemory = field(default_factory=TickMemory)
    failures: int = 0
    due: float = 0.0  # monotonic time of the next tick


class ControllerLoop:
    """Ticks the rollouts this process holds the lock of; stands by for the others."""

    def __init__(
        self,
        ports: TickPorts,
        lock_engine: Engine,
        config: LoopConfig,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ports = ports
        self._lock_engine = lock_engine
        self._config = config
        self._monotonic = monotonic
        self._slots: dict[str, _Slot] = {}

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set; then release every lock."""
        log.info(
            "controller started",
            actor=self._ports.actor,
            interval_s=self._config.interval_s,
            rollouts=list(self._config.rollouts or ["--all"]),
        )
        try:
            while not stop.is_set():
                self.run_once()
                stop.wait(self._sleep_s())
        finally:
            self.release()
            log.info("controller stopped", actor=self._ports.actor)

    def run_once(self, *, force: bool = False) -> list[TickResult]:
        """One pass: tick every rollout that is due (all of them with ``force``)."""
        now = self._monotonic()
        results = []
        for name in self._names():
            slot = self._slot(name)
            if not force and slot.due > now:
                continue
            result = self._tick_one(name, slot)
            if result is not None:
                results.append(result)
        return results

    def holds(self, name: str) -> bool:
        slot = self._slots.get(name)
        return slot is not None and slot.lock.held

    def release(self) -> None:
        for slot in self._slots.values():
            slot.lock.release()

    # -- internals -----------------------------------------------------------------

    def _names(self) -> Sequence[str]:
        if self._config.rollouts is not None:
            return self._config.rollouts
        try:
            records = self._ports.store.list()
        except ServiceUnavailable as exc:
            # Keep ticking what we know: each tick then reports the outage and holds.
            if not self._slots:
                # Started blind: no rollout known to report for (guarantee 2.8).
                metrics.UNAVAILABLE.labels(EVERY_ROLLOUT, "postgres").inc()
                log.warning(
                    "rollout list unreadable: dependency unreachable",
                    service="postgres",
                    error=exc.message,
                )
            return list(self._slots)
        wanted = [r.name for r in records if r.status in CONTROLLED]
        for gone in set(self._slots) - set(wanted):
            self._slots.pop(gone).lock.release()
        return wanted

    def _slot(self, name: str) -> _Slot:
        if name not in self._slots:
            lock = RolloutLock(
                self._lock_engine,
                name,
                on_held_change=lambda held: metrics.LOCK_HELD.labels(name).set(int(held)),
            )
            self._slots[name] = _Slot(lock)
        return self._slots[name]

    def _tick_one(self, name: str, slot: _Slot) -> TickResult | None:
        state = slot.lock.try_acquire()
        if state is LockState.TAKEN:
            slot.due = self._monotonic() + self._config.interval_s
            return None
        if state is LockState.UNREACHABLE:
            # Whoever held the lock cannot act either (no record without Postgres); only
            # a controller that knew the rollout reports the outage.
            result = held_unreachable(self._ports, name, slot.memory)
        else:
            started = time.perf_counter()
            try:
                result = tick(self._ports, name, slot.memory)
            except ShadowCanaryError as exc:
                # A permanent problem (bad config, a stale save): log it and try again
                # after a backoff; never let one rollout stop the controller.
                log.error(
                    "tick failed", rollout=name, error=type(exc).__name__, message=exc.message
                )
                result = TickResult(name, TickOutcome.UNAVAILABLE, detail=exc.message)
            except SQLAlchemyError as exc:  # a database error the store did not classify
                log.error("tick failed", rollout=name, error=type(exc).__name__)
                result = TickResult(name, TickOutcome.UNAVAILABLE, service="postgres")
            finally:
                metrics.TICK_SECONDS.observe(time.perf_counter() - started)
        slot.failures = slot.failures + 1 if result.outcome is TickOutcome.UNAVAILABLE else 0
        slot.due = self._monotonic() + backoff_s(
            slot.failures, self._config.interval_s, self._config.max_backoff_s
        )
        return result

    def _sleep_s(self) -> float:
        if not self._slots:
            # No rollout yet (--all with none running, or Postgres down since the start):
            # list again after a whole interval (not now + interval - now, which float
            # rounding can make a hair shorter), never in a busy loop.
            return self._config.interval_s
        now = self._monotonic()
        next_due = min(slot.due for slot in self._slots.values())
        return max(0.01, min(self._config.interval_s, next_due - now))
