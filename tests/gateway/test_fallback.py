"""Named routes, fallback to the baseline, circuit breaker and per-route timeouts."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from shadowcanary.events import hash_stickiness_key
from shadowcanary.launcher.gateway import GatewayHandle, run_gateway
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.testing.poll import wait_until
from tests.gateway.conftest import ROLLOUT, SALT, base_env, set_flag, tapped_events
from tests.integration.pipeline import sim_calls

pytestmark = pytest.mark.integration

CHAT = {"model": "gpt-5.2", "messages": [{"role": "user", "content": "Where is my parcel?"}]}


@pytest.fixture(autouse=True)
def _healthy_sim(sim: SimHandle) -> Iterator[None]:
    """Each test breaks the simulator its own way; put it back afterwards."""
    yield
    sim.set_profile("gpt-5.5", error_rate=0.0)
    sim.set_profile("gpt-slow", median_ms=5, p99_ms=20)


def _post(
    gateway: GatewayHandle,
    user: str,
    path: str = "/v1/chat/completions",
    *,
    stream: bool = False,
    **headers: str,
):
    return httpx.post(
        f"{gateway.root_url}{path}",
        json={**CHAT, "user": user, **({"stream": True} if stream else {})},
        headers={"Authorization": f"Bearer {gateway.api_key}", **headers},
        timeout=30,
    )


def _at_full_canary(gateway: GatewayHandle, database_url: str) -> None:
    set_flag(database_url, 100)
    wait_until(
        lambda: _post(gateway, "probe").json()["model"] == "gpt-5.5",
        timeout_s=20,
        what="the 100 % flag to reach the gateway",
    )


def _answering_model(response: httpx.Response) -> str:
    """The model named in a whole answer, or in the first chunk of a streamed one."""
    if response.headers["content-type"].startswith("text/event-stream"):
        first = next(line for line in response.text.splitlines() if line.startswith("data: {"))
        return str(json.loads(first.removeprefix("data: "))["model"])
    return str(response.json()["model"])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_failing_candidate_is_served_by_the_baseline_and_both_are_recorded(
    gateway: GatewayHandle, sim: SimHandle, database_url: str, redis_url: str, stream: bool
) -> None:
    """Candidate 500 -> the client gets the baseline's 200; events: candidate error + fallback."""
    _at_full_canary(gateway, database_url)
    probe_key = hash_stickiness_key("probe", SALT)
    sim.set_profile("gpt-5.5", error_rate=1.0)
    response = _post(gateway, "user-f", stream=stream)
    assert response.status_code == 200
    assert _answering_model(response) == "gpt-5.2"
    assert ("data: [DONE]" in response.text) is stream
    events = wait_until(
        lambda: (
            (found := [e for e in tapped_events(redis_url) if e.stickiness_key != probe_key])
            and len(found) >= 2
            and found
        ),
        timeout_s=10,
        what="the failed candidate call and its fallback in the ingest queue",
    )
    failed = [e for e in events if e.status == "error"]
    fallback = [e for e in events if e.event_id.endswith("-fallback")]
    assert len(events) == 2 and len(failed) == 1 and len(fallback) == 1
    assert (failed[0].arm, failed[0].model, failed[0].http_status) == ("candidate", "gpt-5.5", 500)
    assert failed[0].error_class == "InternalServerError"
    assert (fallback[0].arm, fallback[0].model, fallback[0].status) == ("baseline", "gpt-5.2", "ok")
    assert fallback[0].event_id == failed[0].event_id + "-fallback"
    assert fallback[0].rollout == failed[0].rollout == ROLLOUT


def test_the_breaker_stops_calling_a_dead_candidate(
    gateway: GatewayHandle, sim: SimHandle, database_url: str
) -> None:
    """After 5 consecutive failures the candidate is not called; clients still get answers."""
    _at_full_canary(gateway, database_url)
    sim.set_profile("gpt-5.5", error_rate=1.0)
    before = sim_calls(sim, "gpt-5.5", 500)
    answers = [_post(gateway, f"user-{i}") for i in range(20)]
    assert [r.status_code for r in answers] == [200] * 20
    assert sim_calls(sim, "gpt-5.5", 500) - before == 5  # the default breaker threshold
    metrics = httpx.get(f"{gateway.root_url}/metrics").text
    assert 'shadowcanary_gateway_breaker_state{upstream="gpt-5.5"} 2.0' in metrics
    assert "shadowcanary_gateway_fallbacks_total" in metrics
    ready = httpx.get(f"{gateway.root_url}/readyz").json()
    assert ready["breakers"]["gpt-5.5"] == "open"


def test_without_fallback_the_upstream_error_is_returned_faithfully(
    redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """fallback_to_baseline=false: the client sees the candidate's own 500 status and body."""
    set_flag(database_url, 100)
    env = base_env(redis_url, database_url, sim, fallback_to_baseline=False)
    with run_gateway(env) as gateway:
        wait_until(
            lambda: _post(gateway, "probe").json()["model"] == "gpt-5.5",
            timeout_s=20,
            what="the 100 % flag to reach the gateway",
        )
        sim.set_profile("gpt-5.5", error_rate=1.0)
        response = _post(gateway, "user-x")
    assert response.status_code == 500
    assert "simulated" in response.json()["error"]["message"]
    assert response.json()["error"]["type"] == "server_error"


def test_a_route_timeout_answers_504_and_records_a_timeout(
    redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """A route's timeout_s bounds the upstream call: 504 with a clear message, event 'timeout'."""
    env = base_env(redis_url, database_url, sim)
    routes = json.loads(env["SHADOWCANARY_GATEWAY__ROUTES"])
    routes["slow"] = {"baseline_model": "gpt-slow", "timeout_s": 0.3}
    env["SHADOWCANARY_GATEWAY__ROUTES"] = json.dumps(routes)
    sim.set_profile("gpt-slow", median_ms=3000, p99_ms=3000)
    with run_gateway(env) as gateway:
        response = httpx.post(
            f"{gateway.root_url}/r/slow/v1/chat/completions",
            json={**CHAT, "model": "gpt-slow"},
            headers={"Authorization": f"Bearer {gateway.api_key}"},
            timeout=30,
        )
        assert response.status_code == 504
        assert "did not answer within 0.3s" in response.json()["error"]["message"]
        events = wait_until(
            lambda: tapped_events(redis_url), timeout_s=10, what="the timeout event"
        )
    assert [(e.status, e.route, e.error_class) for e in events] == [
        ("timeout", "slow", "APITimeoutError")
    ]


def test_a_named_route_without_rollout_is_not_canaried(
    gateway: GatewayHandle, database_url: str, redis_url: str
) -> None:
    """By header or /r/<route>/ path, route 'plain' serves the model asked for, even at 100 %."""
    _at_full_canary(gateway, database_url)
    by_header = _post(gateway, "user-p", **{"X-Shadowcanary-Route": "plain"})
    by_path = _post(gateway, "user-p", path="/r/plain/v1/chat/completions")
    unknown = _post(gateway, "user-p", path="/r/nope/v1/chat/completions")
    assert by_header.json()["model"] == by_path.json()["model"] == "gpt-5.2"
    assert unknown.status_code == 404
    assert "Unknown gateway route 'nope'" in unknown.json()["error"]["message"]
    plain = wait_until(
        lambda: [e for e in tapped_events(redis_url) if e.route == "plain"],
        timeout_s=10,
        what="the plain route's events",
    )
    assert len(plain) == 2 and all(e.rollout is None and e.arm == "baseline" for e in plain)
