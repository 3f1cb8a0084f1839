"""Postgres stops for the outage under steady traffic, with a controller running."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flags.embedded import EmbeddedFlags
from shadowcanary.controller.operator import Operator
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.rollout_records import AuditAction
from shadowcanary.store.db import make_engine
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.servers import PostgresServer, RedisServer
from tests.faults.stack import (
    assert_balanced,
    controller_process,
    outage_s,
    read_books,
    settle,
    steady_traffic,
)
from tests.integration.controller_harness import FakeClock, ports_for, small_plan, webhook_sink

pytestmark = pytest.mark.integration


def test_postgres_stopped_workers_retry_controller_holds_and_nothing_is_lost(
    own_postgres: PostgresServer,
    persistent_redis: RedisServer,
    worker_env: dict[str, str],
    sim: SimHandle,
    tmp_path: Path,
) -> None:
    """Workers re-queue instead of failing; the controller HOLDs and alerts; the books balance."""
    url = own_postgres.url
    engine = make_engine(url, pool_size=2)
    rollout = "fault-postgres"
    env = {
        **worker_env,
        "SHADOWCANARY_DATABASE_URL": url,
        "SHADOWCANARY_REDIS_URL": persistent_redis.url,
    }
    with webhook_sink() as sink:
        clock = FakeClock(datetime.now(UTC))  # the controller process runs on the real clock
        flags = EmbeddedFlags(engine)
        Operator(ports_for(engine, url, flags, clock, actor="cli:sre")).start(
            small_plan(rollout, f"{rollout}-flag", webhook=sink.url)
        )
        with (
            run_worker(env) as worker,
            controller_process(
                {"SHADOWCANARY_DATABASE_URL": url}, rollout, tmp_path / "c.log"
            ) as controller,
            steady_traffic(persistent_redis.url, rollout) as traffic,
        ):
            wait_until(
                lambda: (
                    len(read_books(engine, rollout).stored) >= 100
                    # A decision: the controller has read the rollout (and its webhooks).
                    and '"event": "decision"' in controller.output()
                ),
                timeout_s=60,
                what="traffic stored and the controller deciding",
            )
            own_postgres.stop()
            down = datetime.now(UTC)
            # The outage itself: the fault under test, not a wait for something to happen.
            time.sleep(outage_s())
            alerts_during = [t for t in sink.texts() if "Postgres" in t and "HOLD" in t]
            # Read now: the worker's output buffer keeps only its latest lines.
            met_outage = "task.outage_retry" in worker.output()
            failed_tasks = "raised unexpected" in worker.output()
            up = datetime.now(UTC)  # from here on Postgres may answer (start() waits for it)
            own_postgres.start()
            stats = traffic.stop()
            books = settle(engine, rollout, stats.published, diagnostics=worker.output)
            store = ports_for(engine, url, flags, clock).store
            wait_until(
                lambda: any(
                    e.action is AuditAction.ALERT and "reachable again" in e.reason
                    for e in store.history(rollout)
                ),
                timeout_s=30,
                what="the controller's all-clear in the audit log",
            )
            record = store.get(rollout)
            failed_tasks = failed_tasks or "raised unexpected" in worker.output()

    assert len(alerts_during) == 1, sink.texts()
    # Fail closed: nothing but alerts was decided while Postgres (and so the evidence) was away.
    during = [e for e in store.history(rollout) if down <= e.at <= up]
    assert all(e.action is AuditAction.ALERT for e in during), [e.reason for e in during]
    assert flags.read(f"{rollout}-flag").effective_percent == record.percent
    assert met_outage, "the workers met the outage and re-queued"
    assert not failed_tasks, "no task failed (and was acked) on the outage"
    assert_balanced(books, traffic.emitted, stats)
