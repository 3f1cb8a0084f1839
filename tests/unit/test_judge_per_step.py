"""The tail trigger against the concurrent baseline, and per-step judgement with alpha spent."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from shadowcanary.judge.decide import DecisionKind, decide
from shadowcanary.judge.evidence import Bucket, Evidence, EvidenceTable, RolloutState
from shadowcanary.judge.triggers import (
    Verdict,
    enough_events,
    judged_steps,
    step_alpha,
    trigger_alpha,
)
from shadowcanary.plan import TriggerMode, parse_plan
from tests.unit.test_decide import HEALTHY, PLAN, T0, _arm, _trigger

SLOW_MS, TAIL_MS = 2000.0, 1800.0


def _minutes(
    first: int, count: int, percent: int, baseline: dict[str, float], candidate: dict[str, float]
) -> list[Bucket]:
    """``count`` minutes of 10,000 requests at ``percent``, each arm with its own profile."""
    canary = round(100 * percent)
    return [
        Bucket(
            start=T0 + timedelta(minutes=m),
            canary_percent=percent,
            baseline=_arm(10_000 - canary, {**HEALTHY, **baseline}),
            candidate=_arm(canary, {**HEALTHY, **candidate}),
        )
        for m in range(first, first + count)
    ]


def _decide(buckets: list[Bucket], step_index: int = 0, step_started: int = 0) -> object:
    plan = parse_plan(PLAN + "triggers:\n  quality: off\n  shadow_invalid_json: off\n")
    now = buckets[-1].start + timedelta(minutes=1, seconds=5)
    percent = plan.steps[step_index].percent
    state = RolloutState(
        step_index, percent, T0, T0 + timedelta(minutes=step_started), TAIL_MS, now
    )
    return decide(plan, state, Evidence(tuple(buckets), SLOW_MS, TAIL_MS), now)


# (baseline share above its p99 T, baseline above T + margin, canary above T + margin,
#  canary above T, verdict): harm is canary-above-(T + margin) beyond baseline-above-T.
TAIL_CASES = [
    pytest.param(0.01, 0.006, 0.006, 0.01, Verdict.CERTIFIED, id="a-a-stationary"),
    pytest.param(0.30, 0.22, 0.22, 0.30, Verdict.CERTIFIED, id="a-a-both-arms-1.6x-slower"),
    pytest.param(0.01, 0.006, 0.05, 0.08, Verdict.HARM, id="canary-tail-far-slower"),
    pytest.param(0.30, 0.22, 0.60, 0.70, Verdict.HARM, id="canary-slower-during-a-shared-slowdown"),
    pytest.param(0.01, 0.006, 0.009, 0.012, Verdict.INCONCLUSIVE, id="inside-the-margin-not-harm"),
]


@pytest.mark.parametrize(("b_tail", "b_slow", "c_slow", "c_tail", "verdict"), TAIL_CASES)
def test_tail_is_judged_against_the_concurrent_baseline(
    b_tail: float, b_slow: float, c_slow: float, c_tail: float, verdict: Verdict
) -> None:
    """A slowdown on both arms is no harm; a canary slower than baseline + margin is."""
    buckets = _minutes(
        0, 60, 10, {"tail": b_tail, "slow": b_slow}, {"tail": c_tail, "slow": c_slow}
    )
    result = _trigger(_decide(buckets), "p99_latency")
    assert result.verdict is verdict, result.detail


def test_a_regression_that_starts_at_a_later_step_meets_a_fresh_test() -> None:
    """1 % -> 3 % errors from the 50 % step's start rolls back within ten minutes of it."""
    healthy = _minutes(0, 300, 10, {}, {})  # five healthy hours before, at 10 %
    regressed = _minutes(300, 10, 50, {}, {"error": 0.03})
    decision = _decide(healthy + regressed, step_index=2, step_started=300)
    assert decision.kind is DecisionKind.ROLLBACK, decision.reason
    assert _trigger(decision, "error_rate").n_candidate == 10 * 5000


def test_a_step_is_certified_on_its_own_minutes_only() -> None:
    """A bad earlier step does not block the next one, whose own minutes are healthy."""
    bad_then_good = _minutes(0, 30, 10, {}, {"error": 0.02}) + _minutes(30, 20, 30, {}, {})
    decision = _decide(bad_then_good, step_index=1, step_started=30)
    result = _trigger(decision, "error_rate")
    assert result.n_candidate == 20 * 3000 and result.verdict is Verdict.CERTIFIED


@pytest.mark.parametrize(
    ("steps", "judged"),
    [("[10, 30, 50, 100]", 3), ("[5, 100]", 1), ("[10, 50, 100]", 2), ("[1, 5, 25, 50, 100]", 4)],
)
def test_alpha_is_spent_across_the_judged_steps(steps: str, judged: int) -> None:
    """Each judged step gets alpha_m / steps, so steps and triggers together spend alpha."""
    plan = parse_plan(PLAN + f"steps: {steps}\n")
    assert judged_steps(plan) == judged
    act = [n for n, c in plan.triggers.enabled().items() if c.mode is TriggerMode.ACT]
    assert judged * sum(step_alpha(plan, n) for n in act) == pytest.approx(plan.alpha)
    assert step_alpha(plan, "error_rate") == pytest.approx(
        trigger_alpha(plan, "error_rate") / judged
    )


@pytest.mark.parametrize(
    ("cn", "bn", "need", "enough"),
    [(1000, 9000, 25, True), (20, 9000, 25, False), (1000, 0, 25, False), (0, 0, 0, False)],
)
def test_minimum_exposure_of_a_rate_comparison(cn: int, bn: int, need: int, enough: bool) -> None:
    """Certifying a rate needs trials on both arms, at least the step's minimum each."""
    assert enough_events(0, cn, 0, bn, need) is enough


def test_tail_counts_at_another_baseline_p99_are_not_used() -> None:
    """Tail counts made against another p99 than the state's leave the trigger insufficient."""
    buckets = _minutes(0, 30, 10, {}, {})
    plan = parse_plan(PLAN)
    now = buckets[-1].start + timedelta(minutes=1, seconds=5)
    state = RolloutState(0, 10, T0, T0, TAIL_MS, now)
    decision = decide(plan, state, Evidence(tuple(buckets), SLOW_MS, 1500.0), now)
    result = _trigger(decision, "p99_latency")
    assert result.verdict is Verdict.INSUFFICIENT and "need 2000.0 / 1800.0 ms" in result.detail
    assert replace(decision).kind is DecisionKind.HOLD


def test_cached_rows_follow_the_buckets_handed_in() -> None:
    """A tick handed a changed minute (a new Bucket object) sees its numbers, not a cached row."""
    buckets = _minutes(0, 5, 10, {}, {})
    first = EvidenceTable.of(buckets).column("candidate.failures").copy()
    changed = replace(buckets[2], candidate=replace(buckets[2].candidate, failures=77))
    again = EvidenceTable.of([*buckets[:2], changed, *buckets[3:]]).column("candidate.failures")
    assert again[2] == 77 and first[2] != 77
    assert list(EvidenceTable.of(buckets).column("candidate.failures")) == list(first)
