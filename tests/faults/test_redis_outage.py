"""Redis stops under steady traffic (AOF on, as in docker-compose), or crashes (AOF or not)."""

from __future__ import annotations

import time
import uuid
from contextlib import ExitStack

import pytest
import redis

from shadowcanary import constants
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.settings import TapSettings
from shadowcanary.store.db import make_engine
from shadowcanary.tap.emitter import DropReason, Tap
from shadowcanary.testing.factories import make_event
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.servers import RedisServer
from tests.faults.stack import assert_balanced, outage_s, read_books, settle, steady_traffic

pytestmark = pytest.mark.integration


def test_redis_stopped_then_restarted_loses_nothing_it_accepted(
    persistent_redis: RedisServer, worker_env: dict[str, str], database_url: str, sim: SimHandle
) -> None:
    """The tap fails open and counts drops; events queued before the stop survive; flow resumes."""
    engine = make_engine(database_url)
    rollout = "fault-redis"
    env = {
        **worker_env,
        "SHADOWCANARY_REDIS_URL": persistent_redis.url,
        # A task whose ack or retry could not reach Redis stays unacked there and comes
        # back after the visibility timeout (guarantee 2.10); shortened so the test sees it
        # (a task here runs for about a second).
        "SHADOWCANARY_REPLAY__VISIBILITY_TIMEOUT_S": "15",
        # Few replays in flight and a slow candidate: the worker settles fewer events
        # per second than the ~48 replays/s sent, so a backlog is queued when Redis stops.
        "SHADOWCANARY_REPLAY__MAX_IN_FLIGHT": "16",
        "SHADOWCANARY_REPLAY__BATCH_SIZE": "8",
    }
    sim.set_profile("gpt-5.5", median_ms=500, p99_ms=700)
    try:
        with ExitStack() as stack:
            workers = [stack.enter_context(run_worker(env))]
            traffic = stack.enter_context(steady_traffic(persistent_redis.url, rollout))
            wait_until(
                lambda: len(read_books(engine, rollout).stored) >= 100,
                timeout_s=60,
                what="traffic flowing before the outage",
            )
            client = redis.Redis.from_url(persistent_redis.url)
            queued = wait_until(
                lambda: client.llen(constants.QUEUE_REPLAY) + client.llen(constants.QUEUE_INGEST),
                timeout_s=30,
                what="a backlog queued in Redis",
            )
            client.close()
            published_before = traffic.tap.stats().published
            persistent_redis.stop(graceful=True)
            first_emit_down = traffic.count()
            # The outage itself: the fault under test, not a wait for something to happen.
            time.sleep(outage_s())
            emit_cost = traffic.emit_seconds[first_emit_down : traffic.count()]
            during = traffic.tap.stats()
            persistent_redis.start()
            restarted = time.monotonic()
            # A fast candidate again, so the backlog drains within the test.
            sim.set_profile("gpt-5.5", median_ms=5, p99_ms=20)
            if workers[0].proc.poll() is not None:
                # kombu can crash the worker when the broker connection drops (a race in
                # its reconnect; see docs/guarantees.md 2.10). Its supervisor restarts it,
                # as docker-compose's restart policy does; its unacked tasks are in Redis.
                workers.append(stack.enter_context(run_worker(env, name="restarted")))
            resumed_from = during.published
            wait_until(
                lambda: traffic.tap.stats().published > resumed_from + 20,
                timeout_s=30,
                what="the tap publishing again",
            )
            resume_s = time.monotonic() - restarted
            stats = traffic.stop()
            books = settle(
                engine,
                rollout,
                stats.published,
                diagnostics=lambda: "\n".join(w.output() for w in workers),
            )
    finally:
        sim.set_profile("gpt-5.5", median_ms=5, p99_ms=20)

    assert queued > 0, "work must have been queued in Redis when it stopped"
    assert during.dropped[DropReason.PUBLISH_FAILED] > 0, "the outage must have cost drops"
    # The publish timeout is 0.3 s: a caller that waited on Redis would show it here.
    assert len(emit_cost) > 10 * outage_s(), "traffic kept being emitted during the outage"
    assert max(emit_cost) < 0.1, "emit never blocks the caller while Redis is down"
    assert resume_s < 10, f"flow resumed {resume_s:.1f}s after the restart"
    assert len(books.stored) >= published_before
    assert_balanced(books, traffic.emitted, stats)


def _queued_after_crash(server: RedisServer, events: int) -> tuple[int, int]:
    """Publish ``events`` through the tap (no worker), kill -9 Redis, restart: (before, after)."""
    settings = TapSettings(flush_interval_s=0.01)
    with Tap(settings, server.url) as tap:
        template = make_event(rollout="crash")
        for _ in range(events):
            tap.emit(template.model_copy(update={"event_id": uuid.uuid4().hex}))
        wait_until(lambda: tap.stats().published == events, timeout_s=10, what="published")
    client = redis.Redis.from_url(server.url)
    before = int(client.llen(constants.QUEUE_INGEST))
    client.close()
    # appendfsync everysec: what was written more than a second ago is on disk.
    time.sleep(1.5)
    server.stop()  # SIGKILL: a crash, not a shutdown
    server.start()
    client = redis.Redis.from_url(server.url)
    after = int(client.llen(constants.QUEUE_INGEST))
    client.close()
    return before, after


def test_redis_crash_without_persistence_loses_everything_queued(own_redis: RedisServer) -> None:
    """No AOF (the test servers' default): a kill -9 of Redis empties the queue."""
    before, after = _queued_after_crash(own_redis, 200)
    assert before > 0 and after == 0


def test_redis_crash_with_aof_keeps_what_was_queued_a_second_before(
    persistent_redis: RedisServer,
) -> None:
    """AOF everysec (docker-compose): a kill -9 keeps every batch queued >1 s before it."""
    before, after = _queued_after_crash(persistent_redis, 200)
    assert before > 0 and after == before
