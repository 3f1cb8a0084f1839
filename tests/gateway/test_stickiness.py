"""Routing by the flag: sticky per user, shares as the flag says, the same arms as the tap."""

from __future__ import annotations

import httpx
import pytest

from flags.router import EmbeddedEvaluator, ModelRouter
from shadowcanary.launcher.gateway import GatewayHandle
from shadowcanary.store.db import make_engine
from shadowcanary.testing.poll import wait_until
from tests.gateway.conftest import FLAG, SALT, set_flag

pytestmark = pytest.mark.integration

USERS = [f"customer-{i}" for i in range(1000)]


def _served_by(client: httpx.Client, gateway: GatewayHandle, user: str, i: int) -> str:
    """Ask as ``user`` (by header or by the body's ``user`` field); the model that answered."""
    body = {"model": "gpt-5.2", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    if i % 2:
        headers["X-User-Id"] = user
    else:
        body["user"] = user
    response = client.post(f"{gateway.base_url}/chat/completions", json=body, headers=headers)
    assert response.status_code == 200, response.text
    model: str = response.json()["model"]
    return model


def _arms(gateway: GatewayHandle, users: list[str], offset: int = 0) -> dict[str, str]:
    with httpx.Client(timeout=30) as client:
        return {u: _served_by(client, gateway, u, i + offset) for i, u in enumerate(users)}


def _tap_router(database_url: str) -> tuple[ModelRouter, EmbeddedEvaluator]:
    """The router a tapped Python service would use, on the same flag and salt."""
    evaluator = EmbeddedEvaluator(make_engine(database_url, pool_size=1), refresh_s=60).start()
    router = ModelRouter(evaluator, FLAG.name, "gpt-5.2", stickiness="userId", stickiness_salt=SALT)
    return router, evaluator


def test_users_stick_to_one_arm_at_the_flags_share_and_a_step_moves_only_new_users(
    gateway: GatewayHandle, database_url: str
) -> None:
    """30 %: sticky, ~30 % candidate, same arm as the tap; 50 %: only baseline users move."""
    set_flag(database_url, 30)
    router, evaluator = _tap_router(database_url)
    try:
        expected = {u: router.model_for({"user_id": u}) for u in USERS}
        probe = USERS[:50]
        wait_until(
            lambda: _arms(gateway, probe) == {u: expected[u] for u in probe},
            timeout_s=20,
            what="the gateway to route by the 30 % flag",
        )
        first = _arms(gateway, USERS)
        again = _arms(gateway, USERS, offset=1)  # header users now send the body field
        assert first == again  # sticky, whichever way the id is sent
        assert first == expected  # exactly the tap's arms (same salt, same engine)
        share = sum(m == "gpt-5.5" for m in first.values()) / len(USERS)
        assert 0.25 <= share <= 0.35

        set_flag(database_url, 50)
        evaluator.refresh()
        expected_after = {u: router.model_for({"user_id": u}) for u in USERS}
        wait_until(
            lambda: _arms(gateway, probe) == {u: expected_after[u] for u in probe},
            timeout_s=20,
            what="the gateway to route by the 50 % flag",
        )
        after = _arms(gateway, USERS)
    finally:
        evaluator.close()
    assert after == expected_after
    moved = {u for u in USERS if first[u] != after[u]}
    assert all(first[u] == "gpt-5.2" and after[u] == "gpt-5.5" for u in moved)
    assert all(after[u] == "gpt-5.5" for u in USERS if first[u] == "gpt-5.5")
    share_after = sum(m == "gpt-5.5" for m in after.values()) / len(USERS)
    assert 0.45 <= share_after <= 0.55
    assert 0.15 <= len(moved) / len(USERS) <= 0.25


def test_calls_without_a_user_id_go_to_the_baseline(
    gateway: GatewayHandle, database_url: str
) -> None:
    """No id to stick on: never flipped at random, always the baseline (even at 100 %)."""
    set_flag(database_url, 100)
    wait_until(
        lambda: _arms(gateway, ["someone"]) == {"someone": "gpt-5.5"},
        timeout_s=20,
        what="the gateway to route by the 100 % flag",
    )
    with httpx.Client(timeout=30) as client:
        for _ in range(20):
            response = client.post(
                f"{gateway.base_url}/chat/completions",
                json={"model": "gpt-5.2", "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {gateway.api_key}"},
            )
            assert response.json()["model"] == "gpt-5.2"
