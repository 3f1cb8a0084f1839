"""Tenant isolation: one tenant's data never appears in another tenant's report or name.

Two tenants share one rollout (two services behind the same gateway route). A report
made for one tenant (``shadowcanary report R --tenant T``, every format) shows that
tenant's prompts, answers, event ids and figures and none of the other's; and through
the gateway's ingest endpoint a service cannot file events under another tenant's name.
The figures themselves are checked number by number in
tests/integration/test_report_tenant.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from shadowcanary import constants
from shadowcanary.cli.report import report_command
from shadowcanary.launcher.gateway import GatewayHandle
from shadowcanary.plan import RolloutPlan
from shadowcanary.report import load_report, render_html, render_json, render_markdown
from shadowcanary.settings import load_settings
from shadowcanary.store.db import make_engine
from shadowcanary.store.inputs import AssessedCapture
from shadowcanary.store.repository import Store
from shadowcanary.store.rollouts import RolloutStore
from shadowcanary.tap.publisher import decode_ingest_message
from shadowcanary.testing.factories import make_event, make_flags, make_replay
from shadowcanary.testing.poll import wait_until

pytestmark = pytest.mark.integration

ROLLOUT = "shared-rollout"
SECRETS = {"alpha": "ALPHA-ONLY-7f3a", "bravo": "BRAVO-ONLY-91c2"}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=2)
    yield engine
    engine.dispose()


def _seed(engine: Engine) -> dict[str, list[str]]:
    """Both tenants' calls in one rollout, each prompt carrying its tenant's marker.

    Returns each tenant's event ids. Alpha's calls are slow (9 s), bravo's fast (0.1 s).
    """
    ids: dict[str, list[str]] = {tenant: [] for tenant in SECRETS}
    now = datetime.now(UTC)
    plan = RolloutPlan(name=ROLLOUT, flag="shared-flag", baseline="gpt-5.2", candidate="gpt-5.5")
    RolloutStore(engine).create_rollout(plan, now=now - timedelta(minutes=30), actor="test")
    store = Store(engine)
    for i, (tenant, marker) in enumerate(sorted(SECRETS.items()) * 3):
        event = make_event(
            tenant=tenant,
            rollout=ROLLOUT,
            started_at=now - timedelta(minutes=20 - i),
            latency_ms=9_000.0 if tenant == "alpha" else 100.0,
            request={
                "messages": [{"role": "user", "content": f"{marker}: my order {i} is late"}],
            },
            response={"text": f"{marker} answer {i}", "finish_reason": "stop"},
        )
        ids[tenant].append(event.event_id)
        store.insert_captures(
            [AssessedCapture(event=event, flags=make_flags(), cost_usd=0.001)], received_at=now
        )
        # Every pair is "divergent": with 50 pairs asked for, all of them would show.
        replay = make_replay(event.event_id, lexical_similarity=0.1 + i / 100)
        store.record_replays([replay], recorded_at=now)
    return ids


def test_a_tenants_report_shows_none_of_another_tenants_texts(engine: Engine) -> None:
    """html, md and json for tenant alpha hold alpha's marker, ids and figures, not bravo's."""
    ids = _seed(engine)
    settings = load_settings({})
    now = datetime.now(UTC)
    for tenant, marker in SECRETS.items():
        others = [m for t, m in SECRETS.items() if t != tenant]
        other_ids = [i for t, tenant_ids in ids.items() if t != tenant for i in tenant_ids]
        data = load_report(engine, settings, ROLLOUT, now=now, pairs=50, tenant=tenant)
        assert len(data.divergent) == 3
        # The figures are this tenant's calls: three, all of them 9 s (alpha) or 0.1 s.
        assert data.arms["baseline"].requests == 3
        assert data.arms["baseline"].latency_mean_ms == (9_000.0 if tenant == "alpha" else 100.0)
        assert data.similarity.candidate_n == 3
        for text in (render_html(data), render_markdown(data), render_json(data)):
            assert marker in text
            assert f"Tenant {tenant}" in text or f'"tenant": "{tenant}"' in text
            for other in others:
                assert other not in text, f"{other} leaked into {tenant}'s report"
            assert not [i for i in other_ids if i in text], f"event ids leaked to {tenant}"
    # The operator's report (no tenant) shows both: the filter is what isolates.
    everything = render_markdown(load_report(engine, settings, ROLLOUT, now=now, pairs=50))
    assert all(marker in everything for marker in SECRETS.values())


def test_the_report_command_filters_by_tenant(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``shadowcanary report R --tenant T`` end to end (the command an operator runs)."""
    _seed(engine)
    monkeypatch.setenv("SHADOWCANARY_DATABASE_URL", database_url)
    result = CliRunner().invoke(
        _app(), [ROLLOUT, "--tenant", "bravo", "--format", "md", "--pairs", "50"]
    )
    assert result.exit_code == 0, result.output
    assert SECRETS["bravo"] in result.stdout
    assert SECRETS["alpha"] not in result.stdout


def _app():  # type: ignore[no-untyped-def]
    import typer

    app = typer.Typer()
    app.command()(report_command)
    return app


def test_a_gateway_service_cannot_file_events_under_another_tenant(
    gateway: GatewayHandle,
    redis_url: str,
) -> None:
    """An event naming another tenant is rejected; one without a tenant gets the caller's."""
    import redis

    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    foreign = make_event(tenant="bravo").model_dump(mode="json")
    unnamed = make_event().model_dump(mode="json")
    unnamed.pop("tenant")
    own = make_event(tenant="test-service").model_dump(mode="json")
    response = httpx.post(
        f"{gateway.base_url}/tap/events", json=[foreign, unnamed, own], headers=headers, timeout=10
    )
    assert response.status_code == 207, response.text
    answer = response.json()
    assert answer["accepted"] == 2
    assert [r["index"] for r in answer["rejected"]] == [0]
    assert "not this key's service 'test-service'" in answer["rejected"][0]["error"]

    client = redis.Redis.from_url(redis_url)
    try:
        published: list[dict[str, object]] = []

        def drained() -> bool:
            while (raw := client.lpop(constants.QUEUE_INGEST)) is not None:
                published.extend(decode_ingest_message(raw))
            return len(published) >= 2

        wait_until(drained, timeout_s=10, what="the gateway's tap to publish")
    finally:
        client.close()
    assert {e["event_id"]: e["tenant"] for e in published} == {
        unnamed["event_id"]: "test-service",
        own["event_id"]: "test-service",
    }
