"""The ingest journal: a batch a worker took and died with is published again and stored once.

kombu takes a message with ``BRPOP`` before it records it as unacknowledged; a worker
killed in between takes the message with it (docs/guarantees.md 2.11). Here that is
done deterministically: the message is popped from the queue by hand, as the dead
worker's ``BRPOP`` would have, and a real worker's sweep must find the batch in the
journal the tap wrote and publish it again.
"""

from __future__ import annotations

import redis

from shadowcanary import constants
from shadowcanary.launcher.worker import run_worker
from shadowcanary.settings import TapSettings
from shadowcanary.store.db import make_engine
from shadowcanary.tap.emitter import Tap
from shadowcanary.testing.factories import make_event
from shadowcanary.testing.poll import wait_until
from tests.integration.pipeline import scalar
from workers.app import ingest_sweep_grace_s

VISIBILITY_TIMEOUT_S = 2


def _journal(client: redis.Redis) -> str:
    return (
        f"journal={client.hlen(constants.INGEST_JOURNAL_KEY)} "
        f"index={client.zcard(constants.INGEST_JOURNAL_INDEX_KEY)} "
        f"queued={client.llen(constants.QUEUE_INGEST)}"
    )


def test_a_batch_popped_by_a_worker_that_died_is_republished_and_stored_once(
    worker_env: dict[str, str], redis_url: str, database_url: str
) -> None:
    """The popped batch comes back through the sweep; every event stored once; journal empty."""
    client = redis.Redis.from_url(redis_url)
    events = [make_event(rollout="journal-test") for _ in range(5)]
    with Tap(TapSettings(flush_interval_s=0.01), redis_url) as tap:
        for event in events:
            tap.emit(event)
        tap.close(timeout_s=10)
        assert tap.stats().published == len(events)
    # The tap's batches, each journalled: then one vanishes as into a killed worker.
    batches = client.llen(constants.QUEUE_INGEST)
    assert batches >= 1 and client.zcard(constants.INGEST_JOURNAL_INDEX_KEY) == batches
    assert client.rpop(constants.QUEUE_INGEST) is not None, _journal(client)

    env = {
        **worker_env,
        "SHADOWCANARY_REPLAY__VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
        "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0",
    }
    engine = make_engine(database_url, pool_size=1)
    stored_sql = "select count(*) from captures where rollout = 'journal-test'"
    grace = ingest_sweep_grace_s(VISIBILITY_TIMEOUT_S)
    with run_worker(env, name="sweeping"):
        wait_until(
            lambda: scalar(engine, stored_sql) == len(events),
            timeout_s=grace + 60,
            interval_s=0.5,
            what=f"every event stored, the lost batch through the sweep ({_journal(client)})",
        )
        wait_until(
            lambda: client.zcard(constants.INGEST_JOURNAL_INDEX_KEY) == 0,
            timeout_s=30,
            what=f"the journal settled ({_journal(client)})",
        )
    with engine.connect() as conn:
        ids = {
            row[0]
            for row in conn.exec_driver_sql(
                "select event_id from captures where rollout = 'journal-test'"
            )
        }
    engine.dispose()
    assert ids == {e.event_id for e in events}
    assert client.hlen(constants.INGEST_JOURNAL_KEY) == 0, _journal(client)
    client.close()
