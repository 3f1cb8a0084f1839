"""The gateway keeps both kinds of keys to themselves.

A service's gateway key never goes upstream, and the model provider's API key never
comes back: an upstream that echoes the Authorization header in its error body (as
some providers do, whole or in part) is scrubbed before the client sees the answer,
and neither key appears in the gateway's log.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from shadowcanary.launcher.gateway import run_gateway
from shadowcanary.testing.servers import RedisServer
from tests.security.recorder import Answer, recording_server

pytestmark = pytest.mark.integration

MODEL_KEY = "sk-proj-upstream-S3cr3t-8841"


def _echo_the_key(status: int) -> Answer:
    """An upstream error whose message quotes the key it was sent."""

    def answer(request: BaseHTTPRequestHandler) -> tuple[int, str, bytes]:
        return status, "application/json", _error_body(request.headers.get("authorization", ""))

    return answer


def _error_body(presented: str) -> bytes:
    body = {
        "error": {
            "message": f"Incorrect API key provided: {presented}. You passed {presented!r}.",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("upstream_status", "client_status", "fragment"),
    [
        (400, 400, "Incorrect API key provided"),  # the provider's own error, passed through
        (401, 502, "were refused upstream"),  # the gateway's words: the operator must act
    ],
)
def test_upstream_key_is_scrubbed_and_the_gateway_key_stays_home(
    redis_server: RedisServer, upstream_status: int, client_status: int, fragment: str
) -> None:
    """The upstream sees only the model key; the client never sees it; logs hold neither."""
    with recording_server(_echo_the_key(upstream_status)) as upstream:
        models = {
            "gpt-5.2": {"base_url": upstream.url("/v1"), "api_key": MODEL_KEY},
            "gpt-5.5": {"base_url": upstream.url("/v1"), "api_key": MODEL_KEY},
        }
        env = {
            "SHADOWCANARY_REDIS_URL": redis_server.url,
            "SHADOWCANARY_MODELS": json.dumps(models),
            "SHADOWCANARY_LOG_LEVEL": "debug",
        }
        with run_gateway(env) as gateway:
            for stream in (False, True):
                response = httpx.post(
                    f"{gateway.base_url}/chat/completions",
                    json={
                        "model": "gpt-5.2",
                        "stream": stream,
                        "messages": [{"role": "user", "content": "hello"}],
                    },
                    headers={"Authorization": f"Bearer {gateway.api_key}", "x-user-id": "u-1"},
                    timeout=30,
                )
                assert response.status_code == client_status, response.text
                assert fragment in response.text
                assert MODEL_KEY not in response.text
                assert gateway.api_key not in response.text
            log = gateway.log_text()
    assert upstream.headers, "the upstream was never called"
    for headers in upstream.headers:
        assert headers["authorization"] == f"Bearer {MODEL_KEY}"
        assert gateway.api_key not in json.dumps(headers)
    assert MODEL_KEY not in log
    assert gateway.api_key not in log
