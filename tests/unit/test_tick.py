"""The controller's pure parts: flag/record reconciliation, HOLD recording, backoff,
resume targets, webhook payloads, lock keys and CLI parsing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import typer

from shadowcanary.cli.rollout import parse_interval
from shadowcanary.controller.loop import backoff_s
from shadowcanary.controller.notify import Notification, slack_payload
from shadowcanary.controller.operator import InvalidTransition, Operator
from shadowcanary.controller.policy import (
    HOLD_AUDIT_EVERY,
    Sync,
    TickMemory,
    controller_actor,
    hold_signature,
    is_intent,
    pending_intent,
    reconcile,
    should_record_hold,
)
from shadowcanary.errors import ConfigError
from shadowcanary.judge.decide import Check, Decision, DecisionKind
from shadowcanary.judge.triggers import TriggerResult, Verdict
from shadowcanary.plan import RolloutPlan, TriggerMode
from shadowcanary.rollout_records import AuditAction, AuditEntry, RolloutRecord, RolloutStatus
from shadowcanary.store.locks import lock_key
from shadowcanary.wiring import FlagsConfig, flags_factory

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
PLAN = RolloutPlan(
    name="checkout-gpt55",
    flag="checkout-model",
    baseline="gpt-5.2",
    candidate="gpt-5.5",
    escalation="#payments-oncall",
)
RECORD = RolloutRecord(
    name=PLAN.name,
    plan=PLAN,
    status=RolloutStatus.RUNNING,
    step_index=1,
    percent=30,
    started_at=T0,
    step_started_at=T0 + timedelta(minutes=30),
    updated_at=T0 + timedelta(minutes=30),
    baseline_p99_ms=900.0,
    version=7,
)
CONTROLLER = controller_actor("host-a:123")


def decision(kind: DecisionKind = DecisionKind.ADVANCE, to: int | None = 50, **kw: Any) -> Decision:
    return Decision(
        kind=kind,
        reason=kw.pop("reason", "minimum exposure met"),
        from_percent=30,
        to_percent=to,
        decided_at=T0,
        **kw,
    )


def entry(
    action: AuditAction = AuditAction.ADVANCE,
    *,
    actor: str = CONTROLLER,
    to_percent: int | None = None,
    target: int | None = 50,
    at: datetime = T0,
) -> AuditEntry:
    kind = {AuditAction.ROLLBACK: DecisionKind.ROLLBACK}.get(action, DecisionKind.ADVANCE)
    made = None if target is None else decision(kind, target).to_dict()
    return AuditEntry(None, at, PLAN.name, actor, action, 30, to_percent, "why", decision=made)


def trigger(name: str, verdict: Verdict, mode: TriggerMode = TriggerMode.ACT) -> TriggerResult:
    return TriggerResult(
        name=name,
        kind="rate",
        mode=mode,
        verdict=verdict,
        n_baseline=900,
        n_candidate=100,
        baseline_value=0.01,
        candidate_value=0.15,
        estimate=0.14,
        statistic=1.15e17,
        threshold=250.0,
        alpha=0.004,
        margin=0.05,
        lower=0.07,
        upper=0.22,
        detail="canary 15/100",
    )


@pytest.mark.parametrize(
    ("observed", "intent", "expected"),
    [
        (30, None, Sync.IN_SYNC),
        (30, entry(), Sync.IN_SYNC),  # the intended write never happened: nothing amiss
        (50, entry(), Sync.RECOVER),  # written but not recorded: finish the step
        (0, entry(AuditAction.ROLLBACK, target=0), Sync.RECOVER),
        (40, entry(), Sync.OVERRIDE),  # not what the controller intended
        (50, None, Sync.OVERRIDE),  # no intent at all: a person did it
    ],
)
def test_reconcile(observed: int, intent: AuditEntry | None, expected: Sync) -> None:
    """Only the controller's own pending target explains a flag that left the record."""
    assert reconcile(RECORD, observed, intent) is expected


