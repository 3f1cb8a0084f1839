"""A task whose retry (or whose replays) cannot be published to Redis is redelivered, not lost.

The worker runs in this process (``celery.contrib.testing``) with the production app
and tasks, but publishes through a TCP proxy to the real Redis while it consumes
directly: the proxy then makes Redis unreachable for publishing only, exactly when
the task publishes, which a real Redis outage cannot aim at.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker

from shadowcanary import constants
from shadowcanary.launcher.embedded_services import resolve_urls
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.settings import load_settings
from shadowcanary.store.db import make_engine
from shadowcanary.testing.factories import make_event
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.tcp_proxy import TcpProxy, tcp_proxy
from tests.integration.pipeline import scalar, send_ingest, sim_calls
from workers.app import create_app


@contextmanager
def _worker_publishing_through(
    env: dict[str, str], proxy: TcpProxy, redis_url: str
) -> Iterator[Celery]:
    settings = load_settings(env)
    app = create_app(settings, resolve_urls(settings))
    # Consume from Redis itself, publish (retries, replays) through the proxy.
    app.conf.broker_read_url = redis_url
    app.conf.broker_write_url = f"redis://127.0.0.1:{proxy.port}/0"
    with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False):
        yield app


def _stored(engine: object, event_id: str) -> bool:
    return bool(
        scalar(engine, "select count(*) from captures where event_id = :e", e=event_id)  # type: ignore[arg-type]
    )


def _settled(engine: object, event_id: str) -> bool:
    return bool(
        scalar(
            engine,  # type: ignore[arg-type]
            "select count(*) from comparisons where event_id = :e and kind = 'candidate'",
            e=event_id,
        )
    )


def test_a_retry_that_cannot_be_published_is_redelivered_not_dropped(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """Redis refuses the retry's publish: the replay comes back and is compared when it is back."""
    engine = make_engine(database_url)
    env = {**worker_env, "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0"}
    event = make_event(model="gpt-5.2", rollout="retry-publish")
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    client = redis.Redis.from_url(redis_url)
    # Slow and failing: the test cuts the publish path while the first attempt waits.
    sim.set_profile("gpt-5.5", error_rate=1.0, median_ms=1500, p99_ms=1600)
    try:
        with tcp_proxy(port) as proxy, _worker_publishing_through(env, proxy, redis_url):
            send_ingest(redis_url, [event.model_dump(mode="json")])
            wait_until(
                lambda: (
                    _stored(engine, event.event_id)
                    and client.llen(constants.QUEUE_INGEST) + client.llen(constants.QUEUE_REPLAY)
                    == 0
                    and client.hlen("unacked") >= 1
                ),
                timeout_s=30,
                what="the replay task taken by the worker",
            )
            calls_before = sim_calls(sim, "gpt-5.5")
            proxy.set_fault(refuse=True)
            proxy.drop_connections()
            # The attempt fails (500), its retry cannot be published; the original must
            # come back and run again rather than be deleted.
            wait_until(
                lambda: sim_calls(sim, "gpt-5.5", 500) >= calls_before + 2,
                timeout_s=60,
                what="the replay run again after its retry could not be published",
            )
            proxy.clear()
            sim.set_profile("gpt-5.5", error_rate=0.0, median_ms=5, p99_ms=20)
            wait_until(
                lambda: _settled(engine, event.event_id),
                timeout_s=60,
                what=f"event {event.event_id} compared after the broker came back",
            )
    finally:
        sim.set_profile("gpt-5.5", error_rate=0.0, median_ms=5, p99_ms=20)
        client.close()
    letters = scalar(
        engine, "select count(*) from dead_letters where event_id = :e", e=event.event_id
    )
    assert letters == 0, f"event {event.event_id} compared yet dead-lettered {letters} time(s)"


def test_replays_that_cannot_be_scheduled_after_ingest_are_scheduled_by_a_retry(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """Captures committed, Redis refuses their replays: ingest retries and they get compared."""
    engine = make_engine(database_url)
    env = {**worker_env, "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0"}
    events = [make_event(model="gpt-5.2", rollout="schedule-publish") for _ in range(3)]
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    with tcp_proxy(port) as proxy, _worker_publishing_through(env, proxy, redis_url):
        proxy.set_fault(refuse=True)
        send_ingest(redis_url, [e.model_dump(mode="json") for e in events])
        wait_until(
            lambda: scalar(engine, "select count(*) from captures") == len(events),
            timeout_s=30,
            what="the captures stored while the replays cannot be published",
        )
        # Celery's own publish retries give up after 4 connections; an ingest that then
        # failed was acked and its replays lost. Redelivered, it keeps trying.
        wait_until(
            lambda: proxy.stats.refused >= 12,
            timeout_s=60,
            what="the ingest batch still trying to schedule its replays",
        )
        proxy.clear()
        wait_until(
            lambda: (
                scalar(engine, "select count(*) from comparisons where kind = 'candidate'")
                == len(events)
            ),
            timeout_s=60,
            what="every stored event compared once the broker takes the replays",
        )
    per_event = scalar(
        engine, "select max(n) from (select count(*) n from comparisons group by event_id) t"
    )
    assert per_event == 1, f"an event was compared {per_event} times"
