"""Score each case's answers with the judge: the same comparators as the shadow path.

Every answer is inspected with ``judge.inspect_output`` (empty, truncated, refusal,
JSON and tool-call validity against the request) and compared with the baseline's
reference answer with ``judge.compare``; the case's own expectations (expected
output, JSON schema, expected tool, minimum similarity) are checked on top.

Per case and arm, a metric's value is its mean over that arm's answered calls: a
failed call counts once, against ``success``, and not again against the quality
metrics. The baseline's similarity is its noise floor (its other repeats compared
with its reference answer), Diffy-style: the candidate is judged against how much
the baseline differs from itself, not against perfect agreement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean

from shadowcanary.judge import compare, exact_match, inspect_output, normalized_match
from shadowcanary.judge.structured import parse_json, validate_against_schema
from shadowcanary.judge.types import CallOutput
from shadowcanary.suite.cases import MatchMode, SuiteCase
from shadowcanary.suite.metrics import Metric
from shadowcanary.suite.runner import CallResult, SuiteArm

_MAX_NOTES = 3


@dataclass(frozen=True, slots=True)
class ArmScore:
    """One arm's answers to one case, reduced to metric values."""

    calls: int
    failed: int
    values: Mapping[Metric, float]  # absent: the metric does not apply or had no answer
    errors: tuple[str, ...] = ()  # distinct API errors, a few
    notes: tuple[str, ...] = ()  # the judge's notes on bad answers, a few


@dataclass(frozen=True, slots=True)
class CaseScore:
    """Both arms on one case, and what the candidate did against the case's expectations."""

    case: SuiteCase
    baseline: ArmScore
    candidate: ArmScore
    schema_checked: int  # candidate answers checked against a schema
    schema_failures: int
    baseline_schema_failures: int  # the baseline's: a broken prompt or schema, not a regression
    problems: tuple[str, ...]  # why the candidate falls short on this case, for a person

    @property
    def below_min_similarity(self) -> bool:
        minimum = self.case.expect.min_similarity
        similarity = self.candidate.values.get(Metric.SIMILARITY)
        return minimum is not None and similarity is not None and similarity < minimum


@dataclass(frozen=True, slots=True)
class _Answer:
    """What the judge and the expectations say of one answered call."""

    valid: bool
    schema_ok: bool | None  # None: no schema applies
    clean: bool
    expected: bool | None
    tool: bool | None
    notes: tuple[str, ...]


def _expected_match(case: SuiteCase, text: str | None) -> bool | None:
    expected = case.expect.output
    if expected is None:
        return None
    if case.expect.match is MatchMode.EXACT:
        return exact_match(expected, text)
    if case.expect.match is MatchMode.NORMALIZED:
        return normalized_match(expected, text)
    try:
        return bool(parse_json(expected) == parse_json(text or ""))
    except ValueError:
        return False


def _schema_violations(case: SuiteCase, text: str | None) -> list[str] | None:
    schema = case.expect.schema
    if schema is None:
        return None
    try:
        instance = parse_json(text or "")
    except ValueError:
        return ["the answer is not valid JSON"]
    check = validate_against_schema(instance, schema)
    return [check.unusable] if check.unusable else list(check.violations)


def judge_answer(case: SuiteCase, output: CallOutput) -> _Answer:
    """Everything said of one answer on its own."""
    inspection = inspect_output(output, case.request)
    flags = inspection.flags
    notes = list(inspection.notes)
    violations = _schema_violations(case, output.text)
    if violations:
        notes.extend(f"schema: {v}" for v in violations)
    structurally_valid = not (flags.json_invalid or flags.tool_schema_invalid or flags.tool_unknown)
    # A json_schema response_format is checked by the judge (json_invalid) already.
    schema_ok = None
    if case.schema_case:
        schema_ok = structurally_valid and not violations
    expected_tool = case.expect.tool
    return _Answer(
        valid=structurally_valid and not violations,
        schema_ok=schema_ok,
        clean=not (flags.empty or flags.truncated or flags.refusal),
        expected=_expected_match(case, output.text),
        tool=None
        if expected_tool is None
        else any(call.name == expected_tool for call in output.tool_calls),
        notes=tuple(notes),
    )


