"""A tap's counters reach Redis so ``shadowcanary status`` in another process can show them."""

from __future__ import annotations

import redis

from shadowcanary.settings import TapSettings
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.stats import read_shared_tap_stats
from shadowcanary.testing.factories import make_event


def test_tap_counters_are_shared_through_redis(redis_url: str) -> None:
    """After close, the shared counters show what this tap emitted and published."""
    with Tap(TapSettings(), redis_url) as tap:
        for _ in range(25):
            tap.emit(make_event())
    shared = read_shared_tap_stats(redis.Redis.from_url(redis_url))
    assert shared["taps"] == 1
    assert shared["emitted"] == 25
    assert shared["published"] == 25
    assert shared["dropped"] == 0
