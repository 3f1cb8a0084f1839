"""The shadow gate before 10 % and the watch after 100 %, end to end.

Real Unleash server and UnleashClient routing, the simulator as both models, the tap,
Redis, a Celery worker (ingest, shadow replays, rollback-target replays), Postgres.
Time is a ``FakeClock`` shared by the controller and the tap, as in test_rollout_e2e.py.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import openai
import pytest
from sqlalchemy import Engine

from flags.router import ModelRouter, UnleashClientEvaluator
from runbooks.generator import RunbookInputs, render_runbook
from shadowcanary.controller.views import status_data
from shadowcanary.judge.decide import Decision, DecisionInputs, DecisionKind
from shadowcanary.judge.phases import ROLLBACK_TARGET_UNHEALTHY
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.rollout_records import AuditAction, RolloutStatus
from shadowcanary.settings import TapSettings
from shadowcanary.shadow_results import ReplayKind
from shadowcanary.store.repository import Store
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.openai_wrapper import tap_openai
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.unleash import UnleashHandle
from tests.integration.controller_harness import T0, FakeClock, small_plan
from tests.integration.test_rollout_e2e import (
    Traffic,
    controller,
    engine,  # noqa: F401 - fixture
    tick_at,
    unleash_flags,
)

pytestmark = pytest.mark.integration

GATE = "{min_comparisons: 40, min_duration: 2m, deadline: 1h}"
WATCH = "{duration: 10m, min_baseline_replays: 20}"
# Only what each test is about: no p99 freeze (no pre-canary minute needed at the watch)
# and, for the watch, no shadow triggers (a 50 % step has too few shadow pairs to certify).
NO_P99 = "  p99_latency: off"
WATCH_TRIGGERS = "  p99_latency: off\n  quality: off\n  shadow_invalid_json: off"


@pytest.fixture
def live(
    unleash: UnleashHandle,
    sim: SimHandle,
    worker_env: dict[str, str],
    redis_url: str,
    engine: Engine,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Traffic, FakeClock]]:
    """A worker replaying half the candidate's calls to the baseline, routing by UnleashClient."""
    clock = FakeClock()
    monkeypatch.setattr("shadowcanary.tap.openai_wrapper.now_utc", clock)
    name = f"phase-{uuid.uuid4().hex[:8]}"
    env = {
        **worker_env,
        "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0.3",
        "SHADOWCANARY_REPLAY__ROLLBACK_TARGET_RATE": "0.5",
        "SHADOWCANARY_REPLAY__MAX_ATTEMPTS": "2",  # a failing baseline is given up fast
    }
    try:
        with (
            run_worker(env),
            UnleashClientEvaluator(
                unleash.api_url,
                unleash.backend_token,
                refresh_interval_s=1,
                send_metrics=False,
                cache_directory=tempfile.mkdtemp(prefix="sc-unleash-cache-"),
            ) as evaluator,
            Tap(TapSettings(flush_interval_s=0.02), redis_url) as tap,
        ):
            router = ModelRouter(evaluator, f"{name}-flag", "gpt-5.2", stickiness="userId")
            client = tap_openai(
                openai.OpenAI(base_url=sim.base_url, api_key=sim.api_key, max_retries=0),
                tap,
                route="support.chat",
                rollout=name,
                model_router=router,
            )
            yield Traffic(client, evaluator, Store(engine), name, f"{name}-flag", clock), clock
    finally:
        sim.set_profile("gpt-5.5", error_rate=0.0, divergence=0.0)
        sim.set_profile("gpt-5.2", error_rate=0.0)


def _target_replays(traffic: Traffic) -> int:
    """Rollback-target replays (live candidate calls sent to the baseline) recorded so far."""
    until = traffic.clock.now + timedelta(days=1)
    totals = traffic.store.shadow_totals(traffic.rollout, T0, until)
    return totals[ReplayKind.ROLLBACK_TARGET].replays


def _watch_minute(traffic: Traffic, minute: int, calls: int, replays: int) -> None:
    """A minute of traffic at 100 %; waits for ``replays`` more rollback-target replays."""
    before = _target_replays(traffic)
    traffic.minute(minute, calls)
    wait_until(
        lambda: _target_replays(traffic) >= before + replays,
        timeout_s=60,
        what=f"{replays} rollback-target replays of minute {minute}",
    )


