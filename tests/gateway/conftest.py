"""Fixtures for the gateway tests: the real gateway subprocess in front of the simulator.

The simulator (``sim``, one per test module) serves both arms; the gateway routes the
default route by an embedded flag in the test's own Postgres database and taps every
call into the test's Redis. ``flag`` sets the rollout percentage the way the
controller does (``EmbeddedFlags``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_lib

from flags.base import FlagSpec
from flags.embedded import EmbeddedFlags
from shadowcanary import constants
from shadowcanary.events import CapturedCall, parse_event
from shadowcanary.launcher.gateway import GatewayHandle, run_gateway
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.store.db import make_engine
from shadowcanary.tap.publisher import decode_ingest_message
from tests.integration.conftest import sim, worker_env  # noqa: F401 - fixtures

ROLLOUT = "gw-rollout"
FLAG = FlagSpec(
    name="gw-flag",
    project="default",
    environment="development",
    stickiness="userId",
    baseline_model="gpt-5.2",
    candidate_model="gpt-5.5",
)
UPSTREAM_KEY = "sk-upstream-DO-NOT-LEAK-7f3a9c2e11"
SALT = "gateway-test-salt"


def gateway_models(base_url: str, **overrides: dict[str, Any]) -> dict[str, Any]:
    """Every model the gateway tests use, all on the simulator with one distinctive key."""
    models = {
        name: {"base_url": base_url, "api_key": UPSTREAM_KEY}
        for name in ("gpt-5.2", "gpt-5.5", "text-embedding-3-small", "gpt-slow")
    }
    for name, changes in overrides.items():
        models[name] = {**models.get(name, {}), **changes}
    return models


def base_env(
    redis_url: str, database_url: str, simulator: SimHandle, **route: Any
) -> dict[str, str]:
    """Gateway settings: the default route follows the test flag; the 'plain' route does not."""
    return {
        "SHADOWCANARY_REDIS_URL": redis_url,
        "SHADOWCANARY_DATABASE_URL": database_url,
        "SHADOWCANARY_MODELS": json.dumps(gateway_models(simulator.base_url)),
        "SHADOWCANARY_STICKINESS_SALT": SALT,
        "SHADOWCANARY_FLAGS": "embedded",
        "SHADOWCANARY_LOG_LEVEL": "info",
        "SHADOWCANARY_TAP__FLUSH_INTERVAL_S": "0.02",
        "SHADOWCANARY_GATEWAY__FLAG_REFRESH_S": "0.2",
        "SHADOWCANARY_GATEWAY__ROUTES": json.dumps(
            {
                "default": {"rollout": ROLLOUT, "flag": FLAG.name, **route},
                "plain": {},
            }
        ),
    }


def set_flag(database_url: str, percent: int) -> None:
    """Create the test flag if needed and set its rollout percentage."""
    engine = make_engine(database_url, pool_size=1)
    try:
        flags = EmbeddedFlags(engine)
        flags.ensure_flag(FLAG)
        flags.set_rollout(FLAG.name, percent)
    finally:
        engine.dispose()


def tapped_events(redis_url: str) -> list[CapturedCall]:
    """Every event the gateway's tap has published to the ingest queue so far."""
    client = redis_lib.Redis.from_url(redis_url)
    try:
        raw = client.lrange(constants.QUEUE_INGEST, 0, -1)
    finally:
        client.close()
    return [parse_event(e) for r in raw for e in decode_ingest_message(r)]


@pytest.fixture
def gateway_env(redis_url: str, database_url: str, sim: SimHandle) -> dict[str, str]:  # noqa: F811
    set_flag(database_url, 0)
    return base_env(redis_url, database_url, sim)


@pytest.fixture
def gateway(gateway_env: dict[str, str]) -> Iterator[GatewayHandle]:
    """The gateway, default route on the test flag (at 0 % unless the test moves it)."""
    with run_gateway(gateway_env) as handle:
        yield handle
