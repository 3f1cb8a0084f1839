"""Sampling: per-route rates, deterministic by event id in every process."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from shadowcanary.errors import ConfigError
from shadowcanary.tap.sampling import Sampler, sample_point

IDS = [uuid.uuid5(uuid.NAMESPACE_URL, f"event-{i}").hex for i in range(4_000)]


@pytest.mark.parametrize(
    ("route", "low", "high"),
    [
        ("none", 0, 0),
        ("half", 1_850, 2_150),  # binomial(4000, 0.5): sd ~32, so ±150 is ~5 sd
        ("all", 4_000, 4_000),
        ("other", 300, 500),  # the default rate 0.1: binomial sd ~19, ±100 is ~5 sd
    ],
)
def test_rates_per_route(route: str, low: int, high: int) -> None:
    """Routes keep none, about half or all of their events; unknown routes use the default."""
    sampler = Sampler(0.1, {"none": 0.0, "half": 0.5, "all": 1.0})
    kept = sum(sampler.keep(route, event_id) for event_id in IDS)
    assert low <= kept <= high


def test_same_event_same_decision() -> None:
    """Two samplers with the same rate agree on every event; a higher rate keeps a superset."""
    a, b = Sampler(0.3), Sampler(0.3)
    assert [a.keep("r", i) for i in IDS] == [b.keep("r", i) for i in IDS]
    wider = Sampler(0.6)
    assert all(wider.keep("r", i) for i in IDS if a.keep("r", i))


def test_decision_is_stable_across_processes() -> None:
    """Another interpreter with a different hash seed computes the same sample points."""
    code = (
        "import sys; from shadowcanary.tap.sampling import sample_point;"
        "print(','.join(repr(sample_point(i)) for i in sys.argv[1:]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, *IDS[:20]], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()
    assert out == ",".join(repr(sample_point(i)) for i in IDS[:20])


def test_sample_points_are_in_unit_interval() -> None:
    """Sample points lie in [0, 1)."""
    assert all(0.0 <= sample_point(i) < 1.0 for i in IDS)


@pytest.mark.parametrize("rates", [{"r": 1.5}, {"r": -0.1}])
def test_invalid_rate_is_a_config_error(rates: dict[str, float]) -> None:
    """A rate outside [0, 1] is refused at construction with the route named."""
    with pytest.raises(ConfigError, match="sample_rates\\['r'\\]"):
        Sampler(1.0, rates)
