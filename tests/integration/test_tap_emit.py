"""The tap's emitter against a real Redis: delivery, outages, bounds, redaction, sampling."""

from __future__ import annotations

import base64
import os
import signal
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from types import SimpleNamespace

import orjson
import pytest
import redis
from kombu.message import Message
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from shadowcanary import constants
from shadowcanary.events import (
    CapturedCall,
    ChatMessage,
    ContentPart,
    ModelRequest,
    ModelResponse,
    ToolCall,
    now_utc,
    parse_event,
)
from shadowcanary.settings import TapSettings
from shadowcanary.tap.emitter import DropReason, Tap
from shadowcanary.tap.publisher import decode_ingest_message
from shadowcanary.tap.sampling import Sampler
from shadowcanary.testing.servers import RedisServer

pytestmark = pytest.mark.integration


def make_event(
    text: str = "hello", *, route: str = "default", response: str = "hi there"
) -> CapturedCall:
    start = now_utc()
    return CapturedCall(
        event_id=uuid.uuid4().hex,
        started_at=start,
        ended_at=start + timedelta(milliseconds=5),
        route=route,
        model="gpt-5.2",
        request=ModelRequest(messages=[ChatMessage(role="user", content=text)]),
        response=ModelResponse(text=response, finish_reason="stop"),
        latency_ms=5.0,
    )


def queued_raw(url: str) -> list[bytes]:
    client = redis.Redis.from_url(url)
    try:
        return list(client.lrange(constants.QUEUE_INGEST, 0, -1))
    finally:
        client.close()


def queued_events(url: str) -> list[dict]:
    return [event for raw in queued_raw(url) for event in decode_ingest_message(raw)]


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout_s}s")


@pytest.fixture
def fast_settings() -> TapSettings:
    return TapSettings(flush_interval_s=0.01, publish_timeout_s=0.2)


@pytest.fixture
def tap(fast_settings: TapSettings, redis_url: str) -> Iterator[Tap]:
    with Tap(fast_settings, redis_url) as tap:
        yield tap


def test_events_land_as_one_celery_message_per_batch(tap: Tap, redis_url: str) -> None:
    """Emitted events arrive on the ingest queue as a Celery ingest task with the events as args."""
    sent = [make_event(f"question {i}") for i in range(3)]
    for event in sent:
        tap.emit(event)
    wait_for(lambda: len(queued_events(redis_url)) == 3)

    raw = queued_raw(redis_url)
    assert len(raw) == 1
    envelope = orjson.loads(raw[0])
    assert envelope["headers"]["task"] == constants.TASK_INGEST
    assert envelope["properties"]["delivery_info"]["routing_key"] == constants.QUEUE_INGEST
    assert envelope["content-type"] == "application/json"
    assert envelope["headers"]["argsrepr"] == "[<3 events>]"  # never the prompts
    received = {
        parse_event(event).event_id: parse_event(event) for event in queued_events(redis_url)
    }
    assert received == {event.event_id: event for event in sent}


def test_flush_on_close_delivers_everything_buffered(redis_url: str) -> None:
    """close() publishes what is still buffered even though no flush was due."""
    settings = TapSettings(flush_interval_s=60, batch_size=1_000, buffer_size=10_000)
    tap = Tap(settings, redis_url)
    for i in range(2_500):
        tap.emit(make_event(f"q{i}"))
    tap.close(timeout_s=10)
    assert len(queued_events(redis_url)) == 2_500
    stats = tap.stats()
    assert (stats.published, stats.buffer_depth, stats.dropped_total) == (2_500, 0, 0)


def test_full_buffer_drops_and_counts_and_stays_bounded(redis_url: str) -> None:
    """Past buffer_size, emit drops (counted buffer_full) instead of growing memory."""
    # batch_size > buffer_size and a long interval: nothing drains until close().
    settings = TapSettings(buffer_size=100, batch_size=1_000, flush_interval_s=60)
    tap = Tap(settings, redis_url)
    for i in range(1_000):
        tap.emit(make_event(f"q{i}"))
    stats = tap.stats()
    assert stats.buffer_depth == 100
    assert stats.dropped[DropReason.BUFFER_FULL] == 900
    tap.close(timeout_s=10)
    assert len(queued_events(redis_url)) == 100


