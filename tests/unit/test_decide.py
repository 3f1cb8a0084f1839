"""decide(): every branch of the tick, dry-run, and exact replay from the audit JSON."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

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
from shadowcanary.judge.triggers import Verdict, trigger_alpha
from shadowcanary.plan import TriggerMode, parse_plan

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
PLAN = """\
name: checkout-gpt55
flag: checkout-model
baseline: gpt-5.2
candidate: gpt-5.5
shadow: off  # the steps' branches; tests/unit/test_phases.py covers the gate and the watch
watch: off
"""
HEALTHY: dict[str, float] = {
    "error": 0.01,
    "truncated": 0.02,
    "refusals": 0.0,
    "json": 0.2,
    "json_invalid": 0.0,
    "slow": 0.0,
    "ttft": 300.0,
    "tokens": 250.0,
    "cost": 0.002,
}


def _moments(n: int, mean: float, sd: float) -> Moments:
    """Deterministic moments of n values with this mean and sample sd."""
    return Moments(n, n * mean, n * mean * mean + (n - 1) * sd * sd) if n else Moments()


def _arm(n: int, profile: dict[str, float]) -> ArmCounts:
    json_expected = round(n * profile["json"])
    return ArmCounts(
        requests=n,
        failures=round(n * profile["error"]),
        truncated=round(n * profile["truncated"]),
        refusals=round(n * profile["refusals"]),
        json_expected=json_expected,
        json_invalid=round(json_expected * profile["json_invalid"]),
        slow=round(n * profile["slow"]),
        latency_ms=_moments(n, 800.0, 300.0),
        ttft_ms=_moments(n, profile["ttft"], 100.0),
        completion_tokens=_moments(n, profile["tokens"], 120.0),
        cost_usd=_moments(n, profile["cost"], 0.001),
    )


def _bucket(
    minute: int,
    percent: float,
    candidate: dict[str, float],
    canary_share: float | None = None,
    quality: float = 0.0,
) -> Bucket:
    canary = round(1000 * (percent / 100 if canary_share is None else canary_share))
    return Bucket(
        start=T0 + timedelta(minutes=minute),
        canary_percent=percent,
        baseline=_arm(1000 - canary, HEALTHY),
        candidate=_arm(canary, candidate),
        shadow=ShadowCounts(
            similarity_diff=_moments(20, quality, 0.05), candidate_replays=30, baseline_replays=30
        ),
    )


def scenario(
    minutes: int = 40,
    plan_extra: str = "",
    candidate: dict[str, float] | None = None,
    percent: int = 10,
    step_index: int = 0,
    step_started: int = 0,
    canary_share: float | None = None,
    quality: float = 0.0,
    data_age: timedelta = timedelta(seconds=5),
    **state_changes: Any,
) -> DecisionInputs:
    """A rollout at ``percent`` observed for ``minutes``; now is 5 s past the last minute."""
    plan = parse_plan(PLAN + plan_extra)
    profile = {**HEALTHY, **(candidate or {})}
    buckets = tuple(_bucket(m, percent, profile, canary_share, quality) for m in range(minutes))
    now = T0 + timedelta(minutes=minutes, seconds=5)
    state = RolloutState(
        step_index,
        percent,
        T0,
        T0 + timedelta(minutes=step_started),
        baseline_p99_ms=1800.0,
        last_data_at=now - data_age,
    )
    state = replace(state, **state_changes)
    return DecisionInputs(plan, state, Evidence(buckets, slow_threshold_ms=2000.0), now)


def _trigger(decision: Decision, name: str) -> Any:
    return next(r for r in decision.triggers if r.name == name)


# Too tight to certify from 4,000 canary requests: the error-rate bound stays above it.
TIGHT_MARGIN = "triggers:\n  error_rate: {margin: 0.002}\n"

CASES = [
    pytest.param(
        {}, DecisionKind.ADVANCE, 30, False, "minimum exposure met", id="healthy-advances"
    ),
    pytest.param(
        {"paused": True}, DecisionKind.HOLD, None, False, "paused by an operator", id="paused"
    ),
    pytest.param(
        {"overridden": True}, DecisionKind.HOLD, None, False, "manual override", id="overridden"
    ),
    pytest.param(
        {"percent": 100, "step_index": 3},
        DecisionKind.COMPLETE,
        100,
        False,
        "100 %",
        id="last-step-completes",
    ),
    pytest.param(
        {"minutes": 0}, DecisionKind.HOLD, None, False, "no complete minute", id="no-data"
    ),
    pytest.param(
        {"candidate": {"error": 0.6}, "minutes": 30},
        DecisionKind.ROLLBACK,
        0,
        False,
        "guardrail: canary failed",
        id="guardrail",
    ),
    pytest.param(
        {"candidate": {"error": 0.05}, "minutes": 20},
        DecisionKind.ROLLBACK,
        0,
        False,
        "error_rate: canary",
        id="error-rate-harm",
    ),
    pytest.param(
        {"candidate": {"slow": 0.05}, "minutes": 20},
        DecisionKind.ROLLBACK,
        0,
        False,
        "p99_latency: canary",
        id="tail-latency-harm",
    ),
    pytest.param(
        {"candidate": {"ttft": 700.0}, "minutes": 20},
        DecisionKind.ROLLBACK,
        0,
        False,
        "ttft: canary mean",
        id="ttft-harm",
    ),
    pytest.param(
        {"candidate": {"refusals": 0.05}, "minutes": 20},
        DecisionKind.ROLLBACK,
        0,
        False,
        "refusals: canary",
        id="refusals-harm",
    ),
    pytest.param(
        {"quality": -0.2, "minutes": 20},
        DecisionKind.ROLLBACK,
        0,
        False,
        "quality: mean D",
        id="quality-harm",
    ),
    pytest.param(
        {"data_age": timedelta(minutes=30)},
        DecisionKind.HOLD,
        None,
        False,
        "newest data is 30 min old",
        id="stale",
    ),
    pytest.param(
        {"last_data_at": None},
        DecisionKind.HOLD,
        None,
        False,
        "no data has been seen",
        id="never-seen-data",
    ),
    pytest.param(
        {"canary_share": 0.03},
        DecisionKind.HOLD,
        None,
        True,
        "sample-ratio mismatch",
        id="sample-ratio-mismatch",
    ),
    pytest.param(
        {"minutes": 8},
        DecisionKind.HOLD,
        None,
        False,
        "waiting for 800 of 1000 canary requests; 8 min of 10 min",
        id="too-little-exposure",
    ),
    pytest.param(
        {"plan_extra": "exposure: {min_canary_requests: 100, min_duration: 1h}\n"},
        DecisionKind.HOLD,
        None,
        False,
        "40 min of 60 min in this step",
        id="too-short",
    ),
    pytest.param(
        {"plan_extra": TIGHT_MARGIN},
        DecisionKind.HOLD,
        None,
        False,
        "error_rate inconclusive",
        id="not-yet-certified",
    ),
    pytest.param(
        {"plan_extra": TIGHT_MARGIN + "exposure: {deadline: 30m}\n"},
        DecisionKind.HOLD,
        None,
        True,
        "step deadline (30 min) passed",
        id="deadline",
    ),
    pytest.param(
        {"plan_extra": "exposure: {deadline: 30m}\n"},
        DecisionKind.ADVANCE,
        30,
        False,
        "minimum exposure met",
        id="certified-after-deadline-still-advances",
    ),
    pytest.param(
        {"candidate": {"error": 0.05}, "minutes": 40, "plan_extra": "exposure: {deadline: 30m}\n"},
        DecisionKind.ROLLBACK,
        0,
        False,
        "error_rate",
        id="harm-beats-deadline",
    ),
    pytest.param(
        {"baseline_p99_ms": None},
        DecisionKind.HOLD,
        None,
        False,
        "no baseline p99 frozen",
        id="no-frozen-p99",
    ),
    pytest.param(
        {"step_percent": 30},
        DecisionKind.HOLD,
        None,
        True,
        "state says 30 %",
        id="state-disagrees-with-plan",
    ),
    pytest.param(
        {"step_index": 7}, DecisionKind.HOLD, None, True, "step index 7", id="bad-step-index"
    ),
]


@pytest.mark.parametrize(("changes", "kind", "to_percent", "escalate", "reason"), CASES)
def test_decide_branches(
    changes: dict[str, Any], kind: DecisionKind, to_percent: int | None, escalate: bool, reason: str
) -> None:
    """Each branch of the tick gives its decision, target, escalation and a reason saying why."""
    decision = scenario(**changes).decide()
    assert decision.kind is kind, decision.reason
    assert decision.to_percent == to_percent
    assert decision.escalate is escalate, decision.reason
    assert reason in decision.reason


def test_each_step_is_judged_on_its_own_minutes() -> None:
    """At 30 % the live triggers count only the 30 % step's minutes, and its exposure suffices."""
    plan = parse_plan(PLAN)
    buckets = [_bucket(m, 10, HEALTHY) for m in range(40)] + [
        _bucket(m, 30, HEALTHY) for m in range(40, 50)
    ]
    now = T0 + timedelta(minutes=50, seconds=5)
    state = RolloutState(1, 30, T0, T0 + timedelta(minutes=40, seconds=5), 1800.0, now)
    decision = decide(plan, state, Evidence(tuple(buckets), 2000.0), now)
    assert decision.kind is DecisionKind.ADVANCE
    assert (decision.from_percent, decision.to_percent) == (30, 50)
    assert _trigger(decision, "error_rate").n_candidate == 10 * 300


