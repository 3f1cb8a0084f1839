"""Fixtures for the data-path tests: the simulator and a worker environment."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from shadowcanary.launcher.sim import SimHandle, run_simulator

# Fast, fault-free simulated models: the tests inject faults explicitly.
FAST_PROFILES = {
    "text-embedding-3-small": {"median_ms": 2, "p99_ms": 10},
    "gpt-5.2": {"median_ms": 5, "p99_ms": 20, "sampling_noise": 0.0},
    "gpt-5.5": {
        "median_ms": 5,
        "p99_ms": 20,
        "diverge_from": "gpt-5.2",
        "divergence": 0.0,
        "verbosity": 1.0,
    },
}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    """A simulator subprocess with fast, deterministic baseline and candidate."""
    with run_simulator(FAST_PROFILES) as handle:
        yield handle


def models_setting(base_url: str, **candidate: object) -> str:
    """SHADOWCANARY_MODELS pointing both arms at the simulator."""
    return json.dumps(
        {
            "gpt-5.2": {
                "base_url": base_url,
                "input_usd_per_mtok": 1.75,
                "output_usd_per_mtok": 14.0,
            },
            "gpt-5.5": {
                "base_url": base_url,
                "input_usd_per_mtok": 5.0,
                "output_usd_per_mtok": 30.0,
                **candidate,
            },
        }
    )


@pytest.fixture
def worker_env(database_url: str, redis_url: str, sim: SimHandle) -> dict[str, str]:
    """Environment for a worker subprocess wired to the test's Postgres, Redis and simulator."""
    return {
        "SHADOWCANARY_DATABASE_URL": database_url,
        "SHADOWCANARY_REDIS_URL": redis_url,
        "SHADOWCANARY_MODELS": models_setting(sim.base_url),
        "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0.5",
        "SHADOWCANARY_REPLAY__BACKOFF_BASE_S": "0.2",
        "SHADOWCANARY_REPLAY__BACKOFF_MAX_S": "1",
        "SHADOWCANARY_REPLAY__VISIBILITY_TIMEOUT_S": "8",
        "SHADOWCANARY_LOG_LEVEL": "info",
    }
