"""Per-service keys on every endpoint that takes data; upstream keys never leave the gateway."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from shadowcanary.gateway.auth import hash_key
from shadowcanary.launcher.gateway import GatewayHandle, run_gateway
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.testing.poll import wait_until
from tests.gateway.conftest import UPSTREAM_KEY, base_env, set_flag, tapped_events

pytestmark = pytest.mark.integration

CHAT = {"model": "gpt-5.2", "messages": [{"role": "user", "content": "hello"}], "user": "u-1"}
PROTECTED = [
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/v1/responses", {"model": "gpt-5.2", "input": "hi"}),
    ("POST", "/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi"}),
    ("GET", "/v1/models", None),
    ("POST", "/v1/tap/events", []),
]


def test_a_missing_or_wrong_key_is_refused_with_401(gateway: GatewayHandle) -> None:
    """No key, an unknown key or another scheme, on every endpoint: 401 saying why."""
    for method, path, body in PROTECTED:
        for authorization in (None, "Bearer wrong-key", "Basic c2MtZ3c=", "Bearer"):
            headers = {"Authorization": authorization} if authorization is not None else {}
            response = httpx.request(
                method, f"{gateway.root_url}{path}", json=body, headers=headers, timeout=10
            )
            assert response.status_code == 401, (method, path, authorization)
            error = response.json()["error"]
            assert error["code"] in ("missing_api_key", "invalid_api_key")
            assert "key" in error["message"].lower()


def test_the_sdk_sees_an_authentication_error(gateway: GatewayHandle) -> None:
    """The official SDK maps the gateway's 401 to AuthenticationError."""
    client = openai.OpenAI(base_url=gateway.base_url, api_key="not-issued", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(**CHAT)


def test_the_upstream_key_appears_in_no_response_log_line_or_event(
    gateway: GatewayHandle, sim: SimHandle, redis_url: str
) -> None:
    """After ok, streamed, failed and refused calls, the upstream key is nowhere to be seen."""
    seen: list[str] = []
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    with httpx.Client(base_url=gateway.root_url, headers=headers, timeout=30) as client:
        calls = [
            ("/v1/chat/completions", CHAT),
            ("/v1/chat/completions", {**CHAT, "stream": True}),
            ("/v1/responses", {"model": "gpt-5.2", "input": "hi", "stream": True}),
            ("/v1/chat/completions", {**CHAT, "messages": [{"role": "wizard"}]}),  # upstream 400
            ("/v1/chat/completions", {**CHAT, "model": "gpt-unknown"}),  # gateway 404
            ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"}),
        ]
        for path, body in calls:
            response = client.post(path, json=body)
            seen.append(f"{response.status_code} {response.headers} {response.text}")
        seen.append(client.get("/v1/models").text)
        seen.append(client.get("/metrics").text)
    sim.set_profile("gpt-5.2", error_rate=1.0)
    try:
        failing = httpx.post(f"{gateway.base_url}/chat/completions", json=CHAT, headers=headers)
    finally:
        sim.set_profile("gpt-5.2", error_rate=0.0)
    assert failing.status_code == 500
    seen.append(f"{failing.headers} {failing.text}")
    events = wait_until(
        lambda: (found := tapped_events(redis_url)) and len(found) >= 5 and found,
        timeout_s=10,
        what="the calls' events",
    )
    assert all(UPSTREAM_KEY not in text for text in seen)
    assert all(UPSTREAM_KEY not in e.model_dump_json() for e in events)
    assert UPSTREAM_KEY not in gateway.log_text()
    assert gateway.api_key not in gateway.log_text()


def test_an_upstream_that_echoes_the_key_is_scrubbed(
    redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """An upstream error body quoting the key reaches the client with the key redacted."""
    # The simulator echoes an unknown model's name in its 404: make that name the key.
    set_flag(database_url, 0)
    env = base_env(redis_url, database_url, sim)
    models = json.loads(env["SHADOWCANARY_MODELS"])
    models["echo"] = {
        "base_url": sim.base_url,
        "api_key": UPSTREAM_KEY,
        "upstream_model": UPSTREAM_KEY,
    }
    env["SHADOWCANARY_MODELS"] = json.dumps(models)
    with run_gateway(env) as gateway:
        response = httpx.post(
            f"{gateway.base_url}/chat/completions",
            json={**CHAT, "model": "echo"},
            headers={"Authorization": f"Bearer {gateway.api_key}"},
        )
    assert response.status_code == 404
    assert "[redacted]" in response.text
    assert UPSTREAM_KEY not in response.text


def test_a_service_over_its_rate_limit_gets_429_with_retry_after(
    redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """requests_per_minute per key: over it, 429 + Retry-After; other services are unaffected."""
    set_flag(database_url, 0)
    env = base_env(redis_url, database_url, sim)
    env["SHADOWCANARY_GATEWAY__API_KEYS"] = json.dumps(
        {
            "batch-job": {
                "sha256": hash_key("slow-key"),
                "requests_per_minute": 60,
                "rollouts": ["*"],
            },
            "checkout": {"sha256": hash_key("fast-key"), "rollouts": ["*"]},
        }
    )
    with run_gateway(env) as gateway, httpx.Client(base_url=gateway.base_url) as client:
        limited = [
            client.post(
                "/chat/completions", json=CHAT, headers={"Authorization": "Bearer slow-key"}
            )
            for _ in range(3)
        ]
        free = [
            client.post(
                "/chat/completions", json=CHAT, headers={"Authorization": "Bearer fast-key"}
            )
            for _ in range(10)
        ]
    assert limited[0].status_code == 200
    assert [r.status_code for r in limited[1:]] == [429, 429]
    assert int(limited[1].headers["retry-after"]) >= 1
    assert "batch-job" in limited[1].json()["error"]["message"]
    assert all(r.status_code == 200 for r in free)