def test_flag_disagreeing_with_the_step_holds() -> None:
    """Buckets reporting another percentage than the step's hold the rollout and escalate."""
    inputs = scenario()
    buckets = tuple(replace(b, canary_percent=30) for b in inputs.evidence.buckets)
    decision = replace(inputs, evidence=Evidence(buckets, 2000.0)).decide()
    assert decision.kind is DecisionKind.HOLD and decision.escalate
    assert "the flag reported 30 % during a 10 % step" in decision.reason


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ({"failures": 2000}, "candidate.failures (2000) exceeds candidate.requests (100)"),
        ({"requests": -5}, "requests is negative"),
        ({"latency_ms": Moments(100, math.nan, 1.0)}, "latency_ms.total is nan"),
        ({"slow": 10_000}, "slow (10000) exceeds"),
    ],
)
def test_impossible_evidence_holds_and_escalates(bad: dict[str, Any], fragment: str) -> None:
    """NaN, negative or inconsistent counts are never acted on."""
    inputs = scenario(candidate={"error": 0.5})
    buckets = list(inputs.evidence.buckets)
    buckets[3] = replace(buckets[3], candidate=replace(buckets[3].candidate, **bad))
    decision = replace(inputs, evidence=Evidence(tuple(buckets), 2000.0)).decide()
    assert decision.kind is DecisionKind.HOLD and decision.escalate
    assert "inputs cannot be trusted" in decision.reason and fragment in decision.reason


