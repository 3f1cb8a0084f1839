"""The gateway's pure parts: SSE splitting, breaker, rate limit, Responses mapping, paths."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowcanary.errors import ConfigError
from shadowcanary.gateway.auth import KeyRing, hash_key
from shadowcanary.gateway.breaker import BreakerState, CircuitBreaker
from shadowcanary.gateway.capture import (
    ResponsesStreamAssembly,
    SSEDecoder,
    responses_request,
    responses_response,
)
from shadowcanary.gateway.http import Rejection
from shadowcanary.gateway.routing import route_from_path, routed_path
from shadowcanary.settings import GatewayKey, load_settings

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
        {"svc": GatewayKey(sha256=hash_key("k"), requests_per_minute=60, rollouts=["*"])},
        processes=2,
        clock=clock,
    )
    assert ring.service_for(b"Bearer k", None) == "svc"
    with pytest.raises(Rejection) as refused:
        ring.service_for(b"Bearer k", None)
    assert refused.value.status == 429
    assert dict(refused.value.headers)[b"retry-after"] == b"2"
    clock.now += 2
    assert ring.service_for(None, b"k") == "svc"  # Azure-style api-key header


def _keys_env(key: dict[str, object]) -> dict[str, str]:
    return {"SHADOWCANARY_GATEWAY__API_KEYS": json.dumps({"checkout": key})}


@pytest.mark.parametrize(
    ("rollouts", "error"),
    [
        (None, 'add "rollouts": ["<rollout>", ...]'),
        (["*", "search-gpt55"], '"*" already allows every rollout'),
        (["search gpt55"], "'search gpt55' is not a rollout name"),
        ("search-gpt55", "valid list"),
    ],
)
def test_a_key_must_state_its_rollouts(rollouts: object, error: str) -> None:
    """A key without "rollouts", or with a bad one, is refused at load, naming the service."""
    key: dict[str, object] = {"sha256": hash_key("k")}
    if rollouts is not None:
        key["rollouts"] = rollouts
    with pytest.raises(ConfigError) as refused:
        load_settings(_keys_env(key))
    assert "SHADOWCANARY_GATEWAY__API_KEYS__CHECKOUT" in str(refused.value)
    assert error in str(refused.value)


def test_a_key_reports_only_for_its_rollouts() -> None:
    """Bound names, "*" for any, [] for none; traffic outside any rollout is always allowed."""
    ring = KeyRing(
        {
            name: GatewayKey(sha256=hash_key(name), rollouts=rollouts)
            for name, rollouts in (("own", ["a", "b"]), ("any", ["*"]), ("none", []))
        }
    )
    assert [ring.may_report_for("own", r) for r in ("a", "b", "c", None)] == [1, 1, 0, 1]
    assert ring.may_report_for("any", "c") and ring.may_report_for("none", None)
    assert not ring.may_report_for("none", "a")
    with pytest.raises(Rejection) as refused:
        ring.check_events("own", [(0, "a"), (1, "c"), (2, None), (3, "c"), (4, "d")])
    assert refused.value.status == 403
    assert refused.value.message.startswith(
        "Service 'own' may not report for rollout 'c' (and 1 other rollout(s)) "
        "(events at index 1, 3): this key may report only for rollout(s) 'a', 'b'."
    )
    with pytest.raises(Rejection, match="may report only for traffic outside any rollout"):
        ring.check_route("none", "search", "a")


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


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/v1/chat/completions", "/v1/chat/completions"),
        (b"/r/search/v1/responses", "/r/search/v1/responses"),
        (b"/v1/models/meta%2Fllama%203", "/v1/models/meta/llama 3"),
        (b"/r/search/v1/models/a%3Ab", "/r/search/v1/models/a:b"),
        (b"/v1/chat%2Fcompletions", None),
        (b"/%76%31/chat/completions", None),
        (b"/%76%31/models/x%2Fy", None),
        (b"/r/se%61rch/v1/models/x", None),
        (b"/v1/chat/completions/v1/models/%2F", None),
        (b"/v1/models\xff", None),
    ],
)
def test_routed_path_is_the_raw_path(raw: bytes, expected: str | None) -> None:
    """Routing sees the path as sent; encoded characters only in a model id, else 400."""
    if expected is not None:
        assert routed_path(raw) == expected
        return
    with pytest.raises(Rejection) as refused:
        routed_path(raw)
    assert (refused.value.status, refused.value.code) == (400, "encoded_path")
