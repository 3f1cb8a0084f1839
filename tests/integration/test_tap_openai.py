"""The OpenAI wrapper against a real local HTTP server speaking the OpenAI wire format.

The server replies with scripted JSON or SSE and records the exact bytes it sent, so
the tests compare what the caller saw chunk by chunk with what upstream sent, and the
event that landed in (real) Redis with the reassembled answer.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest
import redis

from shadowcanary import constants
from shadowcanary.events import Arm, CallStatus, hash_stickiness_key, parse_event
from shadowcanary.settings import TapSettings
from shadowcanary.tap.emitter import DropReason, Tap
from shadowcanary.tap.openai_wrapper import tap_openai
from shadowcanary.tap.publisher import decode_ingest_message

pytestmark = pytest.mark.integration

SALT = "test-salt"


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | None = None
    chunks: list[dict[str, Any]] | None = None  # SSE when set
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class Upstream:
    """A tiny OpenAI-compatible server: scripted replies, records requests and bytes sent."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        self.sent: list[bytes] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                upstream.requests.append(json.loads(body))
                reply = upstream.replies.pop(0)
                time.sleep(reply.delay_s)
                if reply.chunks is None:
                    payload = json.dumps(reply.body or {}).encode()
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                    upstream.sent.append(payload)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                raw = b""
                try:
                    for chunk in reply.chunks:
                        frame = b"data: " + json.dumps(chunk).encode() + b"\n\n"
                        self.wfile.write(frame)
                        self.wfile.flush()
                        raw += frame
                    self.wfile.write(b"data: [DONE]\n\n")
                    raw += b"data: [DONE]\n\n"
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client closed the stream early
                upstream.sent.append(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


@pytest.fixture
def tap(redis_url: str) -> Iterator[Tap]:
    with Tap(TapSettings(flush_interval_s=0.01), redis_url) as tap:
        yield tap


def landed(tap: Tap, redis_url: str, expected: int = 1) -> list[Any]:
    """Close the tap (flushing it) and return the events that reached Redis."""
    tap.close()
    client = redis.Redis.from_url(redis_url)
    raw = client.lrange(constants.QUEUE_INGEST, 0, -1)
    client.close()
    events = [parse_event(e) for r in raw for e in decode_ingest_message(r)]
    assert len(events) == expected, tap.stats()
    return events


def completion(text: str = "Paris.", **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    message.update(extra)
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-5.2",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    head = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": "gpt-5.2"}
    return {**head, "choices": choices, **extra}


STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "The capital "}),
    chunk({"content": "of France "}),
    chunk({"content": "is Paris."}),
    chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"city": '},
                }
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
    chunk({}, finish="tool_calls"),
    chunk(None, usage={"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}),
]
STREAM_TEXT = "The capital of France is Paris."


def sse_objects(raw: bytes) -> list[dict[str, Any]]:
    frames = [f for f in raw.split(b"\n\n") if f.startswith(b"data: ") and f != b"data: [DONE]"]
    return [json.loads(f[len(b"data: ") :]) for f in frames]


def sync_client(upstream: Upstream, tap: Tap, timeout: float = 5, **options: Any) -> openai.OpenAI:
    client = openai.OpenAI(base_url=upstream.base_url, api_key="k", max_retries=0, timeout=timeout)
    return tap_openai(client, tap, route="chat", stickiness_salt=SALT, **options)


def async_client(upstream: Upstream, tap: Tap, **options: Any) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(base_url=upstream.base_url, api_key="k", max_retries=0, timeout=5)
    return tap_openai(client, tap, route="chat", stickiness_salt=SALT, **options)


MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [
        {"type": "text", "text": "What is the capital of France?"},
        {"type": "image_url", "image_url": {"url": "https://example.org/map.png"}},
    ]},
]  # fmt: skip
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [
    {"type": "function", "function": {"name": "lookup", "description": "Find", "parameters": CITY}}
]