def test_redis_down_costs_the_caller_nothing_and_recovers(own_redis: RedisServer) -> None:
    """With Redis stopped, a 10k burst of emits never raises and is counted; flow resumes after."""
    settings = TapSettings(flush_interval_s=0.01, publish_timeout_s=0.2)
    with Tap(settings, own_redis.url) as tap:
        tap.emit(make_event("before"))
        wait_for(lambda: tap.stats().published == 1)
        own_redis.stop()

        # What emit costs the caller is measured by bench/tap_emit.py; here, what happens.
        for event in [make_event(f"during {i}") for i in range(10_000)]:
            tap.emit(event)
        wait_for(lambda: tap.stats().dropped[DropReason.PUBLISH_FAILED] == 10_000)

        own_redis.start()

        def new_events_land() -> bool:
            tap.emit(make_event("after"))
            return tap.stats().published > 1

        wait_for(new_events_land, timeout_s=15)
    # The restarted Redis is empty (no persistence): only what was sent after it came back.
    landed = queued_events(own_redis.url)
    assert "after" in {e["request"]["messages"][0]["content"] for e in landed}


def test_frozen_redis_blocks_only_the_background_thread(own_redis: RedisServer) -> None:
    """While the publisher hangs on a frozen Redis (SIGSTOP), emits return; delivery resumes."""
    # A publish timeout far longer than the burst: if emit waited on the publisher, the
    # burst could only end after that publish had failed and been counted as dropped.
    settings = TapSettings(flush_interval_s=0.01, publish_timeout_s=60)
    pid = own_redis.pid()
    assert pid is not None
    with Tap(settings, own_redis.url) as tap:
        tap.emit(make_event("warm up"))
        wait_for(lambda: tap.stats().published == 1)
        os.kill(pid, signal.SIGSTOP)
        try:
            tap.emit(make_event("stuck in the publisher"))
            for i in range(1_000):
                tap.emit(make_event(f"frozen {i}"))
            during = tap.stats()
        finally:
            os.kill(pid, signal.SIGCONT)
        assert during.emitted == 1_002, during
        assert during.published == 1 and during.dropped_total == 0, during

        def flows_again() -> bool:
            before = tap.stats().published
            tap.emit(make_event("thawed"))
            time.sleep(0.05)
            return tap.stats().published > before

        wait_for(flows_again, timeout_s=15)


def test_publish_failure_is_logged_with_counts_only(own_redis: RedisServer) -> None:
    """A failed publish logs a warning with counts, never prompt text."""
    settings = TapSettings(flush_interval_s=0.01, publish_timeout_s=0.2)
    own_redis.stop()
    with capture_logs() as logs, Tap(settings, own_redis.url) as tap:
        tap.emit(make_event("my secret prompt"))
        wait_for(lambda: tap.stats().dropped[DropReason.PUBLISH_FAILED] == 1)
    failures = [entry for entry in logs if entry["event"] == "tap_publish_failed"]
    assert failures and failures[0]["log_level"] == "warning"
    assert failures[0]["events"] == 1
    assert "my secret prompt" not in repr(logs)


def test_publish_failure_logs_its_cause_and_the_hint(tmp_path) -> None:
    """The warning says why publishing failed (the URL and the OS error) and what to check."""
    settings = TapSettings(flush_interval_s=0.01, publish_timeout_s=0.2)
    url = f"unix://{tmp_path / 'no-redis.sock'}?db=0"
    with capture_logs() as logs, Tap(settings, url) as tap:
        tap.emit(make_event("my secret prompt"))
        wait_for(lambda: tap.stats().dropped[DropReason.PUBLISH_FAILED] == 1)
    failure = next(entry for entry in logs if entry["event"] == "tap_publish_failed")
    assert "no-redis.sock" in failure["cause"]
    assert "No such file or directory" in failure["cause"]
    assert "SHADOWCANARY_REDIS_URL" in failure["hint"]
    assert "my secret prompt" not in repr(logs)


@pytest.mark.parametrize("form", ["unix", "redis+socket"])
def test_a_unix_socket_redis_works_in_either_url_spelling(tmp_path, form: str) -> None:
    """The socket Redis of the embedded default: unix:// and redis+socket:// both publish."""
    from tests.conftest import started_redis

    with started_redis("sc-redis-tapsock-", unix_socket=True) as server:
        url = server.unix_url.replace("unix://", f"{form}://", 1)
        with Tap(TapSettings(flush_interval_s=0.01), url) as tap:
            tap.emit(make_event("over the socket"))
            wait_for(lambda: tap.stats().published == 1)
        assert [e["request"]["messages"][0]["content"] for e in queued_events(server.url)] == [
            "over the socket"
        ]


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "127.0.0.1:6379", "amqp://guest@x//"])
def test_a_url_that_is_not_redis_is_refused_when_the_tap_is_built(url: str) -> None:
    """A non-Redis broker URL is a ConfigError naming the accepted forms, not silent drops."""
    from shadowcanary.errors import ConfigError

    with pytest.raises(ConfigError, match="not a Redis URL") as info:
        Tap(TapSettings(), url)
    assert "redis+socket://" in str(info.value.hint)


