"""Latency injected on the Redis and Postgres connections (loopback fault proxy)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from flags.embedded import EmbeddedFlags
from shadowcanary.controller.operator import Operator
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.store.db import make_engine
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.servers import RedisServer
from shadowcanary.testing.tcp_proxy import tcp_proxy
from tests.faults.stack import (
    assert_balanced,
    controller_process,
    read_books,
    settle,
    steady_traffic,
)
from tests.integration.controller_harness import FakeClock, ports_for, small_plan

pytestmark = pytest.mark.integration

DELAY_MS = 25.0  # per chunk and direction: a 50 ms round trip, a slow cross-zone link


def test_slow_redis_and_postgres_links_slow_the_flow_but_lose_and_double_nothing(
    redis_server: RedisServer,
    redis_url: str,
    database_url: str,
    worker_env: dict[str, str],
    sim: SimHandle,
    tmp_path: Path,
) -> None:
    """Tap, worker and controller all talk through 50 ms round trips; the books still balance."""
    rollout = "fault-latency"
    engine = make_engine(database_url)
    pg = make_url(database_url)
    with tcp_proxy(redis_server.port) as slow_redis, tcp_proxy(pg.port or 5432) as slow_pg:
        slow_redis_url = f"redis://127.0.0.1:{slow_redis.port}/0"
        slow_database_url = pg.set(port=slow_pg.port).render_as_string(hide_password=False)
        clock = FakeClock(datetime.now(UTC))
        Operator(ports_for(engine, database_url, EmbeddedFlags(engine), clock)).start(
            # No p99 trigger: the first tick takes the first step, then every tick decides.
            small_plan(rollout, f"{rollout}-flag", triggers="  p99_latency: off")
        )
        env = {
            **worker_env,
            "SHADOWCANARY_REDIS_URL": slow_redis_url,
            "SHADOWCANARY_DATABASE_URL": slow_database_url,
        }
        with (
            run_worker(env) as worker,
            controller_process(
                {"SHADOWCANARY_DATABASE_URL": slow_database_url}, rollout, tmp_path / "c.log"
            ) as controller,
            steady_traffic(slow_redis_url, rollout, rate=30) as traffic,
        ):
            wait_until(
                lambda: read_books(engine, rollout).compared >= 30,
                timeout_s=60,
                what="replays flowing before the delay",
            )
            slow_redis.set_fault(delay_ms=DELAY_MS)
            slow_pg.set_fault(delay_ms=DELAY_MS)
            delayed_from = traffic.count()
            decisions_before = controller.output().count('"event": "decision"')
            # Steady traffic for a while under the delay (the fault itself, not a wait).
            time.sleep(10)
            wait_until(
                lambda: controller.output().count('"event": "decision"') > decisions_before + 2,
                timeout_s=30,
                what="the controller deciding over the slow link",
            )
            emit_cost = traffic.emit_seconds[delayed_from:]
            stats = traffic.stop()
            books = settle(engine, rollout, stats.published, diagnostics=worker.output)
            delayed_bytes = slow_redis.stats.bytes_up + slow_pg.stats.bytes_up

    assert delayed_bytes > 0
    assert max(emit_cost) < 0.1, "the caller never waits on the slow Redis"
    assert stats.dropped_total == 0, "a 50 ms round trip costs the tap no event"
    assert "dependency unreachable" not in controller.output()
    assert_balanced(books, traffic.emitted, stats)
