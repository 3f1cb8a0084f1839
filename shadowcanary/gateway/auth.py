"""Who is calling: per-service API keys, checked by hash, a rate limit and rollouts per key.

Only the SHA-256 of each key is configured (``Settings.gateway.api_keys``), so a
leaked config file or environment dump does not leak working keys. Looking a key up
by its hash in a dict is safe against timing attacks on the key itself: what leaks
is the position of a SHA-256 digest, not the key.

Each key is bound to the rollouts its service may report for (``GatewayKey.rollouts``):
the evidence a rollout is judged on must come from the services that own it, so one
team's failing events cannot roll back (or hold up) another team's rollout.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from shadowcanary.gateway.http import Rejection
from shadowcanary.settings import ANY_ROLLOUT, GatewayKey


def hash_key(key: str) -> str:
    """The hex SHA-256 to configure for ``key`` (``shadowcanary gateway hash-key``)."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(slots=True)
class TokenBucket:
    """``rate_per_s`` sustained, bursts up to ``capacity``. Event-loop only: no lock."""

    rate_per_s: float
    capacity: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take one token: 0.0 when allowed, else seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate_per_s


class KeyRing:
    """Maps a presented key to its service name and applies that service's rate limit."""

    def __init__(
        self,
        keys: Mapping[str, GatewayKey],
        *,
        processes: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._by_hash = {key.sha256: name for name, key in keys.items()}
        # Service -> the rollouts it may report for; None: any (configured as ["*"]).
        self._rollouts: dict[str, frozenset[str] | None] = {
            name: None if ANY_ROLLOUT in key.rollouts else frozenset(key.rollouts)
            for name, key in keys.items()
        }
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        now = clock()
        for name, key in keys.items():
            if key.requests_per_minute is None:
                continue
            # Each process enforces its share: the sum over processes is the limit.
            rate = key.requests_per_minute / 60.0 / processes
            burst = max(1.0, rate)
            self._buckets[name] = TokenBucket(rate, burst, burst, now)

    def __len__(self) -> int:
        return len(self._by_hash)

    def service_for(self, authorization: bytes | None, api_key: bytes | None) -> str:
        """The service name of a request's key.

        Raises:
            Rejection: 401 when the key is missing or unknown; 429 (with Retry-After)
                when the service is over its rate limit.
        """
        presented = _bearer(authorization) if authorization else api_key
        if not presented:
            raise Rejection(
                401,
                "Missing API key: send 'Authorization: Bearer <your gateway key>'. "
                "Gateway keys are issued per service by the shadowcanary operator "
                "(not the model provider's keys).",
                code="missing_api_key",
            )
        name = self._by_hash.get(hashlib.sha256(presented).hexdigest())
        if name is None:
            raise Rejection(
                401,
                "Incorrect API key for this gateway. Use the key issued to your service; "
                "its SHA-256 must be listed in SHADOWCANARY_GATEWAY__API_KEYS.",
                code="invalid_api_key",
            )
        bucket = self._buckets.get(name)
        if bucket is not None:
            wait_s = bucket.take(self._clock())
            if wait_s > 0:
                retry_after = max(1, math.ceil(wait_s))
                raise Rejection(
                    429,
                    f"Rate limit reached for service '{name}' at this gateway. "
                    f"Retry after {retry_after}s, or ask the operator to raise its "
                    "requests_per_minute.",
                    code="rate_limit_exceeded",
                    headers=[(b"retry-after", str(retry_after).encode())],
                )
        return name

    def may_report_for(self, service: str, rollout: str | None) -> bool:
        """Whether ``service`` may file evidence for ``rollout`` (None: outside any rollout)."""
        if rollout is None:
            return True
        allowed = self._rollouts.get(service, frozenset())
        return allowed is None or rollout in allowed

    def check_route(self, service: str, route: str, rollout: str | None) -> None:
        """A proxied call on ``route`` (which reports for ``rollout``) is allowed.

        Raises:
            Rejection: 403 when the route's rollout is not one of the service's.
        """
        if self.may_report_for(service, rollout):
            return
        raise Rejection(
            403,
            f"Service '{service}' may not call route '{route}': its calls are evidence for "
            f"rollout '{rollout}', and this key may report only for {self._bound(service)}. "
            "Call your own route (route header or /r/<route>/v1/...), or ask the operator "
            f"to add '{rollout}' to the \"rollouts\" of '{service}' in "
            "SHADOWCANARY_GATEWAY__API_KEYS.",
            code="rollout_not_allowed",
        )

    def check_events(self, service: str, rollouts: Iterable[tuple[int, str | None]]) -> None:
        """Every event of a batch (``(index, rollout)`` pairs) is one ``service`` may report.

        Raises:
            Rejection: 403 naming the first foreign rollout and the events that name it.
        """
        foreign: dict[str, list[int]] = {}
        for index, rollout in rollouts:
            if rollout is not None and not self.may_report_for(service, rollout):
                foreign.setdefault(rollout, []).append(index)
        if not foreign:
            return
        rollout, indexes = next(iter(foreign.items()))
        shown = ", ".join(str(i) for i in indexes[:10]) + (", ..." if len(indexes) > 10 else "")
        others = f" (and {len(foreign) - 1} other rollout(s))" if len(foreign) > 1 else ""
        raise Rejection(
            403,
            f"Service '{service}' may not report for rollout '{rollout}'{others} "
            f"(events at index {shown}): this key may report only for {self._bound(service)}. "
            "Nothing in this batch was accepted. Send these events with the key of the "
            f"service that owns the rollout, or ask the operator to add '{rollout}' to the "
            f"\"rollouts\" of '{service}' in SHADOWCANARY_GATEWAY__API_KEYS.",
            code="rollout_not_allowed",
        )

    def _bound(self, service: str) -> str:
        allowed = self._rollouts.get(service) or frozenset()
        if not allowed:
            return "traffic outside any rollout"
        return "rollout(s) " + ", ".join(f"'{name}'" for name in sorted(allowed)[:10])


def _bearer(authorization: bytes) -> bytes | None:
    scheme, _, token = authorization.partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return token.strip() or None