def _replays_exactly(decision: dict[str, Any] | None, inputs: dict[str, Any] | None) -> bool:
    """The audit row's inputs recompute its decision exactly."""
    assert decision is not None and inputs is not None
    return DecisionInputs.from_json(json.dumps(inputs)).decide() == Decision.from_dict(decision)


def test_the_candidate_is_not_exposed_until_the_shadow_gate_certifies(
    live: tuple[Traffic, FakeClock],
    engine: Engine,  # noqa: F811
    database_url: str,
    unleash: UnleashHandle,
) -> None:
    """The flag stays at 0 % while the gate waits; status and runbook say for what; then 10 %."""
    traffic, clock = live
    ports, memory, operator = controller(clock, engine, database_url, unleash)
    clock.at(0, 1)
    operator.start(small_plan(traffic.rollout, traffic.flag, triggers=NO_P99, shadow=GATE))
    traffic.minute(0, 300)
    for minute in (1, 2):  # 1 min 59 s of the gate's 2 min at the second tick
        held = tick_at(ports, memory, clock, traffic.rollout, minute)
        assert held.decision is not None and held.decision.kind is DecisionKind.HOLD
        assert held.decision.reason.startswith("shadow gate: "), held.decision.reason
        assert unleash_flags(unleash).read(traffic.flag).effective_percent == 0
        assert traffic.share_seen() == 0
        traffic.minute(minute, 300)
    record = ports.store.get(traffic.rollout)
    row = status_data(ports.store, [record])[0]
    assert row["phase"] == "shadow_gate"
    assert "comparisons" in row["waiting_for"] and "quality certified" in row["waiting_for"]
    runbook = render_runbook(RunbookInputs(record, tuple(ports.store.history(record.name))))
    assert "**Shadow gate at 0 %: no user sees `gpt-5.5` yet." in runbook
    assert "Now: shadow gate: " in runbook

    passed = tick_at(ports, memory, clock, traffic.rollout, 3)
    assert passed.decision is not None and passed.decision.kind is DecisionKind.ADVANCE
    assert passed.record is not None and passed.record.percent == 10
    assert traffic.wait_for_share(10) > 0
    advance = next(
        e for e in ports.store.history(traffic.rollout) if e.action is AuditAction.ADVANCE
    )
    assert advance.reason.startswith("shadow gate: ") and "passed" in advance.reason
    assert _replays_exactly(advance.decision, advance.inputs)


def test_a_candidate_failing_a_shadow_trigger_never_reaches_10(
    live: tuple[Traffic, FakeClock],
    sim: SimHandle,
    engine: Engine,  # noqa: F811
    database_url: str,
    unleash: UnleashHandle,
) -> None:
    """A candidate whose answers drift far below the noise floor is rolled back at 0 %."""
    traffic, clock = live
    sim.set_profile("gpt-5.5", divergence=0.7)
    ports, memory, operator = controller(clock, engine, database_url, unleash)
    clock.at(0, 1)
    operator.start(small_plan(traffic.rollout, traffic.flag, triggers=NO_P99, shadow=GATE))
    for minute in (0, 1, 2):
        traffic.minute(minute, 300)
        result = tick_at(ports, memory, clock, traffic.rollout, minute + 1)
        assert result.decision is not None
        assert result.decision.kind is not DecisionKind.ADVANCE, result.decision.reason
        if result.decision.kind is DecisionKind.ROLLBACK:
            break
    assert result.decision.kind is DecisionKind.ROLLBACK, result.decision.reason
    assert "never exposed" in result.decision.reason and "quality" in result.decision.reason
    record = ports.store.get(traffic.rollout)
    assert record.status is RolloutStatus.ROLLED_BACK and record.percent == 0
    history = ports.store.history(traffic.rollout)
    assert not any(e.to_percent for e in history if e.to_percent is not None)  # never above 0
    assert unleash_flags(unleash).read(traffic.flag).effective_percent == 0


