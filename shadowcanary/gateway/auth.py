"""Who is calling: per-service API keys, checked by hash, and a rate limit per key.

Only the SHA-256 of each key is configured (``Settings.gateway.api_keys``), so a
leaked config file or environment dump does not leak working keys. Looking a key up
by its hash in a dict is safe against timing attacks on the key itself: what leaks
is the position of a SHA-256 digest, not the key.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shadowcanary.gateway.http import Rejection
from shadowcanary.settings import GatewayKey


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


def _bearer(authorization: bytes) -> bytes | None:
    scheme, _, token = authorization.partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return token.strip() or None