PII = {
    "email": "jane.doe@example.com",
    "phone": "+44 20 7946 0958",
    "us_phone": "(415) 555-0100",
    "card": "4111 1111 1111 1111",
    "openai_key": "sk-proj-Abcdefghijklmnopqrstuvwx0123",
    "aws_key": "AKIAIOSFODNN7EXAMPLE",
    "github": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "password": "hunter2hunter2",
}


def pii_event() -> CapturedCall:
    """An event carrying PII in every field a prompt or an answer can reach."""
    start = now_utc()
    p = PII
    return CapturedCall(
        event_id=uuid.uuid4().hex,
        started_at=start,
        ended_at=start + timedelta(milliseconds=5),
        model="gpt-5.2",
        request=ModelRequest(
            messages=[
                ChatMessage(role="system", content=f"Escalate to {p['email']}"),
                ChatMessage(
                    role="user",
                    content=[
                        ContentPart(
                            type="text", text=f"call me on {p['phone']} or {p['us_phone']}"
                        ),
                        ContentPart(
                            type="image_url", image_url={"url": "https://example.org/cat.png"}
                        ),
                    ],
                ),
                ChatMessage(
                    role="assistant",
                    tool_calls=[
                        ToolCall(
                            id="c1",
                            name="charge",
                            arguments=orjson.dumps({"card": p["card"]}).decode(),
                        )
                    ],
                ),
                ChatMessage(
                    role="tool", tool_call_id="c1", content=f"charged; key {p['openai_key']}"
                ),
            ],
            parameters={"metadata": {"note": f"aws {p['aws_key']}"}, "stop": [p["github"]]},
        ),
        response=ModelResponse(
            text=f"Done. Your password: {p['password']}",
            refusal=f"I cannot share {p['email']}",
            tool_calls=[ToolCall(id="c2", name="notify", arguments=f'{{"to": "{p["email"]}"}}')],
            finish_reason="stop",
        ),
        latency_ms=5.0,
    )


def test_pii_never_reaches_redis(tap: Tap, redis_url: str) -> None:
    """Emails, phones, cards and keys in any field are redacted before they leave the process."""
    tap.emit(pii_event())
    wait_for(lambda: len(queued_events(redis_url)) == 1)

    raw = b"".join(queued_raw(redis_url))
    decoded = orjson.dumps(queued_events(redis_url))
    for kind, value in PII.items():
        for form in {value, value.replace(" ", "")}:
            assert form.encode() not in raw, kind
            assert form.encode() not in decoded, kind
    for placeholder in (b"[EMAIL]", b"[PHONE]", b"[CARD]", b"[SECRET]"):
        assert placeholder in decoded
    assert b"https://example.org/cat.png" in decoded  # non-text parts are left alone


def test_oversized_events_are_dropped_and_counted(redis_url: str) -> None:
    """An event serialising to more than max_event_bytes is dropped as too_large; others pass."""
    settings = TapSettings(flush_interval_s=0.01, max_event_bytes=2_000)
    with Tap(settings, redis_url) as tap:
        tap.emit(make_event("x" * 5_000))
        tap.emit(make_event("small"))
        wait_for(lambda: tap.stats().published == 1)
        assert tap.stats().dropped[DropReason.TOO_LARGE] == 1
    assert [e["request"]["messages"][0]["content"] for e in queued_events(redis_url)] == ["small"]


def test_sampling_per_route(redis_url: str) -> None:
    """Routes sampled at 0.0, 0.5 and 1.0 deliver none, the hashed half, and all of their events."""
    rates = {"none": 0.0, "half": 0.5, "all": 1.0}
    settings = TapSettings(flush_interval_s=0.01, sample_rates=rates, default_sample_rate=0.0)
    sampler = Sampler(0.0, rates)
    sent = {route: [make_event(route=route) for _ in range(1_000)] for route in rates}
    with Tap(settings, redis_url) as tap:
        for events in sent.values():
            for event in events:
                tap.emit(event)
    landed = {e["event_id"] for e in queued_events(redis_url)}
    expected_half = {e.event_id for e in sent["half"] if sampler.keep("half", e.event_id)}
    assert landed == {e.event_id for e in sent["all"]} | expected_half
    assert 400 < len(expected_half) < 600
    assert tap.stats().sampled_out == 2_000 - len(expected_half)


def test_counters_add_up_and_reach_prometheus(redis_url: str) -> None:
    """After close, emitted = sampled_out + dropped + published, and Prometheus saw the same."""

    def metric(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        metric("shadowcanary_tap_events_emitted_total"),
        metric("shadowcanary_tap_events_published_total"),
        metric("shadowcanary_tap_events_dropped_total", reason="closed"),
    )
    tap = Tap(TapSettings(flush_interval_s=0.01), redis_url)
    for i in range(50):
        tap.emit(make_event(f"q{i}"))
    tap.close()
    tap.emit(make_event("late"))  # after close: dropped, counted, no exception
    tap.close()

    stats = tap.stats()
    assert stats.emitted == 51
    assert stats.dropped[DropReason.CLOSED] == 1
    assert stats.emitted == stats.sampled_out + stats.dropped_total + stats.published
    assert metric("shadowcanary_tap_events_emitted_total") - before[0] >= 50
    assert metric("shadowcanary_tap_events_published_total") - before[1] >= 50
    assert REGISTRY.get_sample_value("shadowcanary_tap_publish_seconds_count") is not None
    assert before[2] <= metric("shadowcanary_tap_events_dropped_total", reason="closed")


