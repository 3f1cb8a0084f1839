"""Services started while Unleash is down, with no cached flags: baseline, then the flag.

Guarantee 2.9. A tap-side service (``ModelRouter`` on ``UnleashClientEvaluator``) and
the gateway process start while the real Unleash server is stopped and no flag cache
exists on disk. Both reach Unleash through a loopback proxy that accepts and never
answers (a hung Unleash), so a start or a request path that waited on Unleash would
take the SDK's request timeout and the time bounds below would catch it: ``start()``
and the gateway's readiness are bounded well under one timeout. Every user must get
the baseline model, at once. When Unleash comes back with the flag at 100 %, both pick
it up within their refresh interval. The gateway holds only the client token (no admin
token in its environment), and its log says once that Unleash is unreachable (no
traceback, however many polls fail) and once that it is back.
The other half of 2.9 (a service that had fetched the flags keeps them through an
outage) is proved by test_unleash_outage.py; here, a service restarted during a
second outage evaluates the copy the SDK kept on disk.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path

import openai
import pytest

from flags.base import FlagSpec
from flags.router import ModelRouter, UnleashClientEvaluator
from flags.unleash import UnleashFlags
from shadowcanary.launcher.gateway import GatewayHandle, run_gateway
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.tcp_proxy import tcp_proxy
from shadowcanary.testing.unleash import UnleashHandle
from tests.gateway.conftest import SALT, base_env

pytestmark = pytest.mark.integration

BASELINE, CANDIDATE = "gpt-5.2", "gpt-5.5"
REFRESH_S = 1  # both services poll Unleash every second
SDK_TIMEOUT_S = 2  # the tap-side service's request timeout: what one wait on Unleash costs
# start() hands registering and fetching to the SDK's scheduler and returns (measured:
# ~1 ms; it used to be two timeouts, 4.0 s): the test checks that no fetch had failed yet.
# The gateway's request timeout to Unleash. Before its start stopped waiting, a hung
# Unleash held its readiness for two of these (measured: 18 s with 8 s, from spawn);
# now it is ready before its first request to Unleash has timed out.
GATEWAY_SDK_TIMEOUT_S = 10
# All 2,000 routing decisions together: under one SDK timeout, so not one of them
# waited on Unleash (measured: 0.2-0.4 s at load average 7-10, i.e. local evaluation).
ROUTE_BOUND_S = SDK_TIMEOUT_S
PICKUP_MARGIN_S = 4.0  # beyond the refresh interval, once Unleash is healthy
USERS = [f"cold-user-{i}" for i in range(2000)]
GATEWAY_USERS = USERS[:20]


def _evaluator(port: int, unleash: UnleashHandle, cache: Path) -> UnleashClientEvaluator:
    """The tap-side service's flag client, polling Unleash through loopback ``port``."""
    return UnleashClientEvaluator(
        f"http://127.0.0.1:{port}",
        unleash.backend_token,
        refresh_interval_s=REFRESH_S,
        request_timeout_s=SDK_TIMEOUT_S,
        send_metrics=False,
        cache_directory=str(cache),
    )


def _router(evaluator: UnleashClientEvaluator, flag: str) -> ModelRouter:
    return ModelRouter(evaluator, flag, BASELINE, stickiness="userId", stickiness_salt=SALT)


def _routed(router: ModelRouter) -> set[str]:
    return {router.model_for({"user_id": user}) for user in USERS}


def _gateway_models(client: openai.OpenAI) -> set[str]:
    return {
        client.chat.completions.create(
            model=BASELINE, messages=[{"role": "user", "content": "hi"}], user=user
        ).model
        for user in GATEWAY_USERS
    }


def _gateway_env(
    redis_url: str, database_url: str, sim: SimHandle, unleash: UnleashHandle, port: int, flag: str
) -> dict[str, str]:
    """The gateway's settings: Unleash through loopback ``port``, the client token only."""
    env = base_env(redis_url, database_url, sim)
    env.update(
        {
            "SHADOWCANARY_FLAGS": "unleash",
            "SHADOWCANARY_UNLEASH_URL": f"http://127.0.0.1:{port}",
            "SHADOWCANARY_GATEWAY__UNLEASH_BACKEND_TOKEN": unleash.backend_token,
            "SHADOWCANARY_GATEWAY__UNLEASH_REQUEST_TIMEOUT_S": str(GATEWAY_SDK_TIMEOUT_S),
            "SHADOWCANARY_GATEWAY__FLAG_REFRESH_S": str(REFRESH_S),
            "SHADOWCANARY_GATEWAY__ROUTES": json.dumps(
                {"default": {"rollout": "cold-start", "flag": flag}}
            ),
            # The SDK's on-disk flag cache lives under the user cache directory: an
            # empty one means this gateway has never fetched any flag.
            "XDG_CACHE_HOME": tempfile.mkdtemp(prefix="sc-cold-cache-"),
        }
    )
    return env


def _client(gateway: GatewayHandle) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)


