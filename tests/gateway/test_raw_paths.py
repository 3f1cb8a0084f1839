"""The gateway routes on the path as sent: percent-encoded paths cannot slip past an edge ACL.

A proxy or ACL in front of the gateway matches the raw path (``/v1/chat/completions``
blocked for some clients, say). Had the gateway routed on the decoded path,
``/%76%31/chat/completions`` or ``/v1/chat%2Fcompletions`` would reach chat while the
ACL saw another path. Requests are written by hand on a socket, so no client library
normalises them first.
"""

from __future__ import annotations

import json
import socket

import pytest

from shadowcanary.launcher.gateway import GatewayHandle

pytestmark = pytest.mark.integration

CHAT = json.dumps(
    {"model": "gpt-5.2", "messages": [{"role": "user", "content": "hi"}], "user": "u-1"}
).encode()

ENCODED = [
    ("POST", "/%76%31/chat/completions"),
    ("POST", "/v1/chat%2Fcompletions"),
    ("POST", "/v1/chat%2fcompletions"),
    ("POST", "/v1/%63hat/completions"),
    ("POST", "/r/default%2Fv1/chat/completions"),
    ("POST", "/r/def%61ult/v1/chat/completions"),
    ("POST", "/v1/tap%2Fevents"),
    ("GET", "/%6detrics"),
    ("GET", "/v1/models%2Fgpt-5.2"),
]


def _request(gateway: GatewayHandle, method: str, path: str, body: bytes = b"") -> tuple[int, dict]:
    """One raw HTTP/1.1 request; the status and the JSON body of the answer."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n"
        f"Authorization: Bearer {gateway.api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    payload = rest.partition(b"\r\n\r\n")[2]
    parsed = json.loads(payload) if payload.startswith(b"{") else {"raw": payload.decode()}
    return int(status_line.split()[1]), parsed


def test_a_percent_encoded_path_is_refused_with_400(gateway: GatewayHandle) -> None:
    """Encoded characters in a routed path: 400 saying to send the path unencoded."""
    answers = {
        path: _request(gateway, method, path, CHAT if method == "POST" else b"")
        for method, path in ENCODED
    }
    assert {path: status for path, (status, _) in answers.items()} == dict.fromkeys(answers, 400)
    for path, (_, answer) in answers.items():
        error = answer["error"]
        assert error["code"] == "encoded_path", (path, error)
        assert path in error["message"] and "unencoded" in error["message"], error


def test_plain_paths_and_encoded_model_ids_still_work(gateway: GatewayHandle) -> None:
    """The unencoded paths answer as before; a model id may be encoded, as SDKs do."""
    assert _request(gateway, "POST", "/v1/chat/completions", CHAT)[0] == 200
    assert _request(gateway, "POST", "/r/default/v1/chat/completions", CHAT)[0] == 200
    assert _request(gateway, "GET", "/v1/models/gpt%2D5.2") == (
        200,
        {"id": "gpt-5.2", "object": "model", "created": 0, "owned_by": "shadowcanary-gateway"},
    )
    status, answer = _request(gateway, "GET", "/v1/models/meta%2Fllama%203")
    assert status == 404 and "`meta/llama 3`" in answer["error"]["message"]
