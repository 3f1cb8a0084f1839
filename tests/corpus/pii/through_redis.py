"""What a corpus looks like once a real ``Tap`` has put it on the ingest queue in Redis."""

from __future__ import annotations

import redis

from shadowcanary import constants
from shadowcanary.settings import TapSettings
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.publisher import decode_ingest_message
from tests.corpus.pii.corpus import event_of


def texts_on_the_ingest_queue(texts: list[str], redis_url: str) -> list[str]:
    """Each text as it landed on the queue (after the tap's redaction), in input order."""
    events = [event_of(text) for text in texts]
    with Tap(TapSettings(buffer_size=len(events), flush_interval_s=0.01), redis_url) as tap:
        for event in events:
            tap.emit(event)
        tap.close(timeout_s=60)
        published = tap.stats().published
    assert published == len(events), f"the tap published {published} of {len(events)} events"
    client = redis.Redis.from_url(redis_url)
    try:
        messages = client.lrange(constants.QUEUE_INGEST, 0, -1)
    finally:
        client.close()
    landed = {
        event["event_id"]: event["request"]["messages"][0]["content"]
        for raw in messages
        for event in decode_ingest_message(raw)
    }
    return [landed[event.event_id] for event in events]
