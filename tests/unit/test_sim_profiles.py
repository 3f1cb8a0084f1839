"""Simulator profiles take a latency mean as well as a median (users quote means)."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from shadowcanary.errors import ConfigError
from shadowcanary.sim.profiles import ModelProfile, median_for_mean, profiles_from_mapping


def test_a_mean_gives_the_lognormal_with_that_mean_and_p99() -> None:
    """mean_ms 500 and p99_ms 1,500: draws average ~500 ms and their p99 is ~1,500 ms."""
    profile = ModelProfile.model_validate({"mean_ms": 500, "p99_ms": 1500})
    rng = random.Random(1)
    draws = sorted(profile.draw_latency_ms(rng) for _ in range(200_000))
    assert statistics.fmean(draws) == pytest.approx(500, rel=0.02)
    assert draws[int(0.99 * len(draws))] == pytest.approx(1500, rel=0.03)
    assert profile.median_ms < 500  # a right-skewed latency: median below the mean


@pytest.mark.parametrize(
    ("mean", "p99", "median"),
    [
        (500.0, 500.0, 500.0),  # no spread: mean = median = p99
        (400.0, 1200.0, None),
    ],
)
def test_median_for_mean_round_trips(mean: float, p99: float, median: float | None) -> None:
    """The median found gives back the mean through the lognormal's mean formula."""
    found = median_for_mean(mean, p99)
    if median is not None:
        assert found == pytest.approx(median)
    sigma = (math.log(p99) - math.log(found)) / 2.3263478740408408
    assert math.exp(math.log(found) + sigma**2 / 2) == pytest.approx(mean)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mean_ms": 400, "median_ms": 300}, "median_ms or mean_ms, not both"),
        ({"mean_ms": 2000, "p99_ms": 1500}, "must be <= p99_ms"),
        ({"mean_ms": 50, "p99_ms": 5000}, "at most 15.0x the mean"),
    ],
)
def test_impossible_means_are_refused_with_the_reason(
    fields: dict[str, float], message: str
) -> None:
    """A file's profile with both, or a mean no lognormal has, fails naming the fields."""
    with pytest.raises(ConfigError, match=r"mean_ms|median_ms") as caught:
        profiles_from_mapping({"my-model": fields})
    assert message in str(caught.value)
