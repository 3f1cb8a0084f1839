"""``Tap.outcome`` against a real Redis: bounded, fail open, every drop counted by reason."""

from __future__ import annotations

import asyncio
import math

import openai
import orjson
import pytest
import redis

from shadowcanary import constants
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.settings import TapSettings
from shadowcanary.tap import last_event_id
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.openai_wrapper import tap_openai
from shadowcanary.tap.outcome_buffer import OutcomeDrop
from shadowcanary.tap.publisher import decode_ingest_message
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.servers import RedisServer

pytestmark = pytest.mark.integration


def queued_messages(url: str) -> list[tuple[str, list[dict]]]:
    """(task name, its argument list) of every message on the ingest queue."""
    client = redis.Redis.from_url(url)
    try:
        raw = client.lrange(constants.QUEUE_INGEST, 0, -1)
    finally:
        client.close()
    return [(orjson.loads(r)["headers"]["task"], decode_ingest_message(r)) for r in raw]


def test_outcomes_are_published_and_bad_ones_are_counted_never_raised(redis_url: str) -> None:
    """Good reports reach the ingest queue as one outcomes message; invalid values, no event
    id and a closed tap return False and are counted by reason, never raised."""
    tap = Tap(TapSettings(flush_interval_s=0.01), redis_url)
    assert tap.outcome("evt-good-0001", task="completed", value=3.5) is True
    assert tap.outcome("evt-good-0002", feedback="down", retried=True, rollout="r1") is True
    assert tap.outcome("evt-bad-00001", task="finished") is False  # not an outcome
    assert tap.outcome("evt-bad-00002", value=math.nan) is False
    assert tap.outcome("evt-bad-00003") is False  # says nothing
    assert tap.outcome("short") is False
    assert tap.outcome(None, task="completed") is False  # the call was not captured
    tap.close()
    assert tap.outcome("evt-late-0001", task="completed") is False
    stats = tap.outcome_stats()
    assert stats.published == 2 and stats.buffered == 0
    assert stats.dropped[OutcomeDrop.INVALID] == 4
    assert stats.dropped[OutcomeDrop.NO_EVENT] == 1
    assert stats.dropped[OutcomeDrop.CLOSED] == 1
    assert stats.reported == stats.published + sum(stats.dropped.values())
    ((task, reports),) = queued_messages(redis_url)
    assert task == constants.TASK_OUTCOMES
    assert [r["event_id"] for r in reports] == ["evt-good-0001", "evt-good-0002"]
    assert reports[0]["task"] == "completed" and reports[0]["value"] == 3.5
    assert reports[1]["feedback"] == "down" and reports[1]["retried"] is True
    assert reports[1]["rollout"] == "r1" and "tenant" not in reports[1]


def test_redis_down_outcomes_are_dropped_and_counted(own_redis: RedisServer) -> None:
    """With Redis stopped, outcome() still returns at once and the failed publish is counted."""
    tap = Tap(TapSettings(flush_interval_s=0.01, publish_timeout_s=0.2), own_redis.url)
    try:
        own_redis.stop()
        for i in range(50):
            assert tap.outcome(f"evt-down-{i:04d}", task="abandoned") is True
        wait_until(
            lambda: tap.outcome_stats().dropped[OutcomeDrop.PUBLISH_FAILED] == 50,
            timeout_s=10,
            what="the failed publish counted",
        )
    finally:
        tap.close(timeout_s=1)
    assert tap.outcome_stats().published == 0


def test_last_event_id_names_the_captured_call_sync_async_and_streamed(
    redis_url: str, sim: SimHandle
) -> None:
    """After a tapped call (plain, streamed, Responses, awaited), last_event_id() is the id
    its capture was published under, so tap.outcome(last_event_id(), ...) joins that call."""
    tap = Tap(TapSettings(flush_interval_s=0.01), redis_url)
    messages = [{"role": "user", "content": "Where is my parcel?"}]
    sync_client = tap_openai(openai.OpenAI(base_url=sim.base_url, api_key="sim"), tap)
    sync_client.chat.completions.create(model="gpt-5.2", messages=messages)
    plain = last_event_id()
    stream = sync_client.chat.completions.create(model="gpt-5.2", messages=messages, stream=True)
    streamed = last_event_id()  # known before the stream is read
    list(stream)
    sync_client.responses.create(model="gpt-5.2", input="Where is my parcel?")
    responses = last_event_id()

    async def awaited() -> str | None:
        client = tap_openai(openai.AsyncOpenAI(base_url=sim.base_url, api_key="sim"), tap)
        async with client:
            await client.chat.completions.create(model="gpt-5.2", messages=messages)
            return last_event_id()

    in_task = asyncio.run(awaited())
    tap.close()
    ids = [plain, streamed, responses, in_task]
    assert None not in ids and len(set(ids)) == 4
    captured = [e["event_id"] for task, batch in queued_messages(redis_url) for e in batch
                if task == constants.TASK_INGEST]  # fmt: skip
    assert sorted(captured) == sorted(ids)
    sync_client.close()
