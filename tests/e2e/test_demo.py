"""The demo, end to end: `shadowcanary demo --fast` on fresh embedded services.

Runs the demo function itself (what the CLI command calls) in a temporary data
directory, then checks the outcome in Postgres, not in the printed text: the healthy
rollout completed through every step, the regressing one is rolled back, its flag
serves nobody and its audit log names the error-rate trigger.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from flags.embedded import EmbeddedFlags
from shadowcanary.cli.demo import run_demo
from shadowcanary.launcher.embedded_services import EmbeddedServices, ServiceUrls, resolve_urls
from shadowcanary.rollout_records import AuditAction, RolloutStatus
from shadowcanary.settings import Settings, load_settings
from shadowcanary.store.db import make_engine, migrate
from shadowcanary.store.rollouts import RolloutStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture
def embedded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, ServiceUrls]]:
    """Fresh embedded Postgres and Redis in a temporary data dir, stopped afterwards."""
    for name in ("SHADOWCANARY_DATABASE_URL", "SHADOWCANARY_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHADOWCANARY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)  # runbooks/generated/ lands here, not in the repo
    settings = load_settings()
    urls = resolve_urls(settings)
    try:
        migrate(urls.database_url)
        yield settings, urls
    finally:
        EmbeddedServices(settings.data_dir).stop()


def test_demo_fast_completes_one_rollout_and_rolls_back_the_other(
    embedded: tuple[Settings, ServiceUrls], tmp_path: Path
) -> None:
    """Healthy: ADVANCE 10->30->50->100 then COMPLETED; regressing: ROLLBACK on error_rate, 0 %;
    the LLM judge's verdict on one pair is shown."""
    settings, urls = embedded
    out = io.StringIO()
    result = run_demo(settings, urls, fast=True, console=Console(file=out, width=200), run_id="t1")
    assert result.surprises() == [], out.getvalue()[-4000:]

    engine = make_engine(urls.database_url, pool_size=1)
    try:
        store = RolloutStore(engine)
        healthy = store.get("demo-healthy-t1")
        assert healthy.status is RolloutStatus.COMPLETED and healthy.percent == 100
        history = list(reversed(store.history("demo-healthy-t1")))  # oldest first
        # An ADVANCE is logged as an intent (no percent) then as applied (its percent).
        advances = [
            e.to_percent
            for e in history
            if e.action is AuditAction.ADVANCE and e.to_percent is not None
        ]
        assert advances == [10, 30, 50, 100], advances
        assert any(e.action is AuditAction.COMPLETE for e in history)
        assert EmbeddedFlags(engine).read(healthy.plan.flag).effective_percent == 100

        regressed = store.get("demo-regressing-t1")
        assert regressed.status is RolloutStatus.ROLLED_BACK and regressed.percent == 0
        assert EmbeddedFlags(engine).read(regressed.plan.flag).effective_percent == 0
        rollback = next(
            e for e in store.history("demo-regressing-t1") if e.action is AuditAction.ROLLBACK
        )
        assert rollback.to_percent == 0 and rollback.from_percent is not None
        assert rollback.from_percent >= 30  # it regressed only once it reached 30 %
        assert rollback.reason.startswith("error_rate: canary "), rollback.reason
        fired = {t["name"]: t for t in (rollback.decision or {})["triggers"]}
        assert fired["error_rate"]["verdict"] == "harm"
        assert fired["error_rate"]["candidate_value"] > fired["error_rate"]["baseline_value"]
    finally:
        engine.dispose()

    text = out.getvalue()
    assert "shadowcanary rollout history demo-regressing-t1" in text
    # The LLM judge ran on the healthy rollout's pairs; one is shown side by side.
    assert "The LLM judge on one pair (demo-healthy-t1)" in text, text[-4000:]
    assert "verdict, in both orders:" in text, text[-4000:]
    assert (tmp_path / "runbooks" / "generated" / "demo-regressing-t1.md").exists()
