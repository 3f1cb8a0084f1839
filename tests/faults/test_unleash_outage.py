"""Unleash stops mid-rollout: services keep routing, the controller holds, a rollback waits."""

from __future__ import annotations

import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flags.router import UnleashClientEvaluator
from flags.unleash import UnleashFlags
from shadowcanary.controller.operator import Operator
from shadowcanary.errors import ServiceUnavailable
from shadowcanary.events import hash_stickiness_key
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.rollout_records import AuditAction, RolloutStatus
from shadowcanary.store.db import make_engine
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.unleash import UnleashHandle
from tests.faults.stack import (
    assert_balanced,
    controller_process,
    outage_s,
    settle,
    steady_traffic,
)
from tests.integration.controller_harness import FakeClock, ports_for, small_plan, webhook_sink

pytestmark = pytest.mark.integration

PROBES = [hash_stickiness_key(f"probe-{i}", "fault-salt") for i in range(2000)]


def _share(evaluator: UnleashClientEvaluator, flag: str) -> float:
    """Percent of probe users the service would send to the candidate right now."""
    hits = sum(evaluator.candidate_for(flag, key) is not None for key in PROBES)
    return 100.0 * hits / len(PROBES)


def _steady_share(evaluator: UnleashClientEvaluator, flag: str) -> float:
    """The share once three reads over two client refreshes agree."""
    seen: list[float] = []

    def steady() -> float | None:
        seen.append(_share(evaluator, flag))
        return seen[-1] if len(seen) >= 3 and len(set(seen[-3:])) == 1 else None

    result: float = wait_until(steady, timeout_s=20, interval_s=1.0, what="a steady share")
    return result


def test_unleash_down_services_keep_last_state_controller_holds_rollback_applied_on_return(
    unleash: UnleashHandle,
    worker_env: dict[str, str],
    redis_url: str,
    database_url: str,
    sim: SimHandle,
    runbooks_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Outage at 10 %: routing unchanged, HOLD + one alert, the rollback lands on return."""
    engine = make_engine(database_url)
    rollout = f"fault-unleash-{uuid.uuid4().hex[:8]}"
    flag = f"{rollout}-flag"
    flags = UnleashFlags(unleash.url, unleash.admin_token, timeout_s=2)
    controller_env = {
        "SHADOWCANARY_DATABASE_URL": database_url,
        "SHADOWCANARY_FLAGS": "unleash",
        "SHADOWCANARY_UNLEASH_URL": unleash.url,
        "SHADOWCANARY_UNLEASH_ADMIN_TOKEN": unleash.admin_token,
    }
    # The operator's commands run with the controller's settings (as the runbook says).
    for key, value in controller_env.items():
        monkeypatch.setenv(key, value)
    clock = FakeClock(datetime.now(UTC))
    with webhook_sink() as sink:
        operator = Operator(ports_for(engine, database_url, flags, clock, actor="cli:sre"))
        operator.start(small_plan(rollout, flag, webhook=sink.url, triggers="  p99_latency: off"))
        try:
            with (
                UnleashClientEvaluator(
                    unleash.api_url,
                    unleash.backend_token,
                    refresh_interval_s=1,
                    send_metrics=False,
                    cache_directory=tempfile.mkdtemp(prefix="sc-unleash-cache-"),
                ) as evaluator,
                run_worker(worker_env) as worker,
                controller_process(controller_env, rollout, tmp_path / "c.log") as controller,
                steady_traffic(redis_url, rollout, rate=20) as traffic,
            ):
                wait_until(
                    lambda: flags.read(flag).effective_percent == 10 and _share(evaluator, flag),
                    timeout_s=30,
                    what="services routing ~10 % to the candidate",
                )
                before = _steady_share(evaluator, flag)
                unleash.stop()
                down = datetime.now(UTC)
                wait_until(
                    lambda: any("HOLD" in t and "is unreachable" in t for t in sink.texts()),
                    timeout_s=20,
                    what="the controller's alert",
                )
                clock.now = datetime.now(UTC)
                with pytest.raises(ServiceUnavailable):
                    operator.rollback(rollout, "on-call: rolling back during the Unleash outage")
                during = _share(evaluator, flag)
                # The rest of the outage (the fault itself, not a wait for an effect).
                # Half the data-path outage: the issue sets no length for this one, and
                # the controller holds from the first failed tick.
                time.sleep(max(0.0, outage_s() / 2 - (datetime.now(UTC) - down).total_seconds()))
                at_end_of_outage = _share(evaluator, flag)
                up = datetime.now(UTC)
                unleash.start()
                healthy = datetime.now(UTC)
                wait_until(
                    lambda: flags.read(flag).effective_percent == 0,
                    timeout_s=30,
                    what="the rollback written to Unleash",
                )
                applied_s = (datetime.now(UTC) - healthy).total_seconds()
                wait_until(
                    lambda: _share(evaluator, flag) == 0,
                    timeout_s=15,
                    what="services routing everyone to the baseline",
                )
                stats = traffic.stop()
                books = settle(engine, rollout, stats.published, diagnostics=worker.output)
                held = controller.output().count("tick held: dependency unreachable")
        finally:
            unleash.start()
        store = ports_for(engine, database_url, flags, clock).store
        history = store.history(rollout)
        texts = sink.texts()

    # Services: the last known flag state, unchanged through the outage.
    assert during == before and at_end_of_outage == before
    # Controller: held and retried (many ticks), alerted once, never moved the flag meanwhile.
    assert held >= 3
    assert sum("HOLD" in t and "is unreachable" in t for t in texts) == 1, texts
    outage_entries = [e for e in history if down <= e.at <= up]
    assert all(e.to_percent is None for e in outage_entries), outage_entries
    assert not any(e.action is AuditAction.ADVANCE for e in outage_entries)
    # The rollback: recorded at once, applied as soon as Unleash answered.
    assert store.get(rollout).status is RolloutStatus.ROLLED_BACK
    asked = next(e for e in history if e.action is AuditAction.ROLLBACK and e.actor == "cli:sre")
    assert asked.to_percent is None and down <= asked.at <= up
    assert any(e.to_percent == 0 and e.at >= up for e in history)
    assert applied_s < 5, f"the rollback reached Unleash {applied_s:.1f}s after it was back"
    # The runbook on disk tells on-call how to roll back by hand while Unleash is away.
    runbook = (runbooks_dir / f"{rollout}.md").read_text()
    assert f"shadowcanary rollout rollback {rollout}" in runbook
    assert "Unleash UI" in runbook and '"$ENV_URL/off"' in runbook
    alert = (runbooks_dir / "alerts" / "unleash-unreachable.md").read_text()
    assert "shadowcanary rollout rollback" in alert
    assert_balanced(books, traffic.emitted, stats)
