"""Deterministic sampling: the same event is kept or dropped in every process.

The decision hashes the event id (not Python's per-process salted ``hash``), so a
tap inside a service, the gateway and an offline re-run all agree on which events
belong to the sample. Rates of exactly 0 and 1 never hash: they are the common case
and cost one dict lookup.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from shadowcanary.errors import ConfigError

_HASH_SPACE = float(1 << 64)


def sample_point(event_id: str) -> float:
    """Where ``event_id`` falls in [0, 1): kept at rate r when the point is below r."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _HASH_SPACE


def _check_rate(name: str, rate: float) -> float:
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(
            f"{name}={rate} is not a probability",
            hint="use a share between 0.0 (capture nothing) and 1.0 (capture everything)",
        )
    return float(rate)


class Sampler:
    """Keeps a share of events per route, decided by a stable hash of the event id."""

    __slots__ = ("_default", "_rates")

    def __init__(
        self, default_rate: float, rates_by_route: Mapping[str, float] | None = None
    ) -> None:
        self._default = _check_rate("default_sample_rate", default_rate)
        self._rates = {
            route: _check_rate(f"sample_rates[{route!r}]", rate)
            for route, rate in (rates_by_route or {}).items()
        }

    def rate(self, route: str) -> float:
        """The share of ``route``'s events that is kept."""
        return self._rates.get(route, self._default)

    def keep(self, route: str, event_id: str) -> bool:
        """Whether this event is in the sample; the same answer for the same id everywhere."""
        rate = self._rates.get(route, self._default)
        if rate >= 1.0:
            return True
        if rate <= 0.0:
            return False
        return sample_point(event_id) < rate