def _to_100(traffic: Traffic, ports: object, memory: object, operator: object) -> None:
    """Steps [50, 100] with no gate: 100 % set at minute 2, the watch starts there."""
    clock = traffic.clock
    clock.at(0, 1)
    plan = small_plan(
        traffic.rollout,
        traffic.flag,
        triggers=WATCH_TRIGGERS,
        watch=WATCH,
        extra="steps: [50, 100]",
    )
    operator.start(plan)  # type: ignore[attr-defined]
    first = tick_at(ports, memory, clock, traffic.rollout, 1)  # type: ignore[arg-type]
    assert first.record is not None and first.record.percent == 50, first
    traffic.wait_for_share(50)
    traffic.minute(1, 300)
    full = tick_at(ports, memory, clock, traffic.rollout, 2)  # type: ignore[arg-type]
    assert full.decision is not None and full.decision.kind is DecisionKind.ADVANCE, full.decision
    assert full.record is not None and full.record.percent == 100
    traffic.wait_for_share(100)


def test_a_regression_starting_during_the_watch_rolls_back(
    live: tuple[Traffic, FakeClock],
    sim: SimHandle,
    engine: Engine,  # noqa: F811
    database_url: str,
    unleash: UnleashHandle,
) -> None:
    """At 100 % the rollout watches instead of completing; a late error jump rolls back."""
    traffic, clock = live
    ports, memory, operator = controller(clock, engine, database_url, unleash)
    _to_100(traffic, ports, memory, operator)
    _watch_minute(traffic, 2, 200, replays=40)
    watching = tick_at(ports, memory, clock, traffic.rollout, 3)
    assert watching.decision is not None and watching.decision.kind is DecisionKind.HOLD
    assert watching.decision.reason.startswith("watch: triggers armed"), watching.decision.reason
    row = status_data(ports.store, [ports.store.get(traffic.rollout)])[0]
    assert row["phase"] == "watch" and "not before" in row["baseline_decommission"]

    sim.set_profile("gpt-5.5", error_rate=0.3)
    _watch_minute(traffic, 3, 300, replays=40)
    late = tick_at(ports, memory, clock, traffic.rollout, 4)
    assert late.decision is not None and late.decision.kind is DecisionKind.ROLLBACK
    assert "watch" in late.decision.reason, late.decision.reason
    assert late.record is not None and late.record.status is RolloutStatus.ROLLED_BACK
    assert unleash_flags(unleash).read(traffic.flag).effective_percent == 0
    entry = next(
        e
        for e in ports.store.history(traffic.rollout)
        if e.action is AuditAction.ROLLBACK and e.to_percent == 0
    )
    assert _replays_exactly(entry.decision, entry.inputs)


def test_a_baseline_failing_during_the_watch_is_an_alert_not_a_rollback(
    live: tuple[Traffic, FakeClock],
    sim: SimHandle,
    engine: Engine,  # noqa: F811
    database_url: str,
    unleash: UnleashHandle,
) -> None:
    """The rollback target failing its replays: 'rollback target unhealthy', flag stays 100 %."""
    traffic, clock = live
    ports, memory, operator = controller(clock, engine, database_url, unleash)
    _to_100(traffic, ports, memory, operator)
    sim.set_profile("gpt-5.2", error_rate=1.0)
    _watch_minute(traffic, 2, 200, replays=40)
    alert = tick_at(ports, memory, clock, traffic.rollout, 3)
    assert alert.decision is not None and alert.decision.kind is DecisionKind.HOLD
    assert alert.decision.escalate
    assert alert.decision.reason.startswith(ROLLBACK_TARGET_UNHEALTHY), alert.decision.reason
    record = ports.store.get(traffic.rollout)
    assert record.status is RolloutStatus.RUNNING and record.percent == 100
    assert unleash_flags(unleash).read(traffic.flag).effective_percent == 100
    escalated = [
        e for e in ports.store.history(traffic.rollout) if e.action is AuditAction.ESCALATE
    ]
    assert escalated and escalated[0].reason.startswith(ROLLBACK_TARGET_UNHEALTHY)
    assert _replays_exactly(escalated[0].decision, escalated[0].inputs)