def test_paused_past_the_deadline_does_not_escalate() -> None:
    """A rollout a person paused is not escalated again when its step deadline passes."""
    inputs = scenario(plan_extra="exposure: {deadline: 30m}\n", paused=True)
    decision = inputs.decide()
    assert decision.kind is DecisionKind.HOLD and not decision.escalate
    assert decision.reason.startswith("paused")


def test_naive_clock_holds() -> None:
    """A timezone-less ``now`` is refused rather than compared wrongly."""
    inputs = scenario()
    decision = decide(inputs.plan, inputs.state, inputs.evidence, inputs.now.replace(tzinfo=None))
    assert decision.kind is DecisionKind.HOLD and "without a timezone" in decision.reason


def test_dry_run_trigger_records_but_never_acts() -> None:
    """A dry-run trigger finding harm is reported and named in the reason but does not act."""
    inputs = scenario(
        candidate={"error": 0.05}, minutes=20, plan_extra="triggers:\n  error_rate: dry-run\n"
    )
    decision = inputs.decide()
    assert decision.kind is DecisionKind.ADVANCE  # every act trigger is certified
    result = _trigger(decision, "error_rate")
    assert result.verdict is Verdict.HARM and result.mode is TriggerMode.DRY_RUN
    assert result.statistic >= result.threshold
    assert "dry-run, not acted on: error_rate would roll back" in decision.reason


def test_dry_run_trigger_does_not_block_advance() -> None:
    """An inconclusive dry-run trigger does not hold a step the act triggers certify."""
    inputs = scenario(plan_extra="triggers:\n  error_rate: {margin: 0.002, mode: dry-run}\n")
    decision = inputs.decide()
    assert _trigger(decision, "error_rate").verdict is Verdict.INCONCLUSIVE
    assert decision.kind is DecisionKind.ADVANCE


def test_open_bucket_and_buckets_before_the_rollout_are_ignored() -> None:
    """Only closed minutes since the rollout started count as evidence."""
    inputs = scenario()
    broken = {**HEALTHY, "error": 0.9}
    before = _bucket(-5, 10, broken)
    still_open = replace(_bucket(40, 10, broken), start=inputs.now - timedelta(seconds=5))
    evidence = Evidence((before, *inputs.evidence.buckets, still_open), 2000.0)
    decision = replace(inputs, evidence=evidence).decide()
    assert decision.kind is DecisionKind.ADVANCE
    assert _trigger(decision, "error_rate").n_candidate == 40 * 100


@pytest.mark.parametrize(
    ("extra", "verdict", "kind"),
    [
        ("", Verdict.NOT_APPLICABLE, DecisionKind.ADVANCE),
        ("triggers:\n  ttft: {required: true}\n", Verdict.INSUFFICIENT, DecisionKind.HOLD),
    ],
)
def test_triggers_without_data(extra: str, verdict: Verdict, kind: DecisionKind) -> None:
    """No observations at all: not applicable, unless the plan marks the trigger required."""
    inputs = scenario(plan_extra=extra)
    buckets = tuple(
        replace(
            b,
            baseline=replace(b.baseline, ttft_ms=Moments()),
            candidate=replace(b.candidate, ttft_ms=Moments()),
        )
        for b in inputs.evidence.buckets
    )
    decision = replace(inputs, evidence=Evidence(buckets, 2000.0)).decide()
    assert _trigger(decision, "ttft").verdict is verdict
    assert decision.kind is kind


