"""The tap side of the gateway: ingest endpoint, Redis outages, health and metrics."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shadowcanary.launcher.gateway import GatewayHandle, run_gateway
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.servers import RedisServer
from tests.gateway.conftest import base_env, set_flag, tapped_events

pytestmark = pytest.mark.integration

CHAT = {"model": "gpt-5.2", "messages": [{"role": "user", "content": "hi"}], "user": "u-1"}


def _event(event_id: str, **changes: object) -> dict[str, object]:
    start = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    return {
        "event_id": event_id,
        "started_at": start.isoformat(),
        "ended_at": (start + timedelta(milliseconds=420)).isoformat(),
        "route": "search",
        "model": "gpt-5.2",
        "request": {"messages": [{"role": "user", "content": "find blue shoes"}]},
        "response": {"text": "Here are blue shoes.", "finish_reason": "stop"},
        "latency_ms": 420.0,
        **changes,
    }


def test_ingest_accepts_good_events_and_reports_bad_ones_by_index(
    gateway: GatewayHandle, redis_url: str
) -> None:
    """A mixed batch: 207, bad ones listed by index with the field, good ones reach the queue."""
    batch = [
        _event("evt-good-0001"),
        _event("evt-bad-00001", latency_ms=-5),
        _event("evt-good-0002", arm="candidate", model="gpt-5.5"),
        "not an event",
        _event("evt-bad-00002", status="ok", response=None),
        _event("evt-bad-00003", tenant="someone-else"),
    ]
    response = httpx.post(
        f"{gateway.base_url}/tap/events",
        json={"events": batch},
        headers={"Authorization": f"Bearer {gateway.api_key}"},
    )
    assert response.status_code == 207, response.text
    answer = response.json()
    assert answer["accepted"] == 2
    assert [r["index"] for r in answer["rejected"]] == [1, 3, 4, 5]
    assert "latency_ms" in answer["rejected"][0]["error"]
    assert "needs a response" in answer["rejected"][2]["error"]
    assert "not this key's service" in answer["rejected"][3]["error"]
    events = wait_until(
        lambda: (found := tapped_events(redis_url)) and len(found) >= 2 and found,
        timeout_s=10,
        what="the accepted events in the ingest queue",
    )
    assert sorted(e.event_id for e in events) == ["evt-good-0001", "evt-good-0002"]
    assert {e.tenant for e in events} == {"test-service"}  # filed under the calling service


def test_ingest_of_an_all_good_or_all_bad_batch(gateway: GatewayHandle) -> None:
    """All good: 200. All bad: 422. A bare list works as well as {"events": [...]}."""
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    good = httpx.post(
        f"{gateway.base_url}/tap/events", json=[_event("evt-ok-000001")], headers=headers
    )
    bad = httpx.post(f"{gateway.base_url}/tap/events", json=[{"event_id": "x"}], headers=headers)
    assert (good.status_code, good.json()) == (200, {"accepted": 1, "rejected": []})
    assert bad.status_code == 422 and bad.json()["accepted"] == 0


def _latencies(gateway: GatewayHandle, n: int) -> list[float]:
    out = []
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    with httpx.Client(base_url=gateway.base_url, headers=headers, timeout=30) as client:
        for i in range(n):
            started = time.perf_counter()
            response = client.post("/chat/completions", json={**CHAT, "user": f"u-{i}"})
            out.append(time.perf_counter() - started)
            assert response.status_code == 200
    return out


def test_with_redis_down_the_gateway_serves_at_normal_latency(
    own_redis: RedisServer, database_url: str, sim: SimHandle
) -> None:
    """Redis killed: every call still answered, median latency about unchanged; drops counted."""
    set_flag(database_url, 0)
    env = base_env(own_redis.url, database_url, sim)
    with run_gateway(env) as gateway:
        up = statistics.median(_latencies(gateway, 150))
        own_redis.stop()
        down = statistics.median(_latencies(gateway, 150))
        metrics = wait_until(
            lambda: (
                (text := httpx.get(f"{gateway.root_url}/metrics").text)
                and 'shadowcanary_tap_events_dropped_total{reason="publish_failed"}' in text
                and text
            ),
            timeout_s=10,
            what="the tap to count the events it could not publish",
        )
        assert httpx.get(f"{gateway.root_url}/readyz").status_code == 200
    # Generous for a shared CI machine; a blocked call would take the 0.5 s publish timeout.
    assert down < up * 2 + 0.010, (up, down)
    assert 'reason="publish_failed"} 0.0' not in metrics


def test_health_readiness_and_metrics_need_no_key(gateway: GatewayHandle) -> None:
    """/healthz, /readyz and /metrics answer without a key; metrics count calls by arm."""
    httpx.post(
        f"{gateway.base_url}/chat/completions",
        json=CHAT,
        headers={"Authorization": f"Bearer {gateway.api_key}"},
    ).raise_for_status()
    assert httpx.get(f"{gateway.root_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.root_url}/readyz").json()
    assert ready["ready"] is True and ready["breakers"]["gpt-5.2"] == "closed"
    metrics = httpx.get(f"{gateway.root_url}/metrics").text
    for name in (
        "shadowcanary_gateway_requests_total"
        '{arm="baseline",endpoint="chat.completions",status="200"} 1.0',
        "shadowcanary_gateway_added_latency_seconds_bucket",
        "shadowcanary_gateway_upstream_latency_seconds_bucket",
        "shadowcanary_gateway_ttft_seconds",
        "shadowcanary_gateway_stream_chunks_total",
        'shadowcanary_gateway_breaker_state{upstream="gpt-5.5"} 0.0',
    ):
        assert name in metrics, name
