"""Connection limits, over real sockets: a bounded request head, and deadlines to send it.

uvicorn's httptools parser accepts a request head of any size and never times out a
connection that is still sending its request (or sends nothing): a 64 MiB header took
10 s and tens of MiB, and slow connections were held for as long as they trickled.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shadowcanary.launcher.gateway import GatewayHandle, run_gateway
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.testing.poll import wait_until
from tests.gateway.conftest import base_env, set_flag

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"


def _env(redis_url: str, database_url: str, sim: SimHandle, workers: int) -> dict[str, str]:
    """Gateway settings with short read deadlines: 1 s for the head, 2 s for the body."""
    set_flag(database_url, 0)
    env = base_env(redis_url, database_url, sim)
    env["SHADOWCANARY_GATEWAY__WORKERS"] = str(workers)
    env["SHADOWCANARY_GATEWAY__HEADER_TIMEOUT_S"] = "1"
    env["SHADOWCANARY_GATEWAY__BODY_TIMEOUT_S"] = "2"
    return env


@pytest.fixture
def gateway(redis_url: str, database_url: str, sim: SimHandle) -> Iterator[GatewayHandle]:
    with run_gateway(_env(redis_url, database_url, sim, workers=1)) as handle:
        yield handle


def _connect(gateway: GatewayHandle) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.port), timeout=10)


def _read_to_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection, or 10 s without a byte."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return received + b"<still open after 10 s>"
    return received


def _error(answer: bytes) -> dict[str, object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower(), head
    error: dict[str, object] = json.loads(body)["error"]
    return error


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def test_a_request_head_over_the_limit_is_answered_431_and_closed(gateway: GatewayHandle) -> None:
    """100 KiB of headers (limit 64 KiB): 431 with an OpenAI-style error naming the setting."""
    _check_431(gateway)


def _check_431(gateway: GatewayHandle) -> None:
    with _connect(gateway) as sock:
        sock.sendall(HEAD + b"X-Big: " + b"a" * 100 * 1024 + b"\r\n\r\n")
        answer = _read_to_close(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    error = _error(answer)
    assert error["code"] == "request_headers_too_large"
    assert "65536 bytes" in str(error["message"])
    assert "SHADOWCANARY_GATEWAY__MAX_HEADER_BYTES" in str(error["message"])
    assert httpx.get(f"{gateway.root_url}/healthz").status_code == 200


def test_a_64_mib_header_is_cut_off_without_growing_memory(gateway: GatewayHandle) -> None:
    """The server stops reading a 64 MiB header early; its peak RSS grows by under 16 MiB."""
    if not Path(f"/proc/{gateway.pid}/status").exists():
        pytest.skip("needs /proc")
    peak_before = _peak_rss_kib(gateway.pid)
    sent = 0
    answer = b""
    with _connect(gateway) as sock:
        try:
            sock.sendall(HEAD + b"X-Big: ")
            while sent < 64 * MiB:
                sock.sendall(b"a" * MiB)
                sent += MiB
            answer = _read_to_close(sock)
        except (BrokenPipeError, ConnectionResetError):
            pass  # cut off while sending: what a server that stopped reading does
    peak_growth_mib = (_peak_rss_kib(gateway.pid) - peak_before) / 1024
    assert sent < 64 * MiB or answer.startswith(b"HTTP/1.1 431 "), (sent, answer[:200])
    assert peak_growth_mib < 16, f"peak RSS grew by {peak_growth_mib:.1f} MiB"
    assert httpx.get(f"{gateway.root_url}/healthz").status_code == 200


def test_silent_and_slow_connections_are_closed(gateway: GatewayHandle) -> None:
    """20 connections that send nothing, trickle their head or their body are all closed.

    Three of the head tricklers first get a whole request answered: the deadline also
    holds for the next request on a kept-alive connection.
    """
    _check_slow_connections_closed(gateway, 7, 7, 6)


def test_the_limits_hold_in_every_worker_process(
    redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """With two gateway processes (spawned, settings pickled) both limits still apply."""
    env = _env(redis_url, database_url, sim, workers=2)
    with run_gateway(env, startup_timeout_s=120) as gateway:
        for _ in range(4):  # connections land on either process
            _check_431(gateway)
        _check_slow_connections_closed(gateway, 4, 4, 4)


def _check_slow_connections_closed(
    gateway: GatewayHandle, n_silent: int, n_slow_head: int, n_slow_body: int
) -> None:
    silent = [_connect(gateway) for _ in range(n_silent)]
    slow_head = [_connect(gateway) for _ in range(n_slow_head)]
    slow_body = [_connect(gateway) for _ in range(n_slow_body)]
    for sock in slow_body:  # with a key: the gateway waits for the body
        sock.sendall(
            HEAD
            + f"Authorization: Bearer {gateway.api_key}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
        )
    for sock in slow_head[:3]:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            first += sock.recv(65536) or pytest.fail(f"closed after {first!r}")
    for sock in slow_head:
        sock.sendall(HEAD)
    answers: dict[socket.socket, bytes] = {}
    every = silent + slow_head + slow_body
    for sock in every:
        sock.setblocking(False)

    def all_closed() -> bool:
        for sock in every:
            if sock in answers and answers[sock].endswith(b"<closed>"):
                continue
            try:
                if sock in slow_head:
                    sock.send(b"x")  # a header name that never ends: never a full head
                elif sock in slow_body:
                    sock.send(b" ")
                chunk = sock.recv(65536)
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                chunk = b""
            answers[sock] = answers.get(sock, b"") + (chunk or b"<closed>")
        return all(answers.get(sock, b"").endswith(b"<closed>") for sock in every)

    try:
        wait_until(all_closed, timeout_s=30, interval_s=0.1, what="the server to close them")
        still_open = []
    except TimeoutError:
        still_open = [s for s in every if not answers.get(s, b"").endswith(b"<closed>")]
    finally:
        for sock in every:
            sock.close()
    assert not still_open, f"{len(still_open)} of {len(every)} slow connections still open"
    assert all(answers[s] == b"<closed>" for s in silent)  # no request, no answer
    for sock in slow_head + slow_body:
        assert answers[sock].startswith(b"HTTP/1.1 408 "), answers[sock][:200]
        assert _error(answers[sock].removesuffix(b"<closed>"))["code"] == "request_timeout"
    assert httpx.get(f"{gateway.root_url}/healthz").status_code == 200