@pytest.mark.parametrize(
    ("history", "pending"),
    [
        ([], False),
        ([entry()], True),
        ([entry(AuditAction.ALERT, target=None), entry()], True),  # alerts do not close it
        ([entry(to_percent=50), entry()], False),  # confirmed
        ([entry(AuditAction.HOLD, target=None), entry()], False),  # a later tick saw it
        ([entry(actor="cli:alice")], False),  # a person's entry is never an intent
        ([entry(actor="controller")], True),
        ([entry(AuditAction.MANUAL_OVERRIDE, to_percent=40, target=None), entry()], False),
    ],
)
def test_pending_intent(history: list[AuditEntry], pending: bool) -> None:
    """The intent counts only while it is the newest entry that is not an ALERT."""
    assert (pending_intent(history) is not None) is pending


def test_intent_needs_a_controller_a_target_and_no_percentage() -> None:
    """Confirmations (with a percentage) and decisions without a target are not intents."""
    assert is_intent(entry())
    assert not is_intent(entry(to_percent=50))
    assert not is_intent(entry(target=None))
    assert not is_intent(entry(actor="controllers-fan"))


def test_hold_is_recorded_when_its_shape_changes_or_every_few_minutes() -> None:
    """Same checks and verdicts: one entry per HOLD_AUDIT_EVERY; a new verdict: at once."""
    memory = TickMemory()
    waiting = decision(
        DecisionKind.HOLD, None, triggers=(trigger("error_rate", Verdict.INSUFFICIENT),)
    )
    assert should_record_hold(waiting, memory, T0)
    memory.hold_signature, memory.hold_recorded_at = hold_signature(waiting), T0
    more_data = replace(waiting, reason="waiting for 80 of 100 canary requests")
    assert not should_record_hold(more_data, memory, T0 + timedelta(seconds=10))
    assert should_record_hold(more_data, memory, T0 + HOLD_AUDIT_EVERY)
    harm = replace(waiting, triggers=(trigger("error_rate", Verdict.HARM, TriggerMode.DRY_RUN),))
    assert should_record_hold(harm, memory, T0 + timedelta(seconds=10))
    failing = replace(waiting, checks=(Check("freshness", False, "stale"),))
    assert should_record_hold(failing, memory, T0 + timedelta(seconds=10))


@pytest.mark.parametrize(
    ("failures", "interval", "expected"),
    [
        (0, 10.0, 10.0),
        (1, 10.0, 1.0),
        (2, 10.0, 2.0),
        (4, 10.0, 8.0),
        (9, 10.0, 60.0),
        (1, 0.2, 0.2),
        (3, 0.2, 0.8),
        (40, 0.2, 60.0),
    ],
)
def test_backoff(failures: int, interval: float, expected: float) -> None:
    """Quick first retry, doubling, capped; the normal interval once healthy."""
    assert backoff_s(failures, interval, 60.0) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("step_index", "percent", "observed", "target"),
    [
        (1, 30, 30, 30),  # paused, untouched: resume where it was
        (1, 50, 50, 50),  # overridden to a step: adopt it
        (1, 40, 40, 30),  # overridden between steps: down to the step below
        (2, 50, 70, 50),
        (-1, 0, 0, 0),  # not started yet
        (-1, 0, 10, 0),  # before the first step the flag goes back to 0 %
    ],
)
def test_resume_target_never_raises_exposure(
    step_index: int, percent: int, observed: int, target: int
) -> None:
    """Resume adopts a step, or goes down to one; it never goes above what users see."""
    record = replace(RECORD, step_index=step_index, percent=percent)
    got, reason = Operator(ports=None)._resume_target(record, observed)  # type: ignore[arg-type]
    assert got == target and "resumed" in reason
    assert got <= observed or observed == 0


def test_resume_refuses_a_flag_below_the_first_step() -> None:
    """An SRE turned the flag off: resuming would expose users again, so say how instead."""
    with pytest.raises(InvalidTransition) as caught:
        Operator(ports=None)._resume_target(RECORD, 0)  # type: ignore[arg-type]
    assert "promote checkout-gpt55 --to 10" in str(caught.value.hint)