def test_services_started_during_an_unleash_outage_serve_the_baseline_then_take_the_flag(
    unleash: UnleashHandle,
    redis_url: str,
    database_url: str,
    sim: SimHandle,
    tmp_path: Path,
) -> None:
    """Never fetched: everyone on the baseline at once; the flag lands once Unleash is up."""
    flag = f"cold-start-{uuid.uuid4().hex[:8]}"
    spec = FlagSpec(flag, "default", "development", "userId", BASELINE, CANDIDATE)
    with UnleashFlags(unleash.url, unleash.admin_token) as admin:
        admin.ensure_flag(spec)
        assert admin.set_rollout(flag, 100).effective_percent == 100
    empty_cache = tmp_path / "flag-cache"
    empty_cache.mkdir()
    unleash.stop()
    try:
        with tcp_proxy(unleash.port) as hung_unleash:
            hung_unleash.set_fault(hang=True)
            evaluator = _evaluator(hung_unleash.port, unleash, empty_cache)  # nothing cached
            evaluator.start()
            # Had start() waited on Unleash, its first fetch would have hung for a whole
            # SDK timeout and failed (an outage recorded) before start() returned.
            outages_at_start = evaluator.reachability.outages
            gateway_env = _gateway_env(
                redis_url, database_url, sim, unleash, hung_unleash.port, flag
            )
            with (
                closing(evaluator),
                run_gateway(gateway_env) as gateway,  # returns once /readyz answers
            ):
                # Likewise the gateway: ready before its first request to Unleash failed.
                log_at_ready = gateway.log_text()
                router = _router(evaluator, flag)
                began = time.perf_counter()
                during_outage = _routed(router)
                route_s = time.perf_counter() - began
                client = _client(gateway)
                gateway_during_outage = _gateway_models(client)
                # The server starts behind the still hanging proxy (returns once /health
                # answers): its start overlaps the outage instead of lengthening the test.
                unleash.start()
                # Several requests to Unleash have hung and failed (both services'
                # registrations and fetches, the polls after them) before it returns.
                wait_until(
                    lambda: (
                        gateway.log_text().count("unleash_unreachable") >= 1
                        and evaluator.reachability.reachable is False
                    ),
                    timeout_s=GATEWAY_SDK_TIMEOUT_S + 10,
                    interval_s=0.1,
                    what="both services to notice that Unleash does not answer",
                )
                wait_until(
                    lambda: hung_unleash.stats.hung >= 5,
                    timeout_s=2 * GATEWAY_SDK_TIMEOUT_S + 10,
                    interval_s=0.1,
                    what="more requests to the hung Unleash to fail",
                )
                hung_during_outage = hung_unleash.stats.hung

                hung_unleash.clear()  # Unleash answers: the proxy forwards new connections
                hung_unleash.drop_connections()  # and the requests still hanging fail now
                healthy = time.monotonic()
                wait_until(
                    lambda: _routed(router) == {CANDIDATE},
                    timeout_s=REFRESH_S + SDK_TIMEOUT_S + PICKUP_MARGIN_S + 10,
                    interval_s=0.1,
                    what="the service to pick up the 100 % flag",
                )
                service_pickup_s = time.monotonic() - healthy
                wait_until(
                    lambda: _gateway_models(client) == {CANDIDATE},
                    timeout_s=2 * REFRESH_S + PICKUP_MARGIN_S + 10,
                    interval_s=0.1,
                    what="the gateway to pick up the 100 % flag",
                )
                gateway_pickup_s = time.monotonic() - healthy
                wait_until(
                    lambda: "unleash_reachable_again" in gateway.log_text(),
                    timeout_s=10,
                    interval_s=0.1,
                    what="the gateway to log that Unleash answers again",
                )
                gateway_log = gateway.log_text()
            service_outages = evaluator.reachability.outages
            # Restarted during a second outage: the copy the SDK kept on disk serves.
            hung_unleash.set_fault(hang=True)
            again = _evaluator(hung_unleash.port, unleash, empty_cache)
            again.start()
            outages_at_restart = again.reachability.outages
            with closing(again):
                after_restart = _routed(_router(again, flag))
    finally:
        unleash.start()

    # Unleash hangs, nothing cached: every user on the baseline, without waiting on Unleash.
    assert during_outage == {BASELINE}
    assert gateway_during_outage == {BASELINE}
    assert outages_at_start == 0, "start() returned only after a fetch from Unleash failed"
    assert "unleash_unreachable" not in log_at_ready, log_at_ready[-3000:]
    assert route_s < ROUTE_BOUND_S, f"{len(USERS)} routing decisions took {route_s:.2f}s"
    # Unleash back with the flag at 100 %: picked up within the refresh interval (+ margin;
    # the gateway reuses each user's answer for up to one interval).
    assert service_pickup_s < REFRESH_S + SDK_TIMEOUT_S + PICKUP_MARGIN_S, (
        f"{service_pickup_s:.1f}s"
    )
    assert gateway_pickup_s < 2 * REFRESH_S + PICKUP_MARGIN_S, f"{gateway_pickup_s:.1f}s"
    # One outage, one warning and one all-clear, however many requests failed; the
    # SDK's tracebacks stay at debug, out of an info-level log.
    assert hung_during_outage >= 5
    assert gateway_log.count("unleash_unreachable") == 1, gateway_log[-3000:]
    assert gateway_log.count("unleash_reachable_again") == 1, gateway_log[-3000:]
    assert "Traceback" not in gateway_log, gateway_log[-3000:]
    assert "feature fetch failed" not in gateway_log, gateway_log[-3000:]
    # A poll hanging longer than the interval makes the scheduler skip runs: at debug too.
    assert "maximum number of running instances" not in gateway_log, gateway_log[-3000:]
    assert service_outages == 1
    # The gateway held the client token only (its environment had no admin token).
    assert "SHADOWCANARY_UNLEASH_ADMIN_TOKEN" not in gateway_env
    assert unleash.backend_token not in gateway_log
    # A service restarted while Unleash hangs again starts at once from its disk copy.
    assert outages_at_restart == 0, "restart waited for a fetch from the hung Unleash"
    assert after_restart == {CANDIDATE}
