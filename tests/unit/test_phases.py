"""The shadow gate before the first step and the watch after 100 % (judge/phases.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shadowcanary.judge.decide import Decision, DecisionInputs, DecisionKind, decide
from shadowcanary.judge.evidence import (
    ArmCounts,
    Bucket,
    Evidence,
    Moments,
    RolloutState,
    ShadowCounts,
)
from shadowcanary.judge.phases import ROLLBACK_TARGET_UNHEALTHY
from shadowcanary.judge.sampling import replay_rate
from shadowcanary.judge.shadow_gate import pairs_to_certify
from shadowcanary.plan import (
    DEFAULT_SHADOW_COMPARISONS,
    DEFAULT_SHADOW_DURATION,
    PlanError,
    RolloutPlan,
    parse_plan,
)

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
MINIMAL = "name: c\nflag: f\nbaseline: gpt-5.2\ncandidate: gpt-5.5\n"
GATED = MINIMAL + (
    "shadow: {min_comparisons: 200, min_duration: 30m, deadline: 2h}\n"
    "watch: {duration: 1h, min_baseline_replays: 100}\n"
)


def _moments(n: int, mean: float, sd: float) -> Moments:
    return Moments(n, n * mean, (n - 1) * sd * sd + n * mean * mean) if n else Moments()


def _shadow_minute(start: datetime, pairs: int, drop: float, sd: float = 0.1) -> Bucket:
    """A minute at 0 %: live traffic all on the baseline, ``pairs`` noise-floor pairs."""
    return Bucket(
        start=start,
        canary_percent=0,
        baseline=ArmCounts(requests=5 * pairs, latency_ms=_moments(5 * pairs, 300, 50)),
        shadow=ShadowCounts(
            similarity_diff=_moments(pairs, -drop, sd),
            candidate_replays=5 * pairs,
            baseline_replays=pairs,
        ),
    )


def _gate(plan: RolloutPlan, minutes: int, pairs: int, drop: float) -> DecisionInputs:
    buckets = tuple(_shadow_minute(T0 + timedelta(minutes=i), pairs, drop) for i in range(minutes))
    now = T0 + timedelta(minutes=minutes, seconds=5)
    state = RolloutState(
        step_index=-1,
        step_percent=0,
        rollout_started_at=T0,
        step_started_at=T0,
        last_data_at=buckets[-1].start if buckets else None,
    )
    return DecisionInputs(plan, state, Evidence(buckets), now)


def test_the_gate_holds_and_says_what_it_waits_for() -> None:
    """Too few comparisons and too short: HOLD naming the counts and the waiting triggers."""
    decision = _gate(parse_plan(GATED), minutes=10, pairs=10, drop=0.0).decide()
    assert decision.kind is DecisionKind.HOLD
    assert decision.to_percent is None
    assert "shadow gate: 100/200 comparisons" in decision.reason
    assert "10 min of 30 min" in decision.reason


def test_the_gate_advances_to_the_first_step_once_certified() -> None:
    """Minimums met and the quality trigger certified: ADVANCE to 10 %."""
    decision = _gate(parse_plan(GATED), minutes=40, pairs=10, drop=0.0).decide()
    assert decision.kind is DecisionKind.ADVANCE, decision.reason
    assert decision.to_percent == 10
    assert "quality certified" in decision.reason


def test_a_harmful_shadow_trigger_rolls_back_before_exposure() -> None:
    """A candidate far below the noise floor is rolled back at 0 %: never exposed."""
    decision = _gate(parse_plan(GATED), minutes=40, pairs=10, drop=0.3).decide()
    assert decision.kind is DecisionKind.ROLLBACK
    assert decision.to_percent == 0
    assert "never exposed" in decision.reason and "quality" in decision.reason


def test_a_dry_run_shadow_trigger_neither_rolls_back_nor_blocks() -> None:
    """quality in dry-run: the harm is named in the reason, the gate still passes."""
    plan = parse_plan(GATED + "triggers: {quality: dry-run}\n")
    decision = _gate(plan, minutes=40, pairs=10, drop=0.3).decide()
    assert decision.kind is DecisionKind.ADVANCE, decision.reason
    assert "dry-run, not acted on: quality" in decision.reason


def test_the_gate_waits_for_quality_pairs_that_never_come() -> None:
    """No noise-floor pairs at all: the quality trigger is not 'not applicable' at the gate."""
    decision = _gate(parse_plan(GATED), minutes=40, pairs=0, drop=0.0).decide()
    assert decision.kind is DecisionKind.HOLD
    assert "quality (not_applicable)" in decision.reason
    assert "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE" in decision.reason  # where pairs come from


def test_the_gate_escalates_past_its_deadline() -> None:
    """Past shadow.deadline without a certificate: HOLD and escalate to a person."""
    decision = _gate(parse_plan(GATED), minutes=130, pairs=1, drop=0.0).decide()
    assert decision.kind is DecisionKind.HOLD and decision.escalate
    assert "shadow gate deadline" in decision.reason


@pytest.mark.parametrize("drop", [0.0, 0.3])
def test_a_gate_decision_replays_from_its_audit_json(drop: float) -> None:
    """The gate's decision is recomputed exactly from the stored inputs."""
    inputs = _gate(parse_plan(GATED), minutes=40, pairs=10, drop=drop)
    again = DecisionInputs.from_json(inputs.to_json())
    assert again.decide() == inputs.decide()


