"""A circuit breaker per upstream model: stop sending calls to an upstream that keeps failing.

Closed: calls go through; ``failures`` consecutive retryable failures (5xx, timeouts,
connection errors) open it. Open: calls are refused for ``open_s`` (the gateway falls
back to the baseline or answers 503 with Retry-After), so a dying upstream is not
hammered and clients do not each wait for its timeout. Half-open: one probe call goes
through; its success closes the breaker, its failure opens it again.

Used from the event loop only, so there is no lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum

import structlog

log = structlog.get_logger(__name__)


class BreakerState(IntEnum):
    """Also the value of the breaker-state gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Consecutive-failure breaker with a single half-open probe."""

    def __init__(
        self,
        name: str,
        *,
        failures: int,
        open_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, BreakerState], None] | None = None,
    ) -> None:
        self.name = name
        self._threshold = failures
        self._open_s = open_s
        self._clock = clock
        self._on_change = on_change
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._state = BreakerState.CLOSED

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._open_s:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def retry_after_s(self) -> float:
        """Seconds until the breaker lets a probe through (0 when it is closed)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._open_s - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """Whether a call may go to this upstream now (claims the probe when half-open)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._probing = False
        if self._state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._failures += 1
        was_probe = self._probing
        self._probing = False
        if was_probe or self._failures >= self._threshold:
            self._opened_at = self._clock()
            if self._state is not BreakerState.OPEN:
                self._set(BreakerState.OPEN)

    def record_abandoned(self) -> None:
        """The call ended without a verdict (client left): free the probe slot."""
        self._probing = False

    def _set(self, state: BreakerState) -> None:
        self._state = state
        log.warning(
            "gateway_breaker_changed",
            upstream=self.name,
            state=state.name.lower(),
            consecutive_failures=self._failures,
        )
        if self._on_change is not None:
            self._on_change(self.name, state)
