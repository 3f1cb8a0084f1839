"""The gateway routes by a flag on a real Unleash server (UnleashClient, polling).

Least privilege: the gateway only evaluates flags, so it is given the client (backend)
token and never the admin token; without the client token it refuses to start and
names the variable to set. While Unleash is unreachable, the gateway's log says so
once, without a traceback, and once when it answers again.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from flags.base import FlagSpec
from flags.unleash import UnleashFlags
from shadowcanary.launcher.gateway import GatewayFailed, GatewayHandle, run_gateway
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.tcp_proxy import tcp_proxy
from shadowcanary.testing.unleash import UnleashHandle
from tests.gateway.conftest import ROLLOUT, base_env

pytestmark = pytest.mark.integration


def _model_for(gateway: GatewayHandle, user: str) -> str:
    response = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "gpt-5.2", "messages": [{"role": "user", "content": "hi"}], "user": user},
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    model: str = response.json()["model"]
    return model


def test_an_unleash_rollout_step_and_rollback_reach_the_gateway(
    unleash: UnleashHandle,
    redis_url: str,
    database_url: str,
    sim: SimHandle,
) -> None:
    """100 % in Unleash: the candidate answers; disabled (rollback): the baseline again.

    The gateway has the client token only: no admin token in its environment.
    """
    spec = FlagSpec(
        name=f"gw-unleash-{uuid.uuid4().hex[:8]}",
        project="default",
        environment="development",
        stickiness="userId",
        baseline_model="gpt-5.2",
        candidate_model="gpt-5.5",
    )
    env = base_env(redis_url, database_url, sim)
    env.update(
        {
            "SHADOWCANARY_FLAGS": "unleash",
            "SHADOWCANARY_UNLEASH_URL": unleash.url,
            "SHADOWCANARY_GATEWAY__UNLEASH_BACKEND_TOKEN": unleash.backend_token,
            "SHADOWCANARY_GATEWAY__FLAG_REFRESH_S": "1",
            "SHADOWCANARY_GATEWAY__ROUTES": json.dumps(
                {"default": {"rollout": ROLLOUT, "flag": spec.name}}
            ),
        }
    )
    assert not any("ADMIN" in name for name in env)
    with UnleashFlags(unleash.url, unleash.admin_token) as backend:
        backend.ensure_flag(spec)
        backend.set_rollout(spec.name, 100)
        with run_gateway(env) as gateway:
            wait_until(
                lambda: _model_for(gateway, "unleash-user") == "gpt-5.5",
                timeout_s=30,
                what="the gateway to see the 100 % step",
            )
            backend.disable(spec.name)
            wait_until(
                lambda: _model_for(gateway, "unleash-user") == "gpt-5.2",
                timeout_s=30,
                what="the gateway to see the rollback",
            )
            assert unleash.backend_token not in gateway.log_text()


def test_a_gateway_without_the_client_token_names_the_variable_to_set(
    unleash: UnleashHandle, redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """Unleash routing with no client token: the gateway does not start and says what to set."""
    env = base_env(redis_url, database_url, sim)
    env.update(
        {
            "SHADOWCANARY_FLAGS": "unleash",
            "SHADOWCANARY_UNLEASH_URL": unleash.url,
            # An admin token does not stand in for the client token.
            "SHADOWCANARY_UNLEASH_ADMIN_TOKEN": unleash.admin_token,
        }
    )
    with pytest.raises(GatewayFailed) as failed, run_gateway(env, startup_timeout_s=20):
        pass
    message = str(failed.value)
    assert "no Unleash client token" in message
    assert "SHADOWCANARY_GATEWAY__UNLEASH_BACKEND_TOKEN" in message
    assert unleash.admin_token not in message


def test_an_unleash_outage_is_one_warning_and_one_all_clear_in_the_gateway_log(
    unleash: UnleashHandle, redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """Refused polls for several intervals: one warning, no traceback; back: one info line.

    The gateway had fetched the flags, so its polls after the outage are answered
    304 Not Modified (no ETag header, no new state): the all-clear must come anyway.
    """
    spec = FlagSpec(
        f"gw-outage-{uuid.uuid4().hex[:8]}",
        "default",
        "development",
        "userId",
        "gpt-5.2",
        "gpt-5.5",
    )
    with UnleashFlags(unleash.url, unleash.admin_token) as backend:
        backend.ensure_flag(spec)
        backend.set_rollout(spec.name, 100)
    with tcp_proxy(unleash.port) as link:
        env = base_env(redis_url, database_url, sim)
        env.update(
            {
                "SHADOWCANARY_FLAGS": "unleash",
                "SHADOWCANARY_UNLEASH_URL": f"http://127.0.0.1:{link.port}",
                "SHADOWCANARY_GATEWAY__UNLEASH_BACKEND_TOKEN": unleash.backend_token,
                "SHADOWCANARY_GATEWAY__FLAG_REFRESH_S": "1",
                "SHADOWCANARY_GATEWAY__ROUTES": json.dumps(
                    {"default": {"rollout": ROLLOUT, "flag": spec.name}}
                ),
            }
        )
        with run_gateway(env) as gateway:
            wait_until(
                lambda: _model_for(gateway, "outage-user") == "gpt-5.5",
                timeout_s=30,
                what="the gateway to fetch the 100 % flag",
            )
            link.set_fault(refuse=True)
            refused_before = link.stats.refused
            wait_until(
                lambda: link.stats.refused - refused_before >= 4,
                timeout_s=30,
                what="four refused requests to Unleash",
            )
            assert _model_for(gateway, "outage-user") == "gpt-5.5"  # the last flags it had
            link.clear()
            wait_until(
                lambda: "unleash_reachable_again" in gateway.log_text(),
                timeout_s=30,
                what="the gateway to log that Unleash answers again",
            )
            log_text = gateway.log_text()
    assert log_text.count("unleash_unreachable") == 1, log_text[-3000:]
    assert log_text.count("unleash_reachable_again") == 1, log_text[-3000:]
    assert "Traceback" not in log_text, log_text[-3000:]
    assert "feature fetch failed" not in log_text, log_text[-3000:]
    assert unleash.backend_token not in log_text
