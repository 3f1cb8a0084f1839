"""A corpus of bad requests: each gets the right 4xx and a clear message; serving goes on."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowcanary.launcher.gateway import GatewayHandle, run_gateway

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024
CHAT = {"model": "gpt-5.2", "messages": [{"role": "user", "content": "hi"}]}

CC, RESP, EMB = "/v1/chat/completions", "/v1/responses", "/v1/embeddings"


def _chat(**changes: object) -> bytes:
    return json.dumps({**CHAT, **changes}).encode()


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


# (what, method, path, raw body, status, words the error message must contain)
CORPUS = [
    ("malformed JSON", "POST", CC, b'{"model": "gpt-5.2",', 400, "JSON"),
    ("invalid UTF-8", "POST", CC, b'{"model": "\xff\xfe"}', 400, "UTF-8"),
    ("empty body", "POST", CC, b"", 400, "empty"),
    ("array body", "POST", CC, b"[1, 2]", 400, "an array"),
    ("model a number", "POST", CC, _chat(model=5), 400, "'model' must be a string"),
    ("messages a string", "POST", CC, _chat(messages="hi"), 400, "'messages' must be"),
    ("messages empty", "POST", CC, _chat(messages=[]), 400, "empty array"),
    ("message not an object", "POST", CC, _chat(messages=["hi"]), 400, "JSON object"),
    ("stream a string", "POST", CC, _chat(stream="yes"), 400, "'stream' must be"),
    ("input a number", "POST", RESP, _json({"model": "gpt-5.2", "input": 3}), 400, "'input'"),
    ("no input", "POST", EMB, _json({"model": "text-embedding-3-small"}), 400, "'input' is"),
    ("unknown model", "POST", CC, _chat(model="gpt-99"), 404, "not served by this gateway"),
    ("unknown endpoint", "POST", "/v1/completions", _chat(), 404, "Unknown path"),
    ("unknown path", "GET", "/admin", b"", 404, "Unknown path"),
    ("wrong method", "GET", CC, b"", 405, "accepts POST"),
    ("models by POST", "POST", "/v1/models", b"{}", 405, "accepts GET"),
    ("huge body", "POST", CC, b'{"x": "' + b"a" * (4 * LIMIT) + b'"}', 413, "larger than"),
    ("bad event batch", "POST", "/v1/tap/events", b'{"events": 7}', 400, "list of events"),
]


@pytest.fixture
def small_gateway(gateway_env: dict[str, str]) -> Iterator[GatewayHandle]:
    """The gateway with a 64 KiB body limit."""
    with run_gateway({**gateway_env, "SHADOWCANARY_GATEWAY__MAX_BODY_BYTES": str(LIMIT)}) as gw:
        yield gw


def _works(gateway: GatewayHandle) -> bool:
    response = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json={**CHAT, "user": "after-bad-input"},
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=30,
    )
    return response.status_code == 200


def test_each_bad_request_gets_its_4xx_and_a_clear_openai_style_error(
    small_gateway: GatewayHandle,
) -> None:
    """Malformed JSON, wrong types, huge bodies, bad UTF-8, unknown endpoints: the right 4xx."""
    auth = {"Authorization": f"Bearer {small_gateway.api_key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=small_gateway.root_url, timeout=30) as client:
        for what, method, path, body, status, words in CORPUS:
            response = client.request(method, path, content=body, headers=auth)
            assert response.status_code == status, (what, response.text)
            error = response.json()["error"]
            assert words in error["message"], (what, error["message"])
            assert error["type"] == "invalid_request_error", what
    assert _works(small_gateway)


def test_a_huge_body_without_content_length_is_refused_while_streaming_in(
    small_gateway: GatewayHandle,
) -> None:
    """A chunked upload over the limit: 413 as soon as the limit is crossed."""

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "gpt-5.2", "pad": "'
        for _ in range(64):
            yield b"a" * 8192
        yield b'"}'

    response = httpx.post(
        f"{small_gateway.base_url}/chat/completions",
        content=chunks(),
        headers={"Authorization": f"Bearer {small_gateway.api_key}"},
        timeout=30,
    )
    assert response.status_code == 413
    assert _works(small_gateway)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False)
            | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=10), inner, max_size=4)
            ),
            max_leaves=10,
        ).map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {"model": st.sampled_from(["gpt-5.2", "text-embedding-3-small", 3, None])},
            optional={
                "messages": st.one_of(st.text(max_size=5), st.lists(st.integers(), max_size=2)),
                "input": st.one_of(st.integers(), st.none()),
                "stream": st.one_of(st.integers(), st.text(max_size=3)),
            },
        ).map(lambda v: json.dumps(v).encode()),
    ),
    path=st.sampled_from(
        ["/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/tap/events"]
    ),
)
def test_fuzzed_bodies_never_get_a_5xx(
    small_gateway: GatewayHandle, body: bytes, path: str
) -> None:
    """Whatever the body, the answer is a JSON 2xx/4xx (never a 5xx or a dropped connection)."""
    response = httpx.post(
        f"{small_gateway.root_url}{path}",
        content=body,
        headers={"Authorization": f"Bearer {small_gateway.api_key}"},
        timeout=30,
    )
    assert response.status_code < 500, response.text
    assert isinstance(response.json(), dict | list)
