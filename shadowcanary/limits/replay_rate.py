"""The adaptive replay rate per rollout, shared through Redis (judge/sampling.py decides it).

The controller writes it after each decision; the workers' ingest reads it once per
batch. Fail open towards evidence: a missing key, an expired one (the controller
stopped deciding) or Redis unreachable all mean "replay everything".
"""

from __future__ import annotations

from collections.abc import Collection

import redis
import redis.exceptions
import structlog

from shadowcanary.constants import replay_rate_key

log = structlog.get_logger(__name__)

# A controller that stopped deciding for this long no longer holds the rate down.
RATE_TTL_S = 15 * 60


class ReplayRates:
    """Read and write rollouts' replay rates in Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    @classmethod
    def from_url(cls, url: str) -> ReplayRates:
        return cls(redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2))

    def publish(self, rollout: str, rate: float) -> None:
        """Best effort: a failed write leaves the old rate to expire (then: every answer)."""
        try:
            self._client.set(replay_rate_key(rollout), repr(rate), ex=RATE_TTL_S)
        except redis.exceptions.RedisError as exc:
            log.warning("replay_rate.publish_failed", rollout=rollout, error=type(exc).__name__)

    def rates(self, rollouts: Collection[str]) -> dict[str, float]:
        """The rate of each rollout that has one; absent rollouts replay everything."""
        names = sorted(set(rollouts))
        if not names:
            return {}
        try:
            values = self._client.mget([replay_rate_key(n) for n in names])
        except redis.exceptions.RedisError as exc:
            log.warning("replay_rate.read_failed", error=type(exc).__name__)
            return {}
        found: dict[str, float] = {}
        for name, value in zip(names, values, strict=True):
            try:
                rate = float(value) if value is not None else None
            except ValueError:
                rate = None
            if rate is not None and 0.0 < rate <= 1.0:
                found[name] = rate
        return found

    def close(self) -> None:
        self._client.close()
