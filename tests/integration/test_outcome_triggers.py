"""The outcome triggers driving the real controller: Postgres, embedded flags, a fake clock.

Captures go in through ``Store.insert_captures`` and outcomes through
``OutcomeStore.record`` (the worker tasks' write paths), so each scenario controls
exactly what the judge sees; the tap, gateway and Node paths are in
tests/gateway/test_outcomes_gateway.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from flags.embedded import EmbeddedFlags
from runbooks.generator import RunbookInputs, render_runbook
from shadowcanary.controller.operator import Operator
from shadowcanary.controller.policy import TickMemory
from shadowcanary.controller.tick import TickResult, tick
from shadowcanary.events import Arm
from shadowcanary.judge.decide import DecisionKind
from shadowcanary.outcomes import OutcomeReport
from shadowcanary.plan import parse_plan
from shadowcanary.report.html import render_html
from shadowcanary.report.load import load_report
from shadowcanary.report.markdown import render_markdown
from shadowcanary.rollout_records import AuditAction
from shadowcanary.settings import load_settings
from shadowcanary.store.db import make_engine
from shadowcanary.store.inputs import AssessedCapture
from shadowcanary.store.outcomes import OutcomeStore
from shadowcanary.store.repository import Store
from shadowcanary.testing.factories import make_event, make_flags
from tests.integration.controller_harness import T0, FakeClock, ports_for

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


def outcome_plan(name: str, trigger: str) -> str:
    return f"""
name: {name}
flag: {name}-flag
baseline: gpt-5.2
candidate: gpt-5.5
unleash: {{environment: development}}
steps: [50, 100]
shadow: off  # the outcome triggers judge the steps (test_rollout_phases.py: the gate)
watch: off
exposure: {{min_canary_requests: 100, min_events_per_arm: 25, min_duration: 10s, deadline: 1h}}
sample_ratio: {{grace: 0s}}
triggers:
  error_rate: {{margin: 0.05}}
  refusals: {{margin: 0.05}}
  incomplete: {{margin: 0.05}}
  invalid_json: {{margin: 0.05}}
  p99_latency: off
  quality: off
  shadow_invalid_json: off
  {trigger}
