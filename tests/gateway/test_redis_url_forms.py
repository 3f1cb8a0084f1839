"""The embedded default's Redis is a unix socket: both spellings of its URL carry traffic.

redis-py spells it ``unix:///path`` (what the CLI hands the gateway, the workers and
``up``), kombu ``redis+socket:///path``. Every process that takes a broker URL must
accept both: a gateway whose tap cannot publish drops every event, quietly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from shadowcanary.launcher.gateway import run_gateway
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.store.db import make_engine
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.servers import RedisServer
from shadowcanary.urls import broker_url_for
from tests.conftest import started_redis
from tests.gateway.conftest import ROLLOUT, base_env, set_flag
from tests.integration.conftest import models_setting
from tests.integration.pipeline import rows

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def socket_redis() -> Iterator[RedisServer]:
    """A real redis-server listening on a unix socket, as the embedded default runs it."""
    with started_redis("sc-redis-sock-", unix_socket=True) as server:
        yield server


def _url(server: RedisServer, form: str) -> str:
    return server.unix_url if form == "unix" else broker_url_for(server.unix_url)


@pytest.mark.parametrize(
    ("gateway_form", "worker_form"), [("unix", "redis+socket"), ("redis+socket", "unix")]
)
def test_gateway_and_worker_on_a_unix_socket_redis_store_every_call(
    socket_redis: RedisServer,
    database_url: str,
    sim: SimHandle,
    gateway_form: str,
    worker_form: str,
) -> None:
    """A call through the gateway reaches Postgres via a socket Redis in either URL spelling."""
    set_flag(database_url, 0)
    env = base_env(_url(socket_redis, gateway_form), database_url, sim)
    user = f"u-{gateway_form}-{time.monotonic_ns()}"
    with run_gateway(env) as gateway:
        response = httpx.post(
            f"{gateway.base_url}/chat/completions",
            json={
                "model": "gpt-5.2",
                "messages": [{"role": "user", "content": "hi"}],
                "user": user,
            },
            headers={"Authorization": f"Bearer {gateway.api_key}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        worker_env = {
            "SHADOWCANARY_DATABASE_URL": database_url,
            "SHADOWCANARY_REDIS_URL": _url(socket_redis, worker_form),
            "SHADOWCANARY_MODELS": models_setting(sim.base_url),
            "SHADOWCANARY_LOG_LEVEL": "info",
        }
        engine = make_engine(database_url, pool_size=1)
        try:
            with run_worker(worker_env):
                captured = wait_until(
                    lambda: rows(engine, "select rollout, status from captures"),
                    timeout_s=60,
                    what="the gateway's call captured in Postgres",
                )
        finally:
            engine.dispose()
        log = gateway.log_text()
    assert [tuple(r) for r in captured] == [(ROLLOUT, "ok")]
    assert "tap_publish_failed" not in log
