"""Malformed and hostile requests to a real gateway: a clear error, or served as data.

The fuzz (test_gateway_fuzz.py) proves no request gets an internal error; this corpus
pins what each known-bad request is told, and that hostile text in prompts is passed
along as data (the caller gets the model's answer, the capture keeps the text).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from shadowcanary.launcher.gateway import GatewayHandle
from tests.corpus.hostile_events import PROMPT_INJECTIONS, good_event

pytestmark = pytest.mark.integration

CHAT = "/v1/chat/completions"


def _chat(content: Any = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-5.2", "messages": [{"role": "user", "content": content}], **extra}


REJECTED = [
    pytest.param(CHAT, b"", 400, "body is empty", id="empty-body"),
    pytest.param(CHAT, b"{not json", 400, "not valid JSON", id="not-json"),
    pytest.param(CHAT, b'{"model": "gpt-5.2\xff\xfe"}', 400, "not valid UTF-8", id="invalid-utf8"),
    pytest.param(CHAT, b"[" * 5000 + b"]" * 5000, 400, "not valid JSON", id="deep-nesting"),
    pytest.param(CHAT, b'{"model": NaN}', 400, "not valid JSON", id="nan-literal"),
    pytest.param(CHAT, json.dumps([1, 2]).encode(), 400, "must be a JSON object", id="array-body"),
    pytest.param(
        CHAT, json.dumps({"messages": []}).encode(), 400, "'model' must be a string", id="no-model"
    ),
    pytest.param(
        CHAT,
        json.dumps(_chat() | {"messages": []}).encode(),
        400,
        "non-empty array",
        id="no-messages",
    ),
    pytest.param(
        CHAT,
        json.dumps(_chat() | {"messages": ["hi"]}).encode(),
        400,
        "JSON object",
        id="message-not-object",
    ),
    pytest.param(
        CHAT,
        json.dumps(_chat(stream="yes")).encode(),
        400,
        "'stream' must be true or false",
        id="stream-not-bool",
    ),
    pytest.param(
        "/v1/embeddings",
        json.dumps({"model": "gpt-5.2"}).encode(),
        400,
        "'input' is required",
        id="embeddings-no-input",
    ),
    pytest.param(
        "/v1/tap/events",
        json.dumps({"event": {}}).encode(),
        400,
        "JSON list of events",
        id="ingest-not-a-batch",
    ),
    pytest.param(
        "/v1/tap/events",
        json.dumps([{}] * 5001).encode(),
        413,
        "at most 5000 events",
        id="ingest-batch-too-large",
    ),
    pytest.param("/v1/admin", b"{}", 404, "Unknown path", id="unknown-path"),
    pytest.param("/v1/../../etc/passwd", b"{}", 404, "Unknown path", id="path-traversal"),
]


@pytest.mark.parametrize(("path", "body", "status", "fragment"), REJECTED)
def test_bad_requests_get_a_clear_error(
    gateway: GatewayHandle, path: str, body: bytes, status: int, fragment: str
) -> None:
    """Each bad request: its status and an OpenAI-style error that says what is wrong."""
    response = httpx.post(
        f"{gateway.root_url}{path}",
        content=body,
        headers={"Authorization": f"Bearer {gateway.api_key}", "content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == status, response.text[:500]
    assert fragment in response.json()["error"]["message"], response.text[:500]


def test_an_oversized_body_is_413_before_it_is_read(gateway: GatewayHandle) -> None:
    """A body over the limit is refused with the limit and how to get under it."""
    big = json.dumps(_chat("x" * (9 * 1024 * 1024))).encode()
    response = httpx.post(
        f"{gateway.base_url}/chat/completions",
        content=big,
        headers={"Authorization": f"Bearer {gateway.api_key}", "content-type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413
    assert "limit of" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "content",
    [
        *PROMPT_INJECTIONS,
        "NUL \x00 in the middle",
        "👩‍💻 \u202egnp.exe zero\u200bwidth",
        [{"type": "text", "text": PROMPT_INJECTIONS[1]}],
    ],
)
def test_hostile_prompts_are_served_as_data(gateway: GatewayHandle, content: Any) -> None:
    """Injection strings, NUL and odd Unicode reach the model and come back as an answer."""
    response = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json=_chat(content, max_tokens=30),
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text[:500]
    assert response.json()["choices"][0]["message"]["content"]


def test_ingest_reports_each_bad_event_by_index(gateway: GatewayHandle) -> None:
    """A batch mixing good and bad events: good ones taken, each bad one named with its field."""
    good = good_event(tenant="test-service")
    batch = [good, "nope", good_event(tenant="test-service") | {"latency_ms": "fast"}, {}]
    response = httpx.post(
        f"{gateway.base_url}/tap/events",
        json=batch,
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=30,
    )
    assert response.status_code == 207, response.text
    answer = response.json()
    assert answer["accepted"] == 1
    errors = {r["index"]: r["error"] for r in answer["rejected"]}
    assert set(errors) == {1, 2, 3}
    assert "JSON object" in errors[1]
    assert "latency_ms" in errors[2]
    assert "event_id" in errors[3] and "Field required" in errors[3]
