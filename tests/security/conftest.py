"""Fixtures of the security tests: the data-path ones of tests/integration and a gateway."""

from collections.abc import Iterator

import pytest

from shadowcanary.launcher.gateway import GatewayHandle, run_gateway
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.testing.servers import RedisServer
from tests.integration.conftest import models_setting, sim, worker_env

__all__ = ["gateway", "sim", "worker_env"]


@pytest.fixture(scope="module")
def gateway(sim: SimHandle, redis_server: RedisServer) -> Iterator[GatewayHandle]:
    """A real gateway process in front of the simulator, publishing to the session Redis."""
    env = {
        "SHADOWCANARY_REDIS_URL": redis_server.url,
        "SHADOWCANARY_MODELS": models_setting(sim.base_url),
    }
    with run_gateway(env) as handle:
        yield handle
