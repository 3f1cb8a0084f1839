"""Stored events whose replay task was lost are replayed by the workers' sweep."""

from __future__ import annotations

import redis

from shadowcanary import constants
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.store.db import make_engine
from shadowcanary.testing.factories import make_event
from shadowcanary.testing.poll import wait_until
from tests.integration.pipeline import scalar, send_ingest


def test_captures_whose_replay_task_was_lost_are_replayed_by_the_sweep(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """Replay tasks deleted from Redis after ingest: the sweep replays each event once."""
    engine = make_engine(database_url)
    env = {
        **worker_env,
        "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0",
        # Sweep grace 3 x 2 s + 1 x 1 s = 7 s; a sweep every 5 s.
        "SHADOWCANARY_REPLAY__VISIBILITY_TIMEOUT_S": "2",
        "SHADOWCANARY_REPLAY__MAX_ATTEMPTS": "1",
        "SHADOWCANARY_REPLAY__BACKOFF_MAX_S": "1",
    }
    events = [make_event(model="gpt-5.2", rollout="swept") for _ in range(6)]
    client = redis.Redis.from_url(redis_url)
    try:
        with run_worker(env, name="ingest-only", queues=(constants.QUEUE_INGEST,)):
            send_ingest(redis_url, [e.model_dump(mode="json") for e in events])
            wait_until(
                lambda: (
                    scalar(engine, "select count(*) from captures") == len(events)
                    and client.llen(constants.QUEUE_REPLAY) > 0
                ),
                timeout_s=30,
                what="the events stored and their replays queued",
            )
        # The replay tasks are lost (as at a kill -9 between BRPOP and the unacked record).
        client.delete(constants.QUEUE_REPLAY)
        with run_worker(env, name="sweeper") as worker:
            wait_until(
                lambda: scalar(engine, "select count(*) from comparisons") == len(events),
                timeout_s=60,
                what="every stored event compared after the sweep",
            )
    finally:
        client.close()
    assert "replay.swept" in worker.output(), "the sweep, not a leftover task, replayed them"
    per_event = scalar(
        engine, "select max(n) from (select count(*) n from comparisons group by event_id) t"
    )
    assert per_event == 1, f"an event was compared {per_event} times"
