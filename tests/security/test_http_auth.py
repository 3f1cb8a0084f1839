"""Authentication on every HTTP endpoint that accepts data or changes state.

The project's HTTP servers (found by grepping for starlette/uvicorn/http.server/
start_http_server):

- gateway (``shadowcanary gateway run``): ``/v1/*`` and ``/r/<route>/v1/*``, including
  ``POST /v1/tap/events``, need a per-service key; ``/healthz``, ``/readyz`` and
  ``/metrics`` are open and read-only.
- model simulator (``shadowcanary sim``): ``/admin/*`` needs the admin bearer token and
  is off without one; ``/v1/*`` takes any non-empty key (a stand-in for the vendor's
  API); ``/healthz`` is open.
- Prometheus exporters (worker ``SHADOWCANARY_METRICS_PORT``, controller
  ``--metrics-port``): ``prometheus_client`` answers GET only.

Each state-changing endpoint is called for real with no credentials, a wrong one and
a malformed one, and must answer 401 without doing anything.
"""

from __future__ import annotations

import httpx
import pytest
import redis
from starlette.routing import Route

from shadowcanary import constants
from shadowcanary.launcher.gateway import GatewayHandle
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.sim.app import create_app
from shadowcanary.sim.profiles import profiles_from_mapping
from shadowcanary.testing.servers import free_port
from tests.corpus.hostile_events import good_event
from tests.integration.conftest import FAST_PROFILES

pytestmark = pytest.mark.integration

BAD_CREDENTIALS = [
    pytest.param({}, id="none"),
    pytest.param({"Authorization": "Bearer wrong-key"}, id="wrong-bearer"),
    pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic-scheme"),
    pytest.param({"Authorization": "Bearer"}, id="scheme-only"),
    pytest.param({"Authorization": "wrong-key"}, id="no-scheme"),
]


def _body_for(path: str) -> dict[str, object] | list[object]:
    if path.endswith("/tap/events"):
        return [good_event(tenant="test-service")]  # the test key's service
    if path.endswith("/embeddings"):
        return {"model": "gpt-5.2", "input": "hello"}
    if path.endswith("/responses"):
        return {"model": "gpt-5.2", "input": "hello"}
    return {"model": "gpt-5.2", "messages": [{"role": "user", "content": "hello"}]}


# -- simulator -----------------------------------------------------------------------------


def _sim_routes() -> list[tuple[str, str]]:
    """Every (method, path) the simulator app serves, read from its own route table."""
    front = create_app(profiles_from_mapping(FAST_PROFILES), admin_token=None)
    # The app may sit behind an ASGI front (fast paths); its Starlette routes are the table.
    app = getattr(front, "app", front)
    found = []
    for route in app.routes:
        assert isinstance(route, Route)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                found.append((method, route.path.replace("{model:path}", "gpt-5.2")))
    return found


SIM_OPEN = {("GET", "/healthz")}


def test_the_simulator_route_table_is_what_this_test_covers() -> None:
    """A new simulator route must be added here (and to the auth checks) on purpose."""
    assert {p for _m, p in _sim_routes()} == {
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/embeddings",
        "/v1/moderations",
        "/v1/models",
        "/v1/models/gpt-5.2",
        "/healthz",
        "/admin/profiles",
        "/admin/profiles/gpt-5.2",
        "/admin/stats",
    }


@pytest.mark.parametrize("headers", BAD_CREDENTIALS)
def test_every_simulator_endpoint_but_health_rejects_bad_credentials(
    sim: SimHandle, headers: dict[str, str]
) -> None:
    """No, wrong or malformed credentials: 401 on every route, and the profiles stay put."""
    profiles_before = sim.profiles()
    for method, path in _sim_routes():
        if (method, path) in SIM_OPEN:
            continue
        if path.startswith("/v1/") and headers.get("Authorization", "").startswith("Bearer w"):
            continue  # the stand-in vendor API takes any non-empty key, like a dev key
        body = {"median_ms": 1} if path.startswith("/admin/profiles/") else _body_for(path)
        response = httpx.request(
            method, f"{sim.root_url}{path}", headers=headers, json=body, timeout=10
        )
        assert response.status_code == 401, f"{method} {path} -> {response.status_code}"
    assert sim.profiles() == profiles_before


def test_the_simulator_admin_api_is_off_without_an_admin_token() -> None:
    """Built without an admin token, /admin refuses every caller, whatever they send."""
    from starlette.testclient import TestClient

    app = create_app(profiles_from_mapping(FAST_PROFILES), admin_token=None)
    with TestClient(app) as client:
        for method, path in _sim_routes():
            if not path.startswith("/admin"):
                continue
            for token in ("", "None", "null", "sim-admin"):
                response = client.request(
                    method,
                    path,
                    headers={"Authorization": f"Bearer {token}"},
                    json={"median_ms": 1},
                )
                assert response.status_code == 401, f"{method} {path} ({token!r})"
                assert "disabled" in response.json()["error"]["message"]


# -- gateway -------------------------------------------------------------------------------

GATEWAY_API = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/responses"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/gpt-5.2"),
    ("POST", "/v1/tap/events"),
    ("POST", "/r/default/v1/chat/completions"),
    ("POST", "/r/default/v1/tap/events"),
]
GATEWAY_OPEN = ["/healthz", "/readyz", "/metrics"]


def _ingest_queue(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.llen(constants.QUEUE_INGEST))
    finally:
        client.close()


@pytest.mark.parametrize(
    "headers", [*BAD_CREDENTIALS, pytest.param({"api-key": "wrong"}, id="azure-header")]
)
def test_every_gateway_api_endpoint_rejects_bad_credentials_and_does_nothing(
    gateway: GatewayHandle, sim: SimHandle, redis_url: str, headers: dict[str, str]
) -> None:
    """401 with an OpenAI-style error; no model call made, no event published."""
    calls_before = sim.stats()["requests"]
    for method, path in GATEWAY_API:
        response = httpx.request(
            method, f"{gateway.root_url}{path}", headers=headers, json=_body_for(path), timeout=10
        )
        assert response.status_code == 401, f"{method} {path} -> {response.status_code}"
        error = response.json()["error"]
        assert error["code"] in ("missing_api_key", "invalid_api_key"), error
    assert sim.stats()["requests"] == calls_before
    assert _ingest_queue(redis_url) == 0


def test_the_right_gateway_key_is_accepted_on_the_same_endpoints(
    gateway: GatewayHandle, redis_url: str
) -> None:
    """The control: the issued key passes (so the 401s above are about the credentials)."""
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    for method, path in GATEWAY_API:
        response = httpx.request(
            method, f"{gateway.root_url}{path}", headers=headers, json=_body_for(path), timeout=30
        )
        assert response.status_code in (200, 207), f"{method} {path} -> {response.text[:300]}"


def test_gateway_open_endpoints_are_read_only(gateway: GatewayHandle) -> None:
    """Health, readiness and metrics need no key and carry no request data or secrets."""
    for path in GATEWAY_OPEN:
        response = httpx.get(f"{gateway.root_url}{path}", timeout=10)
        assert response.status_code == 200, path
        assert gateway.api_key not in response.text


# -- Prometheus exporters ------------------------------------------------------------------


def test_prometheus_exporters_accept_no_writes() -> None:
    """The exporter the worker and the controller start answers GET only."""
    from prometheus_client import start_http_server

    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1")
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            response = httpx.request(method, f"http://127.0.0.1:{port}/metrics", timeout=5)
            assert response.status_code in (405, 501), f"{method} -> {response.status_code}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
