"""Tap counters shared through Redis, so ``shadowcanary status`` sees every service's tap.

Each tap process writes its cumulative counters into one Redis hash field (its
instance id) from its background thread; readers sum the fields. Best effort: the tap
never waits on this, and a field expires when its process stops reporting.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from shadowcanary.constants import TAP_STATS_KEY

_FIELD_TTL_S = 3600


def publish_tap_stats(client: redis.Redis, instance: str, counters: dict[str, int]) -> None:
    """Record one tap's cumulative counters (raises redis errors: callers swallow them)."""
    payload = json.dumps(counters)
    pipe = client.pipeline(transaction=False)
    pipe.hset(TAP_STATS_KEY, instance, payload)
    pipe.expire(TAP_STATS_KEY, _FIELD_TTL_S)
    pipe.execute()


def read_shared_tap_stats(client: redis.Redis) -> dict[str, Any]:
    """Sum of every reporting tap's counters, plus how many taps report."""
    totals: dict[str, Any] = {"taps": 0}
    for raw in client.hvals(TAP_STATS_KEY):
        try:
            counters = json.loads(raw)
        except ValueError:
            continue
        totals["taps"] += 1
        for key, value in counters.items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
    return totals