def _watch_minute(
    start: datetime,
    *,
    requests: int = 100,
    failures: int = 1,
    target: int = 10,
    target_failed: int = 0,
    target_delta_ms: float = 0.0,
) -> Bucket:
    return Bucket(
        start=start,
        canary_percent=100,
        candidate=ArmCounts(
            requests=requests, failures=failures, latency_ms=_moments(requests, 300, 50)
        ),
        shadow=ShadowCounts(
            rollback_replays=target,
            rollback_failed=target_failed,
            rollback_latency_delta_ms=_moments(target - target_failed, target_delta_ms, 100),
        ),
    )


def _watch(minutes: int, **minute: float) -> DecisionInputs:
    plan = parse_plan(GATED + "triggers: {p99_latency: off}\n")
    started = T0 + timedelta(minutes=60)  # 100 % set at 13:00
    buckets = tuple(
        _watch_minute(started + timedelta(minutes=i), **minute)  # type: ignore[arg-type]
        for i in range(minutes)
    )
    state = RolloutState(
        step_index=3,
        step_percent=100,
        rollout_started_at=T0,
        step_started_at=started,
        last_data_at=buckets[-1].start,
    )
    return DecisionInputs(plan, state, Evidence(buckets), started + timedelta(minutes=minutes))


def test_the_watch_holds_with_triggers_armed_until_its_duration() -> None:
    """At 100 % the rollout does not complete before watch.duration."""
    decision = _watch(30).decide()
    assert decision.kind is DecisionKind.HOLD and not decision.escalate
    assert "watch: triggers armed" in decision.reason and "30 min of 60 min" in decision.reason
    assert [t.name for t in decision.triggers] == ["error_rate"]


def test_the_watch_completes_and_frees_the_baseline() -> None:
    """After the watch with a warm rollback target: COMPLETE, the baseline may go."""
    decision = _watch(61).decide()
    assert decision.kind is DecisionKind.COMPLETE, decision.reason
    assert "gpt-5.2 may be decommissioned" in decision.reason


def test_the_watch_waits_for_enough_rollback_target_replays() -> None:
    """No replays to the baseline: the rollback target is unproven, the watch holds."""
    decision = _watch(61, target=0).decide()
    assert decision.kind is DecisionKind.HOLD
    assert "0 of 100 replays to gpt-5.2" in decision.reason


def test_a_late_regression_during_the_watch_rolls_back() -> None:
    """The candidate failing 20 % against a healthy rollback target: ROLLBACK to 0 %."""
    decision = _watch(20, failures=20).decide()
    assert decision.kind is DecisionKind.ROLLBACK, decision.reason
    assert "late regression during the watch" in decision.reason


@pytest.mark.parametrize(
    ("minute", "check"),
    [
        ({"target_failed": 5}, "rollback_target_errors"),
        ({"target_delta_ms": 4000.0}, "rollback_target_latency"),
    ],
)
def test_an_unhealthy_rollback_target_alerts_and_never_rolls_back(
    minute: dict[str, float], check: str
) -> None:
    """A failing or slow baseline: HOLD escalated as 'rollback target unhealthy'."""
    decision = _watch(20, **minute).decide()
    assert decision.kind is DecisionKind.HOLD and decision.escalate
    assert decision.reason.startswith(ROLLBACK_TARGET_UNHEALTHY)
    assert [c.name for c in decision.checks if not c.ok] == [check]


