"""Gateway keys are bound to rollouts: a service reports evidence only for its own rollouts.

Three services share one gateway: ``checkout`` may report for the default route's
rollout, ``search`` for ``search-gpt55`` (the ``search`` route), ``platform`` for any
rollout (``["*"]``, written out). Every endpoint where the caller names a rollout is
checked: the events posted to ``/v1/tap/events`` and the route of a proxied call
(``X-Shadowcanary-Route`` header or ``/r/<route>/v1/...``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shadowcanary.gateway.auth import hash_key
from shadowcanary.launcher.gateway import GatewayHandle, run_gateway
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.testing.poll import wait_until
from tests.gateway.conftest import FLAG, ROLLOUT, base_env, set_flag, tapped_events

pytestmark = pytest.mark.integration

SEARCH_ROLLOUT = "search-gpt55"
KEYS = {"checkout": "ck-key-1234", "search": "se-key-5678", "platform": "pl-key-9012"}
CHAT = {"model": "gpt-5.2", "messages": [{"role": "user", "content": "hi"}], "user": "u-1"}


@pytest.fixture
def gateway(redis_url: str, database_url: str, sim: SimHandle) -> Iterator[GatewayHandle]:
    set_flag(database_url, 0)
    env = base_env(redis_url, database_url, sim)
    env["SHADOWCANARY_GATEWAY__ROUTES"] = json.dumps(
        {
            "default": {"rollout": ROLLOUT, "flag": FLAG.name},
            "search": {"rollout": SEARCH_ROLLOUT, "flag": FLAG.name},
            "plain": {},
        }
    )
    env["SHADOWCANARY_GATEWAY__API_KEYS"] = json.dumps(
        {
            "checkout": {"sha256": hash_key(KEYS["checkout"]), "rollouts": [ROLLOUT]},
            "search": {"sha256": hash_key(KEYS["search"]), "rollouts": [SEARCH_ROLLOUT]},
            "platform": {"sha256": hash_key(KEYS["platform"]), "rollouts": ["*"]},
        }
    )
    with run_gateway(env) as handle:
        yield handle


def _auth(service: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[service]}"}


def _event(event_id: str, **changes: object) -> dict[str, object]:
    start = datetime.now(UTC)
    return {
        "event_id": event_id,
        "started_at": start.isoformat(),
        "ended_at": (start + timedelta(milliseconds=300)).isoformat(),
        "model": "gpt-5.5",
        "arm": "candidate",
        "request": {"messages": [{"role": "user", "content": "find blue shoes"}]},
        "status": "error",
        "error_class": "APIStatusError",
        "http_status": 500,
        "latency_ms": 300.0,
        **changes,
    }


def test_a_service_cannot_file_events_into_another_teams_rollout(
    gateway: GatewayHandle, redis_url: str
) -> None:
    """checkout's key posting search's rollout: 403 naming both, and nothing of the batch tapped."""
    foreign = _event("evt-foreign-001", rollout=SEARCH_ROLLOUT)
    own = _event("evt-own-000001", rollout=ROLLOUT)
    refused = httpx.post(
        f"{gateway.base_url}/tap/events", json=[own, foreign], headers=_auth("checkout")
    )
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "rollout_not_allowed"
    assert f"'{SEARCH_ROLLOUT}'" in error["message"] and "'checkout'" in error["message"]
    assert "SHADOWCANARY_GATEWAY__API_KEYS" in error["message"]  # says how to fix it

    # The owners file the same kind of events: accepted. The '*' key reports anywhere,
    # and traffic outside any rollout is no rollout's evidence.
    accepted = [
        ("search", [_event("evt-search-0001", rollout=SEARCH_ROLLOUT)]),
        ("checkout", [_event("evt-check-0001", rollout=ROLLOUT), _event("evt-norollout1")]),
        ("platform", [_event("evt-platf-0001", rollout=SEARCH_ROLLOUT)]),
    ]
    for service, batch in accepted:
        response = httpx.post(f"{gateway.base_url}/tap/events", json=batch, headers=_auth(service))
        assert response.status_code == 200, (service, response.text)
    published = wait_until(
        lambda: (found := tapped_events(redis_url)) and len(found) >= 4 and found,
        timeout_s=10,
        what="the accepted events in the ingest queue",
    )
    # The refused batch went out first: had any of it been tapped, it would be here.
    assert {(e.event_id, e.tenant, e.rollout) for e in published} == {
        ("evt-search-0001", "search", SEARCH_ROLLOUT),
        ("evt-check-0001", "checkout", ROLLOUT),
        ("evt-norollout1", "checkout", None),
        ("evt-platf-0001", "platform", SEARCH_ROLLOUT),
    }


def test_a_service_cannot_call_through_another_teams_route(gateway: GatewayHandle) -> None:
    """A proxied call on a route whose rollout the key is not bound to: 403, by header or path."""
    with httpx.Client(base_url=gateway.root_url, timeout=30) as client:
        by_header = client.post(
            "/v1/chat/completions",
            json=CHAT,
            headers={**_auth("checkout"), "X-Shadowcanary-Route": "search"},
        )
        by_path = client.post("/r/search/v1/chat/completions", json=CHAT, headers=_auth("checkout"))
        default_route = client.post("/v1/chat/completions", json=CHAT, headers=_auth("search"))
        allowed = {
            "checkout on its route": client.post(
                "/v1/chat/completions", json=CHAT, headers=_auth("checkout")
            ),
            "search on its route": client.post(
                "/r/search/v1/chat/completions", json=CHAT, headers=_auth("search")
            ),
            "search outside any rollout": client.post(
                "/v1/chat/completions",
                json=CHAT,
                headers={**_auth("search"), "X-Shadowcanary-Route": "plain"},
            ),
            "platform anywhere": client.post(
                "/r/search/v1/chat/completions", json=CHAT, headers=_auth("platform")
            ),
        }
    for response, service, rollout in (
        (by_header, "checkout", SEARCH_ROLLOUT),
        (by_path, "checkout", SEARCH_ROLLOUT),
        (default_route, "search", ROLLOUT),
    ):
        assert response.status_code == 403, response.text
        message = response.json()["error"]["message"]
        assert f"'{rollout}'" in message and f"'{service}'" in message, message
    assert {name: r.status_code for name, r in allowed.items()} == dict.fromkeys(allowed, 200)