def test_slow_counts_at_the_wrong_threshold_are_not_used() -> None:
    """Exceedances counted against another latency than baseline p99 + margin block ADVANCE."""
    inputs = scenario()
    decision = replace(inputs, evidence=Evidence(inputs.evidence.buckets, 1500.0)).decide()
    result = _trigger(decision, "p99_latency")
    assert result.verdict is Verdict.INSUFFICIENT and "need 2000.0 ms" in result.detail
    assert decision.kind is DecisionKind.HOLD


def test_rollback_reason_names_the_trigger_and_its_numbers() -> None:
    """The audit reason carries the counts per arm, the e-value and its threshold."""
    decision = scenario(candidate={"error": 0.05}, minutes=20).decide()
    result = _trigger(decision, "error_rate")
    assert result.verdict is Verdict.HARM
    assert (result.n_candidate, result.n_baseline) == (2000, 18000)
    assert result.candidate_value == pytest.approx(0.05)
    assert result.threshold == pytest.approx(3 / 0.004)  # alpha_m spent over 3 steps
    assert "canary 100/2000 (5.00 %) vs baseline 180/18000 (1.00 %)" in decision.reason


def test_every_trigger_reports_its_evidence() -> None:
    """Each enabled trigger reports n per arm, estimate, statistic, threshold, bounds and mode."""
    decision = scenario().decide()
    assert {r.name for r in decision.triggers} == set(parse_plan(PLAN).triggers.enabled())
    for result in decision.triggers:
        assert result.verdict in (Verdict.CERTIFIED, Verdict.NOT_APPLICABLE), result.detail
        if result.verdict is Verdict.CERTIFIED:
            assert result.n_candidate > 0 and result.n_baseline > 0
            assert None not in (result.lower, result.estimate, result.upper)
            assert result.lower <= result.estimate <= result.upper < result.margin  # type: ignore[operator]
            assert result.statistic < result.threshold


def test_trigger_alpha_splits_the_budget() -> None:
    """Act triggers spend at most alpha together; dry-run ones report the alpha they would get."""
    plan = parse_plan(PLAN + "alpha: 0.02\ntriggers:\n  refusals: {alpha_share: 0.5}\n")
    act = [n for n, c in plan.triggers.enabled().items() if c.mode is TriggerMode.ACT]
    assert sum(trigger_alpha(plan, n) for n in act) == pytest.approx(0.02)
    assert trigger_alpha(plan, "cost") == pytest.approx(0.02 * 0.05 / 1.45)


CASE_INPUTS = [
    scenario(),
    scenario(candidate={"error": 0.05}, minutes=20),
    scenario(plan_extra=TIGHT_MARGIN + "exposure: {deadline: 30m}\n"),
    scenario(canary_share=0.03),
    scenario(quality=-0.2, minutes=20, plan_extra="triggers:\n  quality: dry-run\n"),
]


@pytest.mark.parametrize("inputs", CASE_INPUTS)
def test_replay_from_the_audit_json_is_identical(inputs: DecisionInputs) -> None:
    """Inputs and Decision survive standard JSON; replaying the inputs gives the same Decision."""
    decision = inputs.decide()
    stored_inputs, stored_decision = inputs.to_json(), decision.to_json()
    json.loads(stored_inputs), json.loads(stored_decision)  # standard JSON, no NaN tokens
    replayed = DecisionInputs.from_json(stored_inputs)
    assert replayed == inputs
    assert replayed.decide() == decision == Decision.from_json(stored_decision)
    assert Decision.from_json(stored_decision).to_json() == stored_decision


def test_nan_evidence_is_stored_and_replayed() -> None:
    """Broken inputs are recorded as they came (NaN as a string) and replay to the same HOLD."""
    inputs = scenario()
    buckets = list(inputs.evidence.buckets)
    buckets[0] = replace(
        buckets[0], candidate=replace(buckets[0].candidate, cost_usd=Moments(1, math.inf, 0.0))
    )
    broken = replace(inputs, evidence=Evidence(tuple(buckets), 2000.0))
    text = broken.to_json()
    assert "Infinity" in text
    replayed = DecisionInputs.from_json(text)
    assert replayed.decide() == broken.decide()
    assert replayed.decide().kind is DecisionKind.HOLD