def test_a_watch_decision_replays_from_its_audit_json() -> None:
    """The watch's decision is recomputed exactly from the stored inputs."""
    inputs = _watch(20, target_failed=5)
    assert DecisionInputs.from_json(inputs.to_json()).decide() == inputs.decide()


def test_a_plan_file_gets_the_default_gate_and_watch() -> None:
    """A plan file without shadow/watch gets the documented defaults (seed 004's week)."""
    plan = parse_plan(MINIMAL)
    assert plan.shadow is not None and plan.watch is not None
    assert plan.shadow.min_duration == DEFAULT_SHADOW_DURATION == timedelta(days=7)
    assert plan.shadow.min_comparisons == DEFAULT_SHADOW_COMPARISONS
    assert plan.watch.duration == timedelta(hours=24)


def test_a_stored_plan_without_phases_keeps_its_meaning() -> None:
    """A plan stored before the phases existed (the audit log) has neither: replay is exact."""
    stored = parse_plan(MINIMAL + "shadow: off\nwatch: off\n").model_dump(mode="json")
    del stored["shadow"], stored["watch"]
    plan = RolloutPlan.model_validate(stored)
    assert plan.shadow is None and plan.watch is None
    state = RolloutState(3, 100, T0, T0, last_data_at=T0)
    assert decide(plan, state, Evidence(), T0 + timedelta(minutes=5)).kind is DecisionKind.COMPLETE


def test_judged_pairs_without_a_judge_are_refused() -> None:
    """min_judged_pairs with the judge_score trigger off fails validation, saying the fix."""
    with pytest.raises(PlanError, match="judge_score trigger is off"):
        parse_plan(MINIMAL + "shadow: {min_judged_pairs: 100}\n")


def test_the_default_minimum_has_the_power_to_certify_the_margin() -> None:
    """640 pairs certify the default 0.05 margin for a candidate losing half of it (SD 0.2)."""
    needed = pairs_to_certify(0.05, sd=0.2, certify_alpha=0.05, true_drop=0.025)
    assert needed <= DEFAULT_SHADOW_COMPARISONS < needed + 10
    assert pairs_to_certify(0.05, sd=0.2, certify_alpha=0.05) < needed  # at the noise floor


def _held_at(plan: RolloutPlan, drop: float, minutes: int = 40) -> tuple[RolloutState, Decision]:
    inputs = _gate(plan, minutes=minutes, pairs=10, drop=drop)
    return inputs.state, decide(inputs.plan, inputs.state, inputs.evidence, inputs.now)


LONG_GATE = GATED.replace("min_duration: 30m, deadline: 2h", "min_duration: 3h, deadline: 4h")
SAMPLED = LONG_GATE + "replay_sampling: {maintenance_rate: 0.1, step_warmup: 5m}\n"


@pytest.mark.parametrize(
    ("plan_text", "drop", "minutes", "rate", "why"),
    [
        (LONG_GATE, 0.0, 40, 1.0, "off in the plan"),
        (SAMPLED, 0.0, 40, 0.1, "certified for this step: quality"),
        (SAMPLED, 0.0, 4, 1.0, "warm-up"),
        (SAMPLED, 0.03, 40, 1.0, "quality"),  # a drop near the 0.05 margin: not certified
    ],
)
def test_the_replay_rate_drops_only_once_the_shadow_triggers_certify(
    plan_text: str, drop: float, minutes: int, rate: float, why: str
) -> None:
    """Maintenance rate once certified for the step; full rate while deciding or warming up."""
    plan = parse_plan(plan_text)
    state, decision = _held_at(plan, drop, minutes)
    assert decision.kind is DecisionKind.HOLD, decision.reason
    now = decision.decided_at
    chosen = replay_rate(plan, state, decision, now)
    assert chosen.rate == rate and why in chosen.reason, chosen


def test_a_step_change_restores_the_full_replay_rate() -> None:
    """The decision that moves the flag sends the next step back to full rate."""
    plan = parse_plan(GATED + "replay_sampling: on\n")
    inputs = _gate(plan, minutes=40, pairs=10, drop=0.0)
    decision = inputs.decide()
    assert decision.kind is DecisionKind.ADVANCE
    assert replay_rate(plan, inputs.state, decision, inputs.now).rate == 1.0
