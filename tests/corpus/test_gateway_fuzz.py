"""Fuzzing the gateway's HTTP surface (hypothesis) against a real gateway process.

Each example is one real HTTP request: any method, a known path or a mangled one,
good/bad/missing credentials, and a body that is random bytes, any JSON document or a
valid request with one field replaced by a hostile value (NaN, huge numbers, lone
surrogates escaped in JSON, NUL, deep nesting, wrong types). Properties:

- the gateway never answers 500 (an internal error is a bug; the simulator behind
  it is fault-free, so upstream failures cannot be the cause);
- every error is an OpenAI-style ``{"error": {"message": ...}}`` with a message;
- ``/v1/tap/events`` and ``/v1/tap/outcomes`` never accept what their contract rejects
  (a 200/207 says exactly which indexes were rejected);
- the gateway keeps serving: still ready afterwards, and its log has no internal error.

No schemathesis: the gateway publishes no OpenAPI document to drive it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowcanary.launcher.gateway import GatewayHandle
from tests.corpus.hostile_events import good_event

pytestmark = pytest.mark.integration

PATHS = [
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/embeddings",
    "/v1/models",
    "/v1/models/gpt-5.2",
    "/v1/tap/events",
    "/v1/tap/outcomes",
    "/r/default/v1/chat/completions",
    "/r/no-such-route/v1/chat/completions",
    "/r//v1/tap/events",
    "/v1/../admin",
    "/v1/chat/completions/../../metrics",
    "/v1/models/%00",
    "/healthz",
]

hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(["\x00", "gpt-5.2", "gpt-5.5", "", "../../etc/passwd", "' OR 1=1 --"]),
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=15,
)


def _valid_body(path: str) -> Any:
    if path.endswith("/tap/events"):
        return [good_event(tenant="test-service")]  # the test key's service
    if path.endswith("/tap/outcomes"):
        return [{"event_id": "gw0123456789", "task": "abandoned", "feedback": "down"}]
    if path.endswith("/embeddings") or path.endswith("/responses"):
        return {"model": "gpt-5.2", "input": "hello"}
    return {
        "model": "gpt-5.2",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 20,
    }


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def bodies(draw: st.DrawFn, path: str) -> bytes:
    """Random bytes, any JSON, a deep document, or a valid body with one field replaced."""
    kind = draw(st.sampled_from(["bytes", "json", "deep", "mutated", "mutated", "mutated"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(hostile_values)).encode()
    if kind == "deep":
        depth = draw(st.integers(min_value=100, max_value=3000))
        return ("[" * depth + "]" * depth).encode()
    body = _valid_body(path)
    target = draw(st.sampled_from(_paths(body)))
    node: Any = body
    for part in target[:-1]:
        node = node[part]
    if draw(st.booleans()) and isinstance(node, dict):
        del node[target[-1]]
    else:
        node[target[-1]] = copy.deepcopy(draw(hostile_values))
    # Python's encoder writes NaN/Infinity and escapes lone surrogates: both hostile on the wire.
    return json.dumps(body).encode()


@st.composite
def requests(draw: st.DrawFn, key: str) -> tuple[str, str, dict[str, str], bytes]:
    path = draw(st.sampled_from(PATHS))
    method = draw(st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH"]))
    auth = draw(
        st.sampled_from(
            [
                {"Authorization": f"Bearer {key}"},
                {"Authorization": f"Bearer {key}"},
                {"api-key": key},
                {"Authorization": "Bearer nope"},
                {},
            ]
        )
    )
    headers = {**auth, "content-type": draw(st.sampled_from(["application/json", "text/plain"]))}
    if draw(st.booleans()):
        headers["x-shadowcanary-route"] = draw(st.sampled_from(["default", "nope", "a" * 300]))
    if draw(st.booleans()):
        # Any byte an HTTP client can send in a header value (obs-text included).
        raw = draw(st.binary(min_size=1, max_size=40))
        user = bytes(b for b in raw if b >= 0x20 and b != 0x7F).strip()
        if user:
            headers["x-user-id"] = user  # type: ignore[assignment]
    return method, path, headers, draw(bodies(path))


def _check_answer(path: str, body: bytes, response: httpx.Response) -> None:
    assert response.status_code != 500, f"{path}: {response.text[:500]}"
    is_json = response.headers.get("content-type", "").startswith("application/json")
    batch = path.endswith(("/tap/events", "/tap/outcomes"))
    if batch and response.status_code in (200, 207, 422) and is_json:
        answer = response.json()
        if "accepted" in answer:  # a batch answer: which events were taken, and why not
            _check_batch(body, answer, "outcomes" if path.endswith("/outcomes") else "events")
            return
    if response.status_code >= 400 and is_json:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["message"], error


def _check_batch(body: bytes, answer: dict[str, Any], key: str) -> None:
    sent = json.loads(body)
    events = sent.get(key) if isinstance(sent, dict) else sent
    rejected = {r["index"] for r in answer["rejected"]}
    assert answer["accepted"] + len(rejected) == len(events)
    assert all(r["error"] for r in answer["rejected"])


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_request_gets_an_answer_never_an_internal_error(
    gateway: GatewayHandle, data: st.DataObject
) -> None:
    """Fuzz: one real HTTP request per example; no 500, errors in OpenAI shape."""
    with httpx.Client(base_url=gateway.root_url, timeout=30) as client:
        method, path, headers, body = data.draw(requests(gateway.api_key))
        response = client.request(method, path, headers=headers, content=body)
        _check_answer(path, body, response)


def test_the_gateway_still_serves_after_the_fuzzing(gateway: GatewayHandle) -> None:
    """After everything above: ready, a normal call works, no internal error was logged."""
    assert httpx.get(f"{gateway.root_url}/readyz", timeout=10).status_code == 200
    response = httpx.post(
        f"{gateway.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        json=_valid_body("/v1/chat/completions"),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert "gateway_internal_error" not in gateway.log_text()