def _mean_of(values: Sequence[bool | float | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return fmean(present) if present else None


def _arm_score(
    case: SuiteCase, results: Sequence[CallResult], similarities: Sequence[float]
) -> tuple[ArmScore, list[_Answer]]:
    outputs = [r.output for r in results if r.output is not None]
    answers = [judge_answer(case, output) for output in outputs]
    values: dict[Metric, float | None] = {
        Metric.SUCCESS: len(outputs) / len(results) if results else None,
        Metric.VALID: _mean_of([a.valid for a in answers]) if case.structured else None,
        Metric.CLEAN: _mean_of([a.clean for a in answers]),
        Metric.EXPECTED: _mean_of([a.expected for a in answers]),
        Metric.TOOL: _mean_of([a.tool for a in answers]),
        Metric.SIMILARITY: _mean_of(list(similarities)),
        Metric.LATENCY_MS: _mean_of([o.latency_ms for o in outputs]),
        # 0 means the model has no prices configured: no cost figure, not a free model.
        Metric.COST_USD: _mean_of([o.cost_usd or None for o in outputs]),
    }
    errors = tuple(dict.fromkeys(r.error for r in results if r.error))[:_MAX_NOTES]
    notes = tuple(dict.fromkeys(n for a in answers for n in a.notes))[:_MAX_NOTES]
    score = ArmScore(
        calls=len(results),
        failed=len(results) - len(outputs),
        values={metric: value for metric, value in values.items() if value is not None},
        errors=errors,
        notes=notes,
    )
    return score, answers


def _problems(
    case: SuiteCase, baseline: ArmScore, candidate: ArmScore, schema: tuple[int, int]
) -> list[str]:
    problems = []
    if candidate.calls and candidate.failed == candidate.calls:
        problems.append(f"every call failed: {candidate.errors[0] if candidate.errors else '?'}")
    checked, failures = schema
    if failures:
        problems.append(f"{failures}/{checked} answers break the JSON schema")
    elif candidate.values.get(Metric.VALID, 1.0) < 1.0:
        problems.append("invalid JSON or tool call in some answers")
    minimum = case.expect.min_similarity
    similarity = candidate.values.get(Metric.SIMILARITY)
    if minimum is not None and similarity is not None and similarity < minimum:
        problems.append(f"similarity to the baseline {similarity:.2f} is below {minimum:.2f}")
    for metric, what in ((Metric.EXPECTED, "expected output"), (Metric.TOOL, "expected tool")):
        rate = candidate.values.get(metric)
        if rate is not None and rate < baseline.values.get(metric, 1.0):
            before = baseline.values.get(metric)
            shown = f" (baseline {before:.0%})" if before is not None else ""
            problems.append(f"{what} in {rate:.0%} of answers{shown}")
    if problems and candidate.notes:
        problems.append(f"judge: {candidate.notes[0]}")
    return problems


def score_case(case: SuiteCase, results: Sequence[CallResult]) -> CaseScore:
    """Both arms' metric values on ``case`` from all its calls."""
    ordered = sorted(results, key=lambda r: r.repeat)
    baseline_results = [r for r in ordered if r.arm is SuiteArm.BASELINE]
    candidate_results = [r for r in ordered if r.arm is SuiteArm.CANDIDATE]
    answered = [r.output for r in baseline_results if r.output is not None]
    reference = answered[0] if answered else None

    def similarity(other: CallOutput) -> float:
        assert reference is not None
        return compare(reference, other, case.request).lexical_similarity

    noise = [similarity(o) for o in answered[1:]]
    candidate_sims = (
        [similarity(r.output) for r in candidate_results if r.output is not None]
        if reference is not None
        else []
    )
    baseline, baseline_answers = _arm_score(case, baseline_results, noise)
    candidate, answers = _arm_score(case, candidate_results, candidate_sims)
    schema_verdicts = [a.schema_ok for a in answers if a.schema_ok is not None]
    schema = (len(schema_verdicts), sum(1 for ok in schema_verdicts if not ok))
    return CaseScore(
        case=case,
        baseline=baseline,
        candidate=candidate,
        schema_checked=schema[0],
        schema_failures=schema[1],
        baseline_schema_failures=sum(1 for a in baseline_answers if a.schema_ok is False),
        problems=tuple(_problems(case, baseline, candidate, schema)),
    )


def score_cases(cases: Sequence[SuiteCase], results: Sequence[CallResult]) -> list[CaseScore]:
    """``score_case`` for every case, in suite order."""
    by_case: dict[str, list[CallResult]] = {}
    for result in results:
        by_case.setdefault(result.case_id, []).append(result)
    return [score_case(case, by_case.get(case.case_id, [])) for case in cases]