def test_sync_call_is_captured_and_returned_unchanged(
    upstream: Upstream, tap: Tap, redis_url: str
) -> None:
    """A non-streamed call returns the SDK's ChatCompletion and emits the request and answer."""
    upstream.replies.append(Reply(body=completion()))
    client = sync_client(upstream, tap, rollout="gpt-5.5-migration")
    result = client.chat.completions.create(
        model="gpt-5.2", messages=MESSAGES, tools=TOOLS, temperature=0.1, user="alice"
    )
    assert isinstance(client, openai.OpenAI)
    assert result.choices[0].message.content == "Paris."
    assert upstream.requests[0]["user"] == "alice"  # the request itself is untouched

    (event,) = landed(tap, redis_url)
    assert (event.status, event.route, event.rollout, event.arm) == (
        CallStatus.OK,
        "chat",
        "gpt-5.5-migration",
        Arm.BASELINE,
    )
    assert event.model == "gpt-5.2"
    assert event.request.messages[1].content[0].text == "What is the capital of France?"  # type: ignore[index,union-attr]
    assert event.request.messages[1].content[1].image_url == {"url": "https://example.org/map.png"}  # type: ignore[index,union-attr]
    assert event.request.tools[0].name == "lookup"
    assert event.request.parameters == {"temperature": 0.1}
    assert "alice" not in event.model_dump_json()
    assert event.stickiness_key == hash_stickiness_key("alice", SALT)
    assert event.response is not None and event.response.text == "Paris."
    assert event.response.finish_reason == "stop"
    assert (event.prompt_tokens, event.completion_tokens) == (12, 3)
    assert event.latency_ms > 0 and event.ttft_ms is None


def test_sync_stream_passes_chunks_through_and_is_reassembled(
    upstream: Upstream, tap: Tap, redis_url: str
) -> None:
    """The caller sees the upstream chunks in order; the event has text, tool call, usage, TTFT."""
    upstream.replies.append(Reply(chunks=STREAM))
    client = sync_client(upstream, tap)
    stream = client.chat.completions.create(
        model="gpt-5.2", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.Stream)
    with stream:
        seen = list(stream)

    sent = sse_objects(upstream.sent[0])
    assert [c.model_dump(mode="json", exclude_unset=True) for c in seen] == sent
    assert "".join(c.choices[0].delta.content or "" for c in seen if c.choices) == STREAM_TEXT

    (event,) = landed(tap, redis_url)
    assert event.status is CallStatus.OK
    assert event.response is not None and event.response.text == STREAM_TEXT
    assert [(t.id, t.name, t.arguments) for t in event.response.tool_calls] == [
        ("call_1", "lookup", '{"city": "Paris"}')
    ]
    assert event.response.finish_reason == "tool_calls"
    assert (event.prompt_tokens, event.completion_tokens) == (20, 9)
    assert event.ttft_ms is not None and 0 < event.ttft_ms <= event.latency_ms
    assert "stream" not in event.request.parameters


def test_sync_stream_closed_early_is_cancelled(
    upstream: Upstream, tap: Tap, redis_url: str
) -> None:
    """Leaving a stream after two chunks emits a cancelled event with the partial text."""
    upstream.replies.append(Reply(chunks=STREAM))
    client = sync_client(upstream, tap)
    with client.chat.completions.create(model="gpt-5.2", messages=MESSAGES, stream=True) as stream:
        first = [next(stream), next(stream)]
    assert first[1].choices[0].delta.content == "The capital "

    (event,) = landed(tap, redis_url)
    assert event.status is CallStatus.CANCELLED
    assert event.response is not None and event.response.text == "The capital "


def test_async_calls_are_captured(upstream: Upstream, tap: Tap, redis_url: str) -> None:
    """AsyncOpenAI: non-streamed and streamed calls are captured, chunks pass through unchanged."""
    upstream.replies.append(Reply(body=completion("Berlin.")))
    upstream.replies.append(Reply(chunks=STREAM))
    client = async_client(upstream, tap)

    async def run() -> list[Any]:
        result = await client.chat.completions.create(model="gpt-5.2", messages=MESSAGES)
        assert result.choices[0].message.content == "Berlin."
        stream = await client.chat.completions.create(
            model="gpt-5.2", messages=MESSAGES, stream=True
        )
        assert isinstance(stream, openai.AsyncStream)
        async with stream:
            return [c async for c in stream]

    seen = asyncio.run(run())
    assert [c.model_dump(mode="json", exclude_unset=True) for c in seen] == sse_objects(
        upstream.sent[1]
    )

    events = sorted(landed(tap, redis_url, expected=2), key=lambda e: e.started_at)
    assert [e.response.text for e in events if e.response] == ["Berlin.", STREAM_TEXT]
    assert all(e.status is CallStatus.OK for e in events)