"""


class Rollout:
    """One rollout under test with its own clock, flags, store and outcome store."""

    def __init__(self, engine: Engine, database_url: str, name: str, trigger: str) -> None:
        self.engine, self.database_url, self.name = engine, database_url, name
        self.clock = FakeClock()
        self.flags = EmbeddedFlags(engine)
        self.store, self.outcomes = Store(engine), OutcomeStore(engine)
        self.memory = TickMemory()
        self.clock.at(0, 5)
        Operator(self.ports()).start(parse_plan(outcome_plan(name, trigger)))
        first = self.tick(1)  # p99 off: straight to the first step, from minute 1 on
        assert first.decision is not None and first.decision.kind is DecisionKind.ADVANCE

    def ports(self):  # type: ignore[no-untyped-def]
        return ports_for(self.engine, self.database_url, self.flags, self.clock)

    def tick(self, minute: float, second: float = 0.0) -> TickResult:
        self.clock.at(minute, second)
        return tick(self.ports(), self.name, self.memory)

    def minute(self, minute: int, per_arm: int) -> dict[Arm, list[str]]:
        """``per_arm`` healthy calls on each arm (the 50 % step), their event ids by arm."""
        start = T0 + timedelta(minutes=minute)
        ids: dict[Arm, list[str]] = {Arm.BASELINE: [], Arm.CANDIDATE: []}
        captures = []
        for i in range(2 * per_arm):
            arm = Arm.BASELINE if i % 2 else Arm.CANDIDATE
            at = start + timedelta(seconds=1 + 58 * i / (2 * per_arm))
            event = make_event(event_id=uuid.uuid4().hex, arm=arm, rollout=self.name, started_at=at)
            ids[arm].append(event.event_id)
            captures.append(AssessedCapture(event=event, flags=make_flags(), cost_usd=0.001))
        self.store.insert_captures(captures, received_at=start + timedelta(seconds=59))
        return ids

    def abandon(self, ids: list[str], share: float, **other: object) -> None:
        """Report the first ``share`` of ``ids`` abandoned and the rest completed."""
        cut = round(len(ids) * share)
        reports = [
            OutcomeReport(
                event_id=event_id,
                reported_at=self.clock.now,
                task="abandoned" if i < cut else "completed",
                **other,  # type: ignore[arg-type]
            )
            for i, event_id in enumerate(ids)
        ]
        self.outcomes.record(reports, received_at=self.clock.now)


def test_with_no_outcomes_reported_the_completion_trigger_holds_and_says_why(
    engine: Engine, database_url: str
) -> None:
    """completion_rate in act with no outcome reported: HOLD naming the missing reports,
    never "n/a" and never an advance (fail closed)."""
    rollout = Rollout(engine, database_url, "no-outcomes", "completion_rate: act")
    rollout.minute(1, per_arm=200)
    result = rollout.tick(2, 5)
    assert result.decision is not None and result.decision.kind is DecisionKind.HOLD
    assert "completion_rate insufficient" in result.decision.reason
    assert "no user outcomes reported" in result.decision.reason
    (trigger,) = [t for t in result.decision.triggers if t.name == "completion_rate"]
    assert trigger.verdict.value == "insufficient"
    # The runbook says more traffic will not help: the services must report outcomes.
    assert result.record is not None
    runbook = render_runbook(RunbookInputs(result.record, (), result.decision))
    assert "| completion_rate | act | not yet: no user outcomes reported |" in runbook
    assert "**Waiting on the services:** completion_rate" in runbook


def test_a_candidate_users_abandon_more_is_rolled_back_by_completion_rate(
    engine: Engine, database_url: str
) -> None:
    """Abandoned 45 % on the candidate vs 10 % on the baseline: ROLLBACK by completion_rate,
    the audit row carrying the abandonment counts of both arms."""
    rollout = Rollout(engine, database_url, "abandoned", "completion_rate: act")
    ids = rollout.minute(1, per_arm=150)
    rollout.clock.at(1, 59)
    rollout.abandon(ids[Arm.CANDIDATE], 0.45)
    rollout.abandon(ids[Arm.BASELINE], 0.10)
    result = rollout.tick(2, 5)
    assert result.decision is not None, result
    assert result.decision.kind is DecisionKind.ROLLBACK, result.decision.reason
    assert rollout.flags.read("abandoned-flag").effective_percent == 0
    entry = next(
        e for e in rollout.ports().store.history("abandoned") if e.action is AuditAction.ROLLBACK
    )
    assert "completion_rate" in entry.reason and "68/150" in entry.reason, entry.reason
    assert "15/150" in entry.reason


def test_late_outcomes_reach_the_judge_through_the_evidence_cache(
    engine: Engine, database_url: str
) -> None:
    """Outcomes of an already-read minute, reported a minute later, change the next decision
    (the cached evidence of that hour is read again)."""
    rollout = Rollout(engine, database_url, "late", "completion_rate: act")
    ids = rollout.minute(1, per_arm=150)
    first = rollout.tick(2, 5)
    assert first.decision is not None and first.decision.kind is DecisionKind.HOLD
    rollout.clock.at(2, 30)
    rollout.abandon(ids[Arm.CANDIDATE], 0.45)
    rollout.abandon(ids[Arm.BASELINE], 0.10)
    second = rollout.tick(3)
    assert second.decision is not None and second.decision.kind is DecisionKind.ROLLBACK


def test_healthy_outcomes_certify_and_the_rollout_advances(
    engine: Engine, database_url: str
) -> None:
    """The same completion on both arms certifies completion_rate, negative_feedback and
    escalation_rate: the step advances."""
    rollout = Rollout(
        engine,
        database_url,
        "healthy-outcomes",
        "completion_rate: act\n  negative_feedback: act\n  escalation_rate: act",
    )
    ids = rollout.minute(1, per_arm=1000)
    rollout.clock.at(1, 59)
    for arm in Arm:
        rollout.abandon(ids[arm], 0.10)
    result = rollout.tick(2, 5)
    assert result.decision is not None
    assert result.decision.kind is DecisionKind.ADVANCE, result.decision.reason
    verdicts = {t.name: t.verdict.value for t in result.decision.triggers}
    assert verdicts["completion_rate"] == "certified"
    assert verdicts["negative_feedback"] == "certified"
    assert verdicts["escalation_rate"] == "certified"


def test_the_report_shows_cost_per_completed_task_and_unknown_ids(
    engine: Engine, database_url: str
) -> None:
    """Per arm: completion rate, cost per completed task (cost per request / completion)
    and its monthly projection; the unknown event ids that named the rollout are counted."""
    rollout = Rollout(engine, database_url, "report-outcomes", "completion_rate: dry-run")
    ids = rollout.minute(1, per_arm=100)
    rollout.clock.at(1, 59)
    rollout.abandon(ids[Arm.CANDIDATE], 0.5)
    rollout.abandon(ids[Arm.BASELINE], 0.2)
    rollout.outcomes.record(
        [
            OutcomeReport(
                event_id="never-captured-1",
                reported_at=rollout.clock.now,
                task="completed",
                rollout="report-outcomes",
            )
        ],
        received_at=rollout.clock.now,
    )
    now = T0 + timedelta(minutes=30)
    data = load_report(engine, load_settings(), "report-outcomes", now=now)
    assert data.outcomes is not None
    baseline, candidate = data.outcomes.arms
    assert (baseline.completion_rate, candidate.completion_rate) == (0.8, 0.5)
    assert baseline.cost_per_completed_task_usd == pytest.approx(
        data.cost.baseline.cost_per_request_usd / 0.8
    )
    assert candidate.cost_per_completed_task_usd == pytest.approx(
        data.cost.candidate.cost_per_request_usd / 0.5
    )
    tasks_per_month = data.outcomes.completed_tasks_per_month
    assert tasks_per_month is not None and candidate.monthly_usd == pytest.approx(
        tasks_per_month * candidate.cost_per_completed_task_usd
    )
    assert data.outcomes.summary is not None and data.outcomes.summary.unknown == 1
    markdown = render_markdown(data)
    assert "## User outcomes" in markdown and "**1 unknown event ids**" in markdown
    assert "50.00 % (100 tasks)" in markdown
    html = render_html(data)
    assert "cost per completed task" in html and "unknown event ids" in html
