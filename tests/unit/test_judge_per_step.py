"""The tail trigger against the concurrent baseline, and per-step judgement with alpha spent."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from shadowcanary.judge.decide import Decision, DecisionKind, decide
from shadowcanary.judge.evidence import (
    Bucket,
    Evidence,
    EvidenceTable,
    RolloutState,
    ShadowCounts,
)
from shadowcanary.judge.triggers import Verdict, judged_steps, step_alpha, trigger_alpha
from shadowcanary.plan import TriggerMode, parse_plan
from tests.unit.test_decide import HEALTHY, PLAN, T0, _arm, _moments, _trigger

BASELINE_P99_MS, SLOW_MS = 1800.0, 2000.0


def _minutes(
    first: int,
    count: int,
    percent: int,
    baseline: dict[str, float],
    candidate: dict[str, float],
    quality: float = 0.0,
) -> list[Bucket]:
    """``count`` minutes of 10,000 requests at ``percent``, each arm with its own profile."""
    canary = round(100 * percent)
    return [
        Bucket(
            start=T0 + timedelta(minutes=m),
            canary_percent=percent,
            baseline=_arm(10_000 - canary, {**HEALTHY, **baseline}),
            candidate=_arm(canary, {**HEALTHY, **candidate}),
            shadow=ShadowCounts(similarity_diff=_moments(20, quality, 0.05)),
        )
        for m in range(first, first + count)
    ]


def _decide(buckets: list[Bucket], step_index: int = 0, step_started: int = 0) -> Decision:
    plan = parse_plan(PLAN + "triggers:\n  shadow_invalid_json: off\n")
    now = buckets[-1].start + timedelta(minutes=1, seconds=5)
    percent = plan.steps[step_index].percent
    state = RolloutState(
        step_index, percent, T0, T0 + timedelta(minutes=step_started), BASELINE_P99_MS, now
    )
    return decide(plan, state, Evidence(tuple(buckets), SLOW_MS), now)


# Shares of each arm's requests slower than the frozen p99 + 200 ms, and the verdict.
TAIL_CASES = [
    pytest.param(0.006, 0.006, Verdict.CERTIFIED, id="a-a-stationary"),
    pytest.param(0.10, 0.10, Verdict.CERTIFIED, id="a-a-both-arms-slower"),
    pytest.param(0.006, 0.05, Verdict.HARM, id="canary-tail-far-slower"),
    pytest.param(0.10, 0.20, Verdict.HARM, id="canary-slower-during-a-shared-slowdown"),
]


@pytest.mark.parametrize(("baseline_slow", "canary_slow", "verdict"), TAIL_CASES)
def test_tail_is_judged_against_the_concurrent_baseline(
    baseline_slow: float, canary_slow: float, verdict: Verdict
) -> None:
    """A slowdown on both arms is no harm; a canary with more slow requests than the baseline is."""
    buckets = _minutes(0, 30, 10, {"slow": baseline_slow}, {"slow": canary_slow})
    result = _trigger(_decide(buckets), "p99_latency")
    assert result.verdict is verdict, result.detail


def test_a_regression_that_starts_at_a_later_step_meets_a_fresh_test() -> None:
    """1 % -> 3 % errors from the 50 % step's start rolls back within five minutes of it."""
    healthy = _minutes(0, 300, 10, {}, {})  # five healthy hours before, at 10 %
    regressed = _minutes(300, 5, 50, {}, {"error": 0.03})
    decision = _decide(healthy + regressed, step_index=2, step_started=300)
    assert decision.kind is DecisionKind.ROLLBACK, decision.reason
    assert _trigger(decision, "error_rate").n_candidate == 5 * 5000


def test_a_step_is_certified_on_its_own_minutes_only() -> None:
    """A bad earlier step does not block the next one, whose own minutes are healthy."""
    bad_then_good = _minutes(0, 30, 10, {}, {"error": 0.02}) + _minutes(30, 20, 30, {}, {})
    decision = _decide(bad_then_good, step_index=1, step_started=30)
    result = _trigger(decision, "error_rate")
    assert result.n_candidate == 20 * 3000 and result.verdict is Verdict.CERTIFIED


def test_shadow_triggers_keep_the_whole_rollout() -> None:
    """The shadow quality trigger counts every minute since the start, not only the step's."""
    buckets = _minutes(0, 30, 10, {}, {}) + _minutes(30, 20, 30, {}, {})
    decision = _decide(buckets, step_index=1, step_started=30)
    assert _trigger(decision, "quality").n_candidate == 50 * 20
    assert _trigger(decision, "ttft").n_candidate == 20 * 3000


@pytest.mark.parametrize(
    ("steps", "judged"),
    [("[10, 30, 50, 100]", 3), ("[5, 100]", 1), ("[10, 50, 100]", 2), ("[1, 5, 25, 50, 100]", 4)],
)
def test_alpha_is_spent_across_the_judged_steps(steps: str, judged: int) -> None:
    """A live trigger gets alpha_m / steps per step; a shadow trigger keeps alpha_m once."""
    plan = parse_plan(PLAN + f"steps: {steps}\n")
    assert judged_steps(plan) == judged
    act = [n for n, c in plan.triggers.enabled().items() if c.mode is TriggerMode.ACT]
    spent = sum(
        step_alpha(plan, n) * (judged if n not in ("quality", "shadow_invalid_json") else 1)
        for n in act
    )
    assert spent == pytest.approx(plan.alpha)
    assert step_alpha(plan, "error_rate") == pytest.approx(
        trigger_alpha(plan, "error_rate") / judged
    )
    assert step_alpha(plan, "quality") == pytest.approx(trigger_alpha(plan, "quality"))


def test_cached_rows_follow_the_buckets_handed_in() -> None:
    """A tick handed a changed minute (a new Bucket object) sees its numbers, not a cached row."""
    buckets = _minutes(0, 5, 10, {}, {})
    first = EvidenceTable.of(buckets).column("candidate.failures").copy()
    changed = replace(buckets[2], candidate=replace(buckets[2].candidate, failures=77))
    again = EvidenceTable.of([*buckets[:2], changed, *buckets[3:]]).column("candidate.failures")
    assert again[2] == 77 and first[2] != 77
    assert list(EvidenceTable.of(buckets).column("candidate.failures")) == list(first)


def test_a_reused_minute_is_checked_on_every_tick() -> None:
    """A minute with impossible numbers holds every tick, not only the tick that first saw it."""
    buckets = _minutes(0, 30, 10, {}, {})
    buckets[4] = replace(buckets[4], candidate=replace(buckets[4].candidate, failures=-1))
    first, again = _decide(buckets), _decide([*buckets, *_minutes(30, 1, 10, {}, {})])
    for decision in (first, again):
        assert decision.kind is DecisionKind.HOLD and "failures is negative" in decision.reason


def test_decisions_from_cached_rows_equal_decisions_from_scratch() -> None:
    """Ticks that reuse converted rows decide exactly as a table built anew would."""
    buckets = _minutes(0, 40, 10, {}, {"error": 0.012})
    reused = [_decide(buckets[:n]).to_json() for n in range(20, 41)]
    fresh = []
    for n in range(20, 41):
        copies = [replace(b) for b in buckets[:n]]  # new objects: nothing to reuse
        fresh.append(_decide(copies).to_json())
    assert reused == fresh
