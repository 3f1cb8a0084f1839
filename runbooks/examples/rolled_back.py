"""The committed example runbook: checkout-gpt55, rolled back at 30 % by the error-rate trigger.

The decisions are real: ``judge.decide`` runs on per-minute evidence built here (a
healthy 10 % step, then a candidate failing about 4.5 % of requests against the
baseline's 1 % at 30 %), and the audit log is what the controller writes for that
history. Regenerate the example after a template change with::

    .venv/bin/python -m runbooks.examples.rolled_back
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runbooks.generator import RunbookInputs, render_runbook, write_atomically
from runbooks.view import FlagAccess
from shadowcanary.controller.records import AuditAction, AuditEntry, RolloutRecord, RolloutStatus
from shadowcanary.judge.decide import Decision, DecisionKind, decide
from shadowcanary.judge.evidence import (
    ArmCounts,
    Bucket,
    Evidence,
    Moments,
    RolloutState,
    ShadowCounts,
)
from shadowcanary.plan import RolloutPlan, parse_plan

EXAMPLE_PATH = Path(__file__).with_name("checkout-gpt55-rolled-back.md")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
UNLEASH_URL = "https://unleash.internal.example.com"
PLAN = """
name: checkout-gpt55
flag: checkout-model
baseline: gpt-5.2
candidate: gpt-5.5
unleash: {project: payments, environment: production}
escalation: "#payments-oncall (pager: payments-primary)"
notify: {webhooks: ["https://hooks.slack.com/services/T000/B000/XXXXXXXX"]}
"""
BASELINE_P99_MS = 850.0
REQUESTS_PER_MINUTE = 1000
FIRST_STEP_MINUTE = 1  # the controller moved to 10 % at 09:00:10
SECOND_STEP_MINUTE = 32


def _moments(n: int, mean: float, sd: float) -> Moments:
    return Moments(n, n * mean, n * mean * mean + (n - 1) * sd * sd) if n else Moments()


def _arm(n: int, error_rate: float, minute: int) -> ArmCounts:
    wobble = (minute * 7 % 5 - 2) / 1000  # deterministic minute-to-minute variation
    return ArmCounts(
        requests=n,
        failures=round(n * max(0.0, error_rate + wobble / 4)),
        truncated=round(n * 0.02),
        json_expected=round(n * 0.2),
        slow=round(n * 0.004),
        tail=round(n * 0.01),
        latency_ms=_moments(n, 620.0, 180.0),
        ttft_ms=_moments(n, 300.0, 90.0),
        completion_tokens=_moments(n, 250.0, 120.0),
        cost_usd=_moments(n, 0.002, 0.001),
    )


def _bucket(minute: int, percent: int, candidate_error_rate: float) -> Bucket:
    canary = round(REQUESTS_PER_MINUTE * percent / 100)
    return Bucket(
        start=T0 + timedelta(minutes=minute),
        canary_percent=percent,
        baseline=_arm(REQUESTS_PER_MINUTE - canary, 0.01, minute),
        candidate=_arm(canary, candidate_error_rate, minute),
        shadow=ShadowCounts(
            similarity_diff=_moments(20, -0.004, 0.05), candidate_replays=30, baseline_replays=30
        ),
    )


def _decide(plan: RolloutPlan, buckets: list[Bucket], step: int, step_minute: int) -> Decision:
    """The judge at 4 s past the minute after the last bucket, as a tick would run it."""
    now = buckets[-1].start + timedelta(minutes=1, seconds=4)
    state = RolloutState(
        step_index=step,
        step_percent=plan.steps[step].percent,
        rollout_started_at=T0,
        step_started_at=T0 + timedelta(minutes=step_minute, seconds=10 if step == 0 else 4),
        baseline_p99_ms=BASELINE_P99_MS,
        last_data_at=now - timedelta(seconds=3),
    )
    slow_ms = BASELINE_P99_MS + plan.triggers.p99_latency.margin_ms
    evidence = Evidence(
        tuple(buckets), slow_threshold_ms=slow_ms, tail_threshold_ms=BASELINE_P99_MS
    )
    return decide(plan, state, evidence, now)


def _entry(
    decision: Decision | None,
    action: AuditAction,
    at: datetime,
    reason: str,
    from_percent: int | None,
    to_percent: int | None,
    actor: str = "controller@ctl-7f9c:41",
) -> AuditEntry:
    return AuditEntry(
        id=None,
        at=at,
        rollout="checkout-gpt55",
        actor=actor,
        action=action,
        from_percent=from_percent,
        to_percent=to_percent,
        reason=reason,
        decision=None if decision is None else decision.to_dict(),
    )


def build() -> RunbookInputs:
    """The record, audit log and last decision of the rolled-back rollout."""
    plan = parse_plan(PLAN, source="checkout-gpt55.yaml")
    steps = " -> ".join(f"{p} %" for p in plan.step_percents)
    first = Decision(
        kind=DecisionKind.ADVANCE,
        reason=f"baseline p99 frozen at {BASELINE_P99_MS:.0f} ms; moving to the first step",
        from_percent=0,
        to_percent=10,
        decided_at=T0 + timedelta(seconds=10),
    )
    healthy = [_bucket(m, 10, 0.01) for m in range(FIRST_STEP_MINUTE, SECOND_STEP_MINUTE)]
    early_hold = _decide(plan, healthy[:5], 0, FIRST_STEP_MINUTE)
    advance = _decide(plan, healthy, 0, FIRST_STEP_MINUTE)
    buckets, rollback = list(healthy), None
    for minute in range(SECOND_STEP_MINUTE, SECOND_STEP_MINUTE + 30):
        buckets.append(_bucket(minute, 30, 0.045))
        rollback = _decide(plan, buckets, 1, SECOND_STEP_MINUTE)
        if rollback.kind is DecisionKind.ROLLBACK:
            break
    assert advance.kind is DecisionKind.ADVANCE, advance.reason
    assert rollback is not None and rollback.kind is DecisionKind.ROLLBACK, rollback
    history = (
        _entry(
            None,
            AuditAction.START,
            T0,
            f"rollout started: {plan.baseline} -> {plan.candidate} on flag {plan.flag}, "
            f"steps {steps}",
            None,
            0,
            actor="cli:alice",
        ),
        _entry(
            first,
            AuditAction.ADVANCE,
            first.decided_at,
            f"intent: setting the flag to 10 %; {first.reason}",
            0,
            None,
        ),
        _entry(first, AuditAction.ADVANCE, first.decided_at, first.reason, 0, 10),
        _entry(early_hold, AuditAction.HOLD, early_hold.decided_at, early_hold.reason, 10, None),
        _entry(advance, AuditAction.ADVANCE, advance.decided_at, advance.reason, 10, 30),
        _entry(rollback, AuditAction.ROLLBACK, rollback.decided_at, rollback.reason, 30, 0),
    )
    numbered = tuple(replace(entry, id=index + 1) for index, entry in enumerate(history))
    record = RolloutRecord(
        name=plan.name,
        plan=plan,
        status=RolloutStatus.ROLLED_BACK,
        step_index=1,
        percent=0,
        started_at=T0,
        step_started_at=advance.decided_at,
        updated_at=rollback.decided_at,
        baseline_p99_ms=BASELINE_P99_MS,
        version=len(numbered),
    )
    flags = FlagAccess(backend="unleash", unleash_url=UNLEASH_URL)
    return RunbookInputs(record, numbered, rollback, flags)


def render() -> str:
    return render_runbook(build())


def main() -> None:
    write_atomically(EXAMPLE_PATH, render())
    print(f"wrote {EXAMPLE_PATH}")


if __name__ == "__main__":
    main()
