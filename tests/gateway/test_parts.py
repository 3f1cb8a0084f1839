"""The gateway's pure parts: SSE splitting, breaker, rate limit, Responses mapping, paths."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowcanary.gateway.auth import KeyRing, hash_key
from shadowcanary.gateway.breaker import BreakerState, CircuitBreaker
from shadowcanary.gateway.capture import (
    ResponsesStreamAssembly,
    SSEDecoder,
    responses_request,
    responses_response,
)
from shadowcanary.gateway.http import Rejection
from shadowcanary.gateway.routing import route_from_path
from shadowcanary.settings import GatewayKey

EVENTS = [{"i": i, "text": "a\nb" * i} for i in range(6)]
STREAM = (
    b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in EVENTS) + b"data: [DONE]\n\n"
)


@given(cuts=st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_sse_events_are_found_however_the_bytes_are_cut(cuts: list[int]) -> None:
    """Any split of the byte stream yields the same JSON events, [DONE] skipped."""
    decoder = SSEDecoder()
    bounds = [0, *sorted(cuts), len(STREAM)]
    found = [e for a, b in itertools.pairwise(bounds) for e in decoder.feed(STREAM[a:b])]
    assert found == EVENTS


def test_sse_accepts_crlf_line_ends() -> None:
    """CRLF-separated events decode like LF ones."""
    assert SSEDecoder().feed(b'data: {"a": 1}\r\n\r\ndata: {"a": 2}\r\n\r\n') == [
        {"a": 1},
        {"a": 2},
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_probes_once() -> None:
    """closed -> open after N failures -> half-open after open_s: one probe decides."""
    clock = Clock()
    breaker = CircuitBreaker("m", failures=3, open_s=10, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    breaker.record_success()  # resets the count: failures must be consecutive
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    assert breaker.retry_after_s() == pytest.approx(10)
    clock.now += 10
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 10
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()


def test_rate_limit_allows_the_rate_and_says_when_to_retry() -> None:
    """60/min over 2 processes: 0.5/s each; the second call waits about 2 s."""
    clock = Clock()
    ring = KeyRing(
        {"svc": GatewayKey(sha256=hash_key("k"), requests_per_minute=60)}, processes=2, clock=clock
    )
    assert ring.service_for(b"Bearer k", None) == "svc"
    with pytest.raises(Rejection) as refused:
        ring.service_for(b"Bearer k", None)
    assert refused.value.status == 429
    assert dict(refused.value.headers)[b"retry-after"] == b"2"
    clock.now += 2
    assert ring.service_for(None, b"k") == "svc"  # Azure-style api-key header


def test_responses_requests_are_kept_as_sent_with_a_chat_view() -> None:
    """The body (instructions, input items, tools, text.format) is kept as sent for the
    replay; its chat view has the messages and function tools for the scorers."""
    body = {
        "model": "gpt-5.2",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "get_weather",
                "arguments": "{}",
            },
            {"type": "function_call_output", "call_id": "c1", "output": {"t": 20}},
        ],
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
        "max_output_tokens": 50,
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}},
        "stream": True,
        "user": "someone@example.com",
    }
    request = responses_request(body)
    assert request.api == "responses"
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "tool"]
    assert request.messages[2].tool_calls[0].name == "get_weather"
    assert request.messages[3].content == '{"t":20}'
    assert request.tools[0].name == "get_weather"
    # Everything but the model, the streaming choice and the caller's identity.
    assert request.parameters == {
        k: v for k, v in body.items() if k not in ("model", "stream", "user")
    }
    answer, usage = responses_response(
        {
            "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "output": [{"type": "message", "content": [{"type": "output_text", "text": "Sun"}]}],
            "usage": {"input_tokens": 7, "output_tokens": 50},
        }
    )
    assert (answer.text, answer.finish_reason, usage.completion_tokens) == ("Sun", "length", 50)


def test_a_cut_responses_stream_keeps_its_text() -> None:
    """Without response.completed, the deltas so far are the answer."""
    assembly = ResponsesStreamAssembly()
    assembly.add({"type": "response.output_text.delta", "delta": "Hel"}, 1.0)
    assembly.add({"type": "response.output_text.delta", "delta": "lo"}, 2.0)
    answer, _ = assembly.result()
    assert (answer.text, assembly.first_content_at) == ("Hello", 1.0)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/chat/completions", ("default", "/v1/chat/completions")),
        ("/r/search/v1/responses", ("search", "/v1/responses")),
        ("/r//v1/models", ("default", "/r//v1/models")),
        ("/r/x", ("default", "/r/x")),
    ],
)
def test_route_prefix(path: str, expected: tuple[str, str]) -> None:
    """/r/<route>/ names a route; anything else is the default route."""
    assert route_from_path(path, "default") == expected
