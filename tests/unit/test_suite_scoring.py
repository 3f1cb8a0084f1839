"""Suite scoring through the judge, per-metric summaries and the pass/fail gate."""

from __future__ import annotations

from typing import Any

import pytest

from shadowcanary.events import ModelRequest, ToolCall
from shadowcanary.judge.types import CallOutput
from shadowcanary.suite.cases import Expectations, MatchMode, SuiteCase
from shadowcanary.suite.gate import CheckStatus, GatePolicy, evaluate_gate
from shadowcanary.suite.metrics import Metric
from shadowcanary.suite.runner import CallResult, SuiteArm
from shadowcanary.suite.scoring import judge_answer, score_case
from shadowcanary.suite.summary import summarise

SCHEMA = {
    "type": "object",
    "required": ["category", "priority"],
    "properties": {"priority": {"enum": ["low", "high"]}},
}
ANSWER = "Go to Settings, then Billing, then Quotas and request an increase."


def _case(case_id: str = "c", **expect: Any) -> SuiteCase:
    parameters: dict[str, Any] = expect.pop("parameters", {})
    tools = expect.pop("tools", [])
    request = ModelRequest.model_validate(
        {
            "messages": [{"role": "user", "content": "How do I raise my quota?"}],
            "tools": tools,
            "parameters": parameters,
        }
    )
    return SuiteCase(case_id, request, Expectations(**expect), "suite.jsonl:1")


def _out(text: str | None = ANSWER, **fields: Any) -> CallOutput:
    return CallOutput(model="m", text=text, finish_reason="stop", latency_ms=100.0, **fields)


def _results(
    case: SuiteCase, baseline: list[CallOutput | None], candidate: list[CallOutput | None]
) -> list[CallResult]:
    results = []
    for arm, outputs in ((SuiteArm.BASELINE, baseline), (SuiteArm.CANDIDATE, candidate)):
        for repeat, output in enumerate(outputs):
            error = None if output is not None else "UpstreamUnavailable: m: HTTP 500"
            results.append(CallResult(case.case_id, arm, repeat, output, error))
    return results


@pytest.mark.parametrize(
    ("expect", "text", "expected"),
    [
        ({"output": "Paris", "match": MatchMode.EXACT}, "Paris", True),
        ({"output": "Paris", "match": MatchMode.EXACT}, "paris.", False),
        ({"output": "Paris", "match": MatchMode.NORMALIZED}, "  paris. ", True),
        ({"output": '{"a": 1, "b": [2]}', "match": MatchMode.JSON}, '{"b": [2], "a": 1}', True),
        ({"output": '{"a": 1}', "match": MatchMode.JSON}, "not json", False),
    ],
)
def test_expected_output_modes(expect: dict[str, Any], text: str, expected: bool) -> None:
    """Exact, normalised and JSON matching against the expected output."""
    assert judge_answer(_case(**expect), _out(text)).expected is expected


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ('{"category": "storage", "priority": "high"}', True),
        ('{"category": "storage", "priority": "urgent"}', False),
        ('{"category": "storage"}', False),
        ("Sure! Here is the JSON: {", False),
    ],
)
def test_schema_expectation(text: str, valid: bool) -> None:
    """A case's schema is checked on the answer's text; breaking it makes the answer invalid."""
    answer = judge_answer(
        _case(schema=SCHEMA, parameters={"response_format": {"type": "json_object"}}), _out(text)
    )
    assert answer.valid is valid
    assert answer.schema_ok is valid


def test_tool_expectation_and_judge_tool_checks() -> None:
    """The expected tool must be called; the judge flags arguments that break its schema."""
    tools = [{"name": "lookup", "parameters": {"type": "object", "required": ["id"]}}]
    case = _case(tool="lookup", tools=tools)
    good = judge_answer(
        case, _out(None, tool_calls=(ToolCall(name="lookup", arguments='{"id": "4411"}'),))
    )
    assert (good.tool, good.valid) == (True, True)
    bad = judge_answer(case, _out(None, tool_calls=(ToolCall(name="lookup", arguments="{}"),)))
    assert (bad.tool, bad.valid) == (True, False)
    none = judge_answer(case, _out("I cannot look that up."))
    assert none.tool is False


def test_truncated_or_refused_answers_are_not_clean() -> None:
    """finish_reason=length and refusals count against the clean rate."""
    case = _case()
    assert judge_answer(case, _out()).clean
    assert not judge_answer(
        case, CallOutput(model="m", text="Partial answ", finish_reason="length")
    ).clean
    assert not judge_answer(case, _out("I'm sorry, but I can't help with that.")).clean