def test_async_stream_closed_early_is_cancelled(
    upstream: Upstream, tap: Tap, redis_url: str
) -> None:
    """An async stream closed after one content chunk emits a cancelled event."""
    upstream.replies.append(Reply(chunks=STREAM))
    client = async_client(upstream, tap)

    async def run() -> None:
        stream = await client.chat.completions.create(
            model="gpt-5.2", messages=MESSAGES, stream=True
        )
        async with stream:
            await stream.__anext__()
            await stream.__anext__()

    asyncio.run(run())
    (event,) = landed(tap, redis_url)
    assert event.status is CallStatus.CANCELLED
    assert event.response is not None and event.response.text == "The capital "


@pytest.mark.parametrize(
    ("reply", "error", "status", "http_status"),
    [
        (Reply(429, {"error": {}}), openai.RateLimitError, CallStatus.RATE_LIMITED, 429),
        (Reply(500, {"error": {}}), openai.InternalServerError, CallStatus.ERROR, 500),
        (Reply(400, {"error": {}}), openai.BadRequestError, CallStatus.ERROR, 400),
        (Reply(body=completion(), delay_s=1.0), openai.APITimeoutError, CallStatus.TIMEOUT, None),
    ],
)
def test_errors_are_reraised_and_captured(
    upstream: Upstream,
    tap: Tap,
    redis_url: str,
    reply: Reply,
    error: type[Exception],
    status: CallStatus,
    http_status: int | None,
) -> None:
    """API errors reach the caller unchanged and are recorded with their status class."""
    upstream.replies.append(reply)
    client = sync_client(upstream, tap, timeout=0.3)
    with pytest.raises(error):
        client.chat.completions.create(model="gpt-5.2", messages=MESSAGES)
    (event,) = landed(tap, redis_url)
    assert (event.status, event.http_status, event.error_class) == (
        status,
        http_status,
        error.__name__,
    )
    assert event.response is None


def test_async_error_is_reraised_and_captured(upstream: Upstream, tap: Tap, redis_url: str) -> None:
    """AsyncOpenAI: a 429 reaches the caller and is recorded as rate_limited."""
    upstream.replies.append(Reply(status=429, body={"error": {"message": "slow down"}}))
    client = async_client(upstream, tap)
    with pytest.raises(openai.RateLimitError):
        asyncio.run(client.chat.completions.create(model="gpt-5.2", messages=MESSAGES))
    (event,) = landed(tap, redis_url)
    assert (event.status, event.http_status) == (CallStatus.RATE_LIMITED, 429)


def test_tap_failures_never_reach_the_caller(upstream: Upstream, tap: Tap, redis_url: str) -> None:
    """A failure inside the tap (the stickiness hook) is counted tap_error; the call succeeds."""
    upstream.replies.append(Reply(body=completion()))

    def broken(_kwargs: Any) -> str:
        raise RuntimeError("hook bug")

    client = sync_client(upstream, tap, stickiness_from=broken)
    result = client.chat.completions.create(model="gpt-5.2", messages=MESSAGES)
    assert result.choices[0].message.content == "Paris."
    assert tap.stats().dropped[DropReason.TAP_ERROR] == 1
    landed(tap, redis_url, expected=0)


def test_model_router_hook_picks_the_model(upstream: Upstream, tap: Tap, redis_url: str) -> None:
    """The router gets the hashed stickiness key; its model is called and recorded as candidate."""
    upstream.replies.append(Reply(body=completion()))
    keys: list[str | None] = []

    def router(key: str | None) -> str:
        keys.append(key)
        return "gpt-5.5"

    client = sync_client(
        upstream,
        tap,
        model_router=router,
        stickiness_from=lambda kw: kw["metadata"]["conversation"],
    )
    client.chat.completions.create(
        model="gpt-5.2", messages=MESSAGES, metadata={"conversation": "c-42"}
    )
    assert upstream.requests[0]["model"] == "gpt-5.5"
    assert keys == [hash_stickiness_key("c-42", SALT)]
    (event,) = landed(tap, redis_url)
    assert (event.model, event.arm, event.stickiness_key) == ("gpt-5.5", Arm.CANDIDATE, keys[0])


def test_other_client_features_keep_working(upstream: Upstream, tap: Tap, redis_url: str) -> None:
    """Raw-response access still works on a tapped client, and tapping twice is refused."""
    upstream.replies.append(Reply(body=completion(), headers={"x-request-id": "req-1"}))
    client = sync_client(upstream, tap)
    raw = client.chat.completions.with_raw_response.create(model="gpt-5.2", messages=MESSAGES)
    assert raw.headers["x-request-id"] == "req-1"
    assert raw.parse().choices[0].message.content == "Paris."
    with pytest.raises(Exception, match="already tapped"):
        tap_openai(client, tap)
    landed(tap, redis_url, expected=0)
