"""The user-outcome triggers in the pure judge, and the outcome report contract."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shadowcanary.errors import InvalidEvent, PayloadTooLarge
from shadowcanary.judge.decide import DecisionInputs
from shadowcanary.judge.evidence import ArmCounts, Bucket, Evidence, EvidenceTable, RolloutState
from shadowcanary.judge.outcome_rates import NO_OUTCOMES
from shadowcanary.judge.triggers import TriggerContext, Verdict, evaluate, trigger_alpha
from shadowcanary.outcomes import MAX_OUTCOME_BYTES, parse_outcome
from shadowcanary.plan import TriggerMode, parse_plan

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
PLAN = """\
name: outcomes
flag: outcomes-flag
baseline: gpt-5.2
candidate: gpt-5.5
triggers:
  completion_rate: act
  negative_feedback: act
  escalation_rate: dry-run
"""


def _arm(n: int, *, tasks: float, abandoned: float, negative: float, escalated: float) -> ArmCounts:
    """n calls, every one with an outcome; shares of them as given."""
    task_count = round(n * tasks)
    return ArmCounts(
        requests=n,
        outcomes=n,
        tasks=task_count,
        abandoned=round(task_count * abandoned),
        negative=round(n * negative),
        escalated=round(n * escalated),
    )


def _table(baseline: ArmCounts, candidate: ArmCounts, minutes: int = 10) -> EvidenceTable:
    buckets = [
        Bucket(T0 + timedelta(minutes=i), 50.0, baseline=baseline, candidate=candidate)
        for i in range(minutes)
    ]
    return EvidenceTable.of(buckets)


def _verdict(name: str, table: EvidenceTable) -> tuple[Verdict, str]:
    plan = parse_plan(PLAN)
    config = plan.triggers.enabled()[name]
    ctx = TriggerContext(
        table=table,
        alpha=trigger_alpha(plan, name),
        certify_alpha=plan.certify_alpha,
        min_events=25,
        slow_threshold_ms=None,
        counted_threshold_ms=None,
    )
    result = evaluate(name, config, ctx)
    return result.verdict, result.detail


HEALTHY = {"tasks": 0.8, "abandoned": 0.1, "negative": 0.05, "escalated": 0.02}


@pytest.mark.parametrize(
    ("name", "candidate", "expected"),
    [
        ("completion_rate", HEALTHY, Verdict.CERTIFIED),
        ("completion_rate", {**HEALTHY, "abandoned": 0.3}, Verdict.HARM),
        ("negative_feedback", HEALTHY, Verdict.CERTIFIED),
        ("negative_feedback", {**HEALTHY, "negative": 0.2}, Verdict.HARM),
        ("escalation_rate", HEALTHY, Verdict.CERTIFIED),
        ("escalation_rate", {**HEALTHY, "escalated": 0.1}, Verdict.HARM),
    ],
)
def test_each_outcome_trigger_certifies_like_for_like_and_finds_harm(
    name: str, candidate: dict[str, float], expected: Verdict
) -> None:
    """Equal outcomes certify; a candidate whose users abandon, dislike or escalate more is harm."""
    table = _table(_arm(400, **HEALTHY), _arm(400, **candidate))
    verdict, detail = _verdict(name, table)
    assert verdict is expected, detail


def test_no_outcomes_is_insufficient_with_the_reason_never_not_applicable() -> None:
    """A listed outcome trigger with nothing reported is insufficient (blocks), and says why."""
    empty = ArmCounts(requests=400)
    verdict, detail = _verdict("completion_rate", _table(empty, empty))
    assert verdict is Verdict.INSUFFICIENT and detail == NO_OUTCOMES


def test_outcome_triggers_are_off_unless_listed_and_share_alpha_when_on() -> None:
    """A plan without them has none; listed, act ones take a share of alpha like the others."""
    minimal = parse_plan("name: a\nflag: b\nbaseline: x\ncandidate: y\n")
    assert {"completion_rate", "negative_feedback", "escalation_rate"}.isdisjoint(
        minimal.triggers.enabled()
    )
    plan = parse_plan(PLAN)
    assert plan.triggers.completion_rate.required and plan.triggers.completion_rate.margin == 0.05
    assert plan.triggers.escalation_rate.mode is TriggerMode.DRY_RUN
    act = [n for n, c in plan.triggers.enabled().items() if c.mode is TriggerMode.ACT]
    assert sum(trigger_alpha(plan, n) for n in act) == pytest.approx(plan.alpha)


def test_impossible_outcome_counts_make_the_evidence_untrusted() -> None:
    """More abandoned tasks than tasks, or negatives than outcomes: named as impossible."""
    bad = ArmCounts(requests=10, outcomes=5, tasks=3, abandoned=4, negative=6)
    problems = Evidence(buckets=(Bucket(T0, 50.0, candidate=bad),)).problems()
    assert problems and "candidate.abandoned (4) exceeds candidate.tasks (3)" in problems[0]
    assert "candidate.negative (6) exceeds candidate.outcomes (5)" in problems[0]


def test_audit_rows_from_before_outcomes_still_replay() -> None:
    """Evidence JSON without the outcome counts (older audit rows) loads with zeros."""
    inputs = DecisionInputs(
        plan=parse_plan(PLAN),
        state=RolloutState(0, 10, T0, T0),
        evidence=Evidence(buckets=(Bucket(T0, 10.0, candidate=ArmCounts(requests=5)),)),
        now=T0 + timedelta(minutes=2),
    )
    data = json.loads(inputs.to_json())
    for arm in ("baseline", "candidate"):
        for name in ("outcomes", "tasks", "abandoned", "negative", "escalated"):
            del data["evidence"]["buckets"][0][arm][name]
    loaded = DecisionInputs.from_json(json.dumps(data))
    assert loaded.evidence.buckets[0].candidate.outcomes == 0
    assert loaded.decide().to_dict() == inputs.decide().to_dict()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"event_id": "abcdefgh"}, "says nothing"),
        ({"event_id": "abcdefgh", "task": "done"}, "task: Input should be 'completed' or"),
        ({"event_id": "abcdefgh", "feedback": "meh"}, "feedback: Input should be 'up' or"),
        ({"event_id": "abc", "retried": True}, "event_id: String should have at least 8"),
        ({"event_id": "abcdefgh", "value": 1e13}, "value: Input should be less than or equal"),
        ({"event_id": "abcdefgh", "retried": True, "extra": 1}, "extra: Extra inputs"),
        ({"event_id": "abcdefgh", "retried": True, "schema_version": 2}, "schema_version 2"),
    ],
)
def test_a_bad_outcome_report_is_refused_naming_the_field(
    raw: dict[str, object], message: str
) -> None:
    """Each broken report raises InvalidEvent whose text names the field and the fix."""
    with pytest.raises(InvalidEvent) as caught:
        parse_outcome({"reported_at": T0.isoformat(), **raw}, size=100)
    assert message in str(caught.value)


def test_an_outcome_report_over_the_size_limit_is_refused() -> None:
    """Prompt text pasted into a report is refused by size before it is parsed."""
    with pytest.raises(PayloadTooLarge, match="4096-byte limit"):
        parse_outcome({"event_id": "abcdefgh"}, size=MAX_OUTCOME_BYTES + 1)