def test_emit_never_raises_on_garbage() -> None:
    """Passing something that is not a CapturedCall is counted as tap_error, not raised."""
    with Tap(TapSettings(), "redis://127.0.0.1:1/0") as tap:
        tap.emit(object())  # type: ignore[arg-type]
        assert tap.stats().dropped[DropReason.TAP_ERROR] == 1


def test_forked_child_gets_its_own_working_tap(redis_url: str) -> None:
    """After os.fork() (pre-forking servers), the child's emits are published by the child."""
    with Tap(TapSettings(flush_interval_s=0.01), redis_url) as tap:
        tap.emit(make_event("parent"))
        wait_for(lambda: tap.stats().published == 1)
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                tap.emit(make_event("child"))
                tap.close(timeout_s=5)
                stats = tap.stats()
                code = 0 if (stats.emitted, stats.published) == (1, 1) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    contents = sorted(e["request"]["messages"][0]["content"] for e in queued_events(redis_url))
    assert contents == ["child", "parent"]


def test_batches_are_zlib_compressed_the_way_kombu_decodes_them(tap: Tap, redis_url: str) -> None:
    """A batch carries kombu's zlib header and kombu's own Message (as workers do) decodes it."""
    sent = [make_event(f"question {i} from bob@example.com") for i in range(50)]
    for event in sent:
        tap.emit(event)
    wait_for(lambda: len(queued_events(redis_url)) == 50)

    envelope = orjson.loads(queued_raw(redis_url)[0])
    assert envelope["headers"]["compression"] == "application/x-gzip"
    body = base64.b64decode(envelope["body"])
    assert zlib.decompress(body)[:1] == b"["  # plain zlib, any level reads back
    message = Message(
        body=body,
        content_type=envelope["content-type"],
        content_encoding=envelope["content-encoding"],
        headers=envelope["headers"],
    )
    args, _kwargs, _embed = message.decode()
    assert {parse_event(event).event_id for event in args[0]} == {e.event_id for e in sent}
    assert all("bob@example.com" not in orjson.dumps(event).decode() for event in args[0])


def test_one_unserialisable_event_does_not_cost_its_batch(tap: Tap, redis_url: str) -> None:
    """An event that fails to serialise is counted tap_error; the rest of its batch lands."""
    good = [make_event(f"q {i} bob@example.com") for i in range(3)]
    broken = SimpleNamespace(route="default", event_id="broken-event-1")  # passes sampling only
    for event in [good[0], broken, *good[1:]]:
        tap.emit(event)  # type: ignore[arg-type]
    wait_for(lambda: len(queued_events(redis_url)) == 3)
    wait_for(lambda: tap.stats().dropped[DropReason.TAP_ERROR] == 1)
    assert {e["event_id"] for e in queued_events(redis_url)} == {e.event_id for e in good}
    assert all(
        e["request"]["messages"][0]["content"].endswith("[EMAIL]") for e in queued_events(redis_url)
    )


def test_batch_over_the_event_limit_is_written_in_pieces(redis_url: str) -> None:
    """Events are written many per buffer, in pieces under max_event_bytes: a batch far
    larger than the limit arrives whole and once, minus its one oversized and its one
    unwritable event, and still as one Celery message."""
    settings = TapSettings(flush_interval_s=60, batch_size=500, max_event_bytes=3_000)
    small = [make_event(f"question {i} from bob@example.com") for i in range(300)]
    oversized = make_event("x" * 5_000)
    unwritable = make_event("lone surrogate \ud800 here")
    tap = Tap(settings, redis_url)
    for event in [*small[:100], oversized, *small[100:200], unwritable, *small[200:]]:
        tap.emit(event)
    tap.close(timeout_s=10)

    assert len(queued_raw(redis_url)) == 1
    received = [parse_event(event) for event in queued_events(redis_url)]
    assert [e.event_id for e in received] == [e.event_id for e in small]
    assert all(e.request.messages[0].content.endswith("[EMAIL]") for e in received)  # type: ignore[union-attr]
    stats = tap.stats()
    assert (stats.published, stats.dropped[DropReason.TOO_LARGE]) == (300, 1)
    assert stats.dropped[DropReason.TAP_ERROR] == 1