def test_score_case_noise_floor_and_failures() -> None:
    """The baseline's similarity is its noise floor; failed calls only count against success."""
    case = _case()
    other = "Open Billing and ask support to raise the quota for you."
    score = score_case(
        case, _results(case, [_out(), _out(), _out()], [_out(other), None, _out(other)])
    )
    assert score.baseline.values[Metric.SIMILARITY] == 1.0
    assert score.candidate.values[Metric.SIMILARITY] < 0.6
    assert score.baseline.values[Metric.SUCCESS] == 1.0
    assert score.candidate.values[Metric.SUCCESS] == pytest.approx(2 / 3)
    assert score.candidate.values[Metric.CLEAN] == 1.0  # the failed call is not "unclean"
    assert score.candidate.failed == 1
    assert score.candidate.errors == ("UpstreamUnavailable: m: HTTP 500",)
    assert Metric.VALID not in score.candidate.values  # not a structured case


def test_recorded_baseline_has_no_noise_floor() -> None:
    """A captured case has one baseline answer: similarity only for the candidate."""
    case = _case(min_similarity=0.9)
    score = score_case(case, _results(case, [_out()], [_out(), _out("Something else entirely.")]))
    assert Metric.SIMILARITY not in score.baseline.values
    assert score.candidate.values[Metric.SIMILARITY] == pytest.approx(0.5, abs=0.05)
    assert score.below_min_similarity
    assert any("below 0.90" in p for p in score.problems)


def _suite(n: int, candidate_text: str, **expect: Any) -> list[Any]:
    scores = []
    for i in range(n):
        case = _case(f"case-{i}", **expect)
        scores.append(
            score_case(case, _results(case, [_out(), _out(), _out()], [_out(candidate_text)] * 3))
        )
    return scores


def _gate(scores: list[Any], policy: GatePolicy | None = None) -> dict[str, Any]:
    result = evaluate_gate(scores, summarise(scores, seed=0), policy or GatePolicy())
    return {check.name: check for check in result.checks} | {"passed": result.passed}


def test_gate_passes_an_identical_candidate() -> None:
    """Identical answers pass every check; checks without data are skipped, not failed."""
    gate = _gate(_suite(8, ANSWER))
    assert gate["passed"]
    assert gate["similarity drop"].status is CheckStatus.PASS
    assert gate["valid drop"].status is CheckStatus.SKIPPED
    assert gate["schema valid"].status is CheckStatus.SKIPPED


def test_gate_fails_on_a_similarity_drop_beyond_the_limit() -> None:
    """A candidate far from the baseline fails the similarity check, with the numbers."""
    gate = _gate(_suite(8, "Completely unrelated words about the weather in Lisbon."))
    check = gate["similarity drop"]
    assert not gate["passed"]
    assert check.status is CheckStatus.FAIL
    assert check.observed is not None and check.observed < -0.1
    assert "Wilcoxon p=" in check.detail and "n=8" in check.detail


def test_gate_fails_when_any_schema_answer_is_invalid() -> None:
    """All schema cases must be valid: one broken case fails the gate."""
    json_case = {"schema": SCHEMA, "parameters": {"response_format": {"type": "json_object"}}}
    good = '{"category": "storage", "priority": "high"}'
    scores = _suite(5, good, **json_case)
    broken = _case("broken", **json_case)
    scores.append(
        score_case(broken, _results(broken, [_out(good)] * 3, [_out(good), _out("{"), _out(good)]))
    )
    gate = _gate(scores)
    assert gate["schema valid"].status is CheckStatus.FAIL
    assert gate["schema valid"].observed == 1
    assert "broken" in gate["schema valid"].detail
    relaxed = _gate(scores, GatePolicy(require_schema_valid=False, max_drops={Metric.VALID: 0.1}))
    assert relaxed["passed"]


def test_strict_gate_uses_the_pessimistic_bound() -> None:
    """A small drop within the limit passes on the estimate but fails on the interval's bound."""
    slightly_off = ANSWER.replace("request an increase", "ask for an increase")
    scores = _suite(3, slightly_off) + _suite(3, ANSWER)
    lenient = _gate(scores, GatePolicy(max_drops={Metric.SIMILARITY: 0.08}))
    strict = _gate(
        scores, GatePolicy(max_drops={Metric.SIMILARITY: 0.08}, use_confidence_bound=True)
    )
    assert lenient["similarity drop"].status is CheckStatus.PASS
    assert strict["similarity drop"].status is CheckStatus.FAIL


def test_gate_latency_limit_is_relative() -> None:
    """--max-latency-increase compares the mean latency increase with a relative limit."""
    case = _case()
    slow = CallOutput(model="m", text=ANSWER, finish_reason="stop", latency_ms=150.0)
    scores = [score_case(case, _results(case, [_out()] * 2, [slow] * 2))]
    gate = _gate(scores, GatePolicy(max_latency_increase=0.2))
    assert gate["latency increase"].status is CheckStatus.FAIL
    assert gate["latency increase"].observed == pytest.approx(0.5)
