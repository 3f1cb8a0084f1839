"""A client leaving mid-stream: the upstream call is cancelled and the event says so."""

from __future__ import annotations

import os
import time

import httpx
import psutil
import pytest

from shadowcanary.launcher.gateway import GatewayHandle
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.testing.poll import wait_until
from tests.gateway.conftest import tapped_events

pytestmark = pytest.mark.integration


def _sim_pid(sim: SimHandle) -> int:
    """The simulator process: the child of this test run listening on the simulator's port."""
    for child in psutil.Process().children(recursive=True):
        try:
            listening = child.net_connections(kind="tcp")
        except psutil.Error:
            continue
        if any(c.laddr and c.laddr.port == sim.port and not c.raddr for c in listening):
            return child.pid
    raise AssertionError("simulator process not found")


def _open_sockets(pid: int) -> int:
    """Sockets the process holds open (its listening socket included).

    Counted from /proc/<pid>/fd: unlike /proc/net/tcp, which this sandbox does not
    report reliably, a process's file descriptors are exact.
    """
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return count


def _settled_sockets(pid: int) -> int:
    """The socket count once it has not changed for a second (admin calls' connections
    closing: on a loaded machine the simulator can take longer than one 0.2 s look)."""
    readings = [_open_sockets(pid)]

    def settled() -> bool:
        time.sleep(0.2)
        readings.append(_open_sockets(pid))
        return len(readings) >= 6 and len(set(readings[-6:])) == 1

    wait_until(settled, timeout_s=10, what="the simulator's sockets to settle")
    return readings[-1]


def test_closing_a_stream_early_cancels_the_upstream_call_and_records_it(
    gateway: GatewayHandle, sim: SimHandle, redis_url: str
) -> None:
    """The upstream's connection closes at once; the event is cancelled, with the partial text."""
    # A 20-second stream, one word per chunk, the first one at once.
    sim.set_profile(
        "gpt-slow",
        median_ms=20_000,
        p99_ms=20_000,
        ttft_median_ms=5,
        ttft_p99_ms=10,
        stream_words_per_chunk=1,
    )
    sim_pid = _sim_pid(sim)
    idle = _settled_sockets(sim_pid)  # its listening socket and the event loop's own
    body = {
        "model": "gpt-slow",
        "messages": [{"role": "user", "content": "Write a long story."}],
        "stream": True,
        "user": "leaver",
    }
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    try:
        with (
            httpx.Client(timeout=30) as client,
            client.stream(
                "POST", f"{gateway.base_url}/chat/completions", json=body, headers=headers
            ) as response,
        ):
            assert response.status_code == 200
            received = b""
            for chunk in response.iter_bytes():
                received += chunk
                if b'"content":"' in received:
                    break
            streaming = _open_sockets(sim_pid)
            assert streaming > idle  # the gateway's call is open at the simulator
        # The simulator notices at its next chunk (up to a couple of seconds apart here):
        # well before the 20 s the stream would have lasted.
        wait_until(
            lambda: _open_sockets(sim_pid) < streaming,
            timeout_s=10,
            what="the simulator to see the gateway hang up",
        )
        events = wait_until(
            lambda: tapped_events(redis_url), timeout_s=10, what="the cancelled call's event"
        )
    finally:
        sim.set_profile("gpt-slow", median_ms=5, p99_ms=20, ttft_median_ms=None, ttft_p99_ms=None)
    assert len(events) == 1
    event = events[0]
    assert (event.status, event.error_class, event.model) == (
        "cancelled",
        "ClientDisconnected",
        "gpt-slow",
    )
    assert event.latency_ms < 10_000  # well before the 20 s stream would have ended
    assert event.ttft_ms is not None
    assert event.response is not None and event.response.text  # what was streamed so far
    assert _works_again(gateway)


def _works_again(gateway: GatewayHandle) -> bool:
    response = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "gpt-5.2", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=30,
    )
    return response.status_code == 200