def test_slack_payload_has_the_numbers_and_no_secrets() -> None:
    """text + blocks, from -> to, the reason and each harmful trigger's statistic and bounds."""
    rolled = Decision(
        kind=DecisionKind.ROLLBACK,
        reason="error_rate: canary 15/100 (15.00 %) vs baseline 9/900 (1.00 %)",
        from_percent=30,
        to_percent=0,
        decided_at=T0,
        triggers=(trigger("error_rate", Verdict.HARM), trigger("ttft", Verdict.CERTIFIED)),
    )
    body = slack_payload(Notification.of_decision(RECORD, rolled, CONTROLLER))
    assert body["text"].startswith(":rotating_light: ROLLBACK checkout-gpt55: 30 % -> 0 %")
    flat = str(body["blocks"])
    assert "error_rate" in flat and "1.15e+17" in flat and "upper 0.22" in flat
    assert "ttft" not in flat  # only the triggers that explain a rollback
    assert "hooks.slack" not in flat and "token" not in flat.lower()


def test_escalations_name_the_contact_and_long_reasons_are_clipped() -> None:
    """A HOLD that needs a person says who; Slack's 3,000-character limit is respected."""
    held = decision(DecisionKind.HOLD, None, reason="x" * 5000, escalate=True)
    body = slack_payload(Notification.of_decision(RECORD, held, CONTROLLER))
    assert "needs a person #payments-oncall" in body["text"]
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in body["blocks"])


def test_override_notification_says_manual_override_and_escalates() -> None:
    """A change outside the controller reads as such and pages the escalation contact."""
    message = Notification.change(RECORD, "override", "the flag is at 40 %", CONTROLLER, 30, 40)
    assert message.summary == "MANUAL OVERRIDE checkout-gpt55: 30 % -> 40 %"
    assert message.escalate and message.escalation == "#payments-oncall"


def test_lock_keys_are_stable_signed_64_bit_and_per_rollout() -> None:
    """Every process computes the same key; rollouts and namespaces do not collide."""
    key = lock_key("checkout-gpt55")
    assert key == lock_key("checkout-gpt55") and -(2**63) <= key < 2**63
    assert key != lock_key("checkout-gpt56")
    assert key != lock_key("checkout-gpt55", b"shadowcanary.operation.rollout/")


@pytest.mark.parametrize(("text", "seconds"), [("10s", 10.0), ("1m", 60.0), ("250ms", 0.25)])
def test_parse_interval(text: str, seconds: float) -> None:
    """Durations as the plan writes them."""
    assert parse_interval(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "0s", "-5s"])
def test_parse_interval_rejects_nonsense(text: str) -> None:
    """A bad interval is a usage error (exit code 2), not a crash."""
    with pytest.raises(typer.BadParameter):
        parse_interval(text)


def test_unleash_backend_without_url_or_token_is_a_config_error() -> None:
    """The error names the settings to set."""
    with pytest.raises(ConfigError) as caught:
        flags_factory(FlagsConfig(backend="unleash"), engine=None)  # type: ignore[arg-type]
    assert "SHADOWCANARY_UNLEASH_URL" in str(caught.value.hint)
    assert "admin_token" not in repr(FlagsConfig(backend="unleash", unleash_admin_token="s3cret"))
    assert "s3cret" not in repr(FlagsConfig(backend="unleash", unleash_admin_token="s3cret"))


def test_decision_metrics_export_each_trigger() -> None:
    """Decisions are counted by kind and every trigger's statistic and bounds are gauges."""
    from prometheus_client import REGISTRY

    from shadowcanary.controller import metrics

    labels = {"rollout": "metrics-test", "kind": "rollback"}
    before = REGISTRY.get_sample_value("shadowcanary_controller_decisions_total", labels) or 0.0
    rolled = decision(DecisionKind.ROLLBACK, 0, triggers=(trigger("error_rate", Verdict.HARM),))
    metrics.observe_decision("metrics-test", rolled)
    after = REGISTRY.get_sample_value("shadowcanary_controller_decisions_total", labels)
    assert after == before + 1
    gauge = {"rollout": "metrics-test", "trigger": "error_rate"}
    assert REGISTRY.get_sample_value("shadowcanary_controller_trigger_statistic", gauge) == 1.15e17
    assert REGISTRY.get_sample_value("shadowcanary_controller_trigger_upper_bound", gauge) == 0.22
    assert REGISTRY.get_sample_value("shadowcanary_controller_trigger_threshold", gauge) == 250.0
