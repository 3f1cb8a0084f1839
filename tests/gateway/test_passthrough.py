"""Endpoints the gateway does not route reach the route's baseline unchanged, untapped."""

from __future__ import annotations

import http.client
import json

import httpx
import openai
import pytest

from shadowcanary.launcher.gateway import GatewayHandle, run_gateway
from shadowcanary.launcher.sim import SimHandle
from tests.gateway.conftest import tapped_events
from tests.gateway.sameness import same

pytestmark = pytest.mark.integration


def test_moderations_pass_through_as_from_the_upstream_and_are_not_tapped(
    gateway: GatewayHandle, sim: SimHandle, redis_url: str
) -> None:
    """The SDK's moderations call gets the upstream's answer through the gateway; an
    upstream error (an endpoint the simulator lacks) comes back as the upstream sent it,
    with the method and query kept; nothing is captured."""
    through = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)
    direct = openai.OpenAI(base_url=sim.base_url, api_key="direct", max_retries=0)
    inputs = ["first text", "second text"]
    got = through.moderations.create(input=inputs).model_dump(mode="json")
    assert same(got, direct.moderations.create(input=inputs).model_dump(mode="json"))
    assert len(got["results"]) == 2
    auth = {"authorization": f"Bearer {gateway.api_key}"}
    proxied = httpx.get(f"{gateway.base_url}/files", params={"purpose": "batch"}, headers=auth)
    upstream = httpx.get(f"{sim.base_url}/files", params={"purpose": "batch"}, headers=auth)
    assert (proxied.status_code, proxied.json()) == (upstream.status_code, upstream.json())
    assert "GET /v1/files" in proxied.json()["error"]["message"]  # the simulator's words
    assert tapped_events(redis_url) == []


def test_passthrough_needs_a_key_keeps_the_body_limit_and_refuses_dot_segments(
    gateway_env: dict[str, str],
) -> None:
    """No key: 401; a body over the limit: 413; a path climbing out of /v1: 404, not sent."""
    with run_gateway({**gateway_env, "SHADOWCANARY_GATEWAY__MAX_BODY_BYTES": "1000"}) as gw:
        url = f"{gw.base_url}/moderations"
        assert httpx.post(url, json={"input": "hi"}).status_code == 401
        auth = {"authorization": f"Bearer {gw.api_key}"}
        big = httpx.post(url, json={"input": "a" * 5_000}, headers=auth)
        assert big.status_code == 413 and "larger than" in big.json()["error"]["message"]
        # Sent raw: HTTP clients would resolve the dot segments before sending.
        connection = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        connection.request("POST", "/v1/../healthz", body=b"{}", headers=auth)
        climbing = connection.getresponse()
        message = json.loads(climbing.read())["error"]["message"]
        connection.close()
        assert climbing.status == 404 and "Unknown path POST /v1/../healthz" in message
        assert "This gateway serves" in message  # the gateway's answer, not an upstream's
