"""Comparison of two answers: per-output flags, the scorer chain, captures, noise floor."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shadowcanary.events import (
    CallStatus,
    CapturedCall,
    ChatMessage,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolDefinition,
)
from shadowcanary.judge import (
    DEFAULT_SCORERS,
    CallOutput,
    Comparison,
    OutputFlags,
    ScoringInput,
    assess,
    compare,
    inspect_output,
    output_from_capture,
    paired_difference,
)
from shadowcanary.judge.compare import Fields

SEARCH = ToolDefinition(
    name="search",
    parameters={
        "type": "object",
        "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["query"],
    },
)
PERSON_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "schema": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}},
        },
    },
}
PLAIN = ModelRequest(messages=[ChatMessage(role="user", content="Capital of France?")])
WITH_TOOLS = ModelRequest(messages=[ChatMessage(role="user", content="find cats")], tools=[SEARCH])
JSON_OBJECT = ModelRequest(
    messages=[ChatMessage(role="user", content="as json")],
    tools=[SEARCH],
    parameters={"response_format": {"type": "json_object"}},
)
JSON_SCHEMA = ModelRequest(
    messages=[ChatMessage(role="user", content="who?")],
    parameters={"response_format": PERSON_FORMAT},
)

CLEAN = OutputFlags(
    empty=False,
    truncated=False,
    refusal=False,
    json_expected=False,
    json_invalid=False,
    tool_schema_invalid=False,
    tool_unknown=False,
)


def _out(text: str | None = "Paris.", *calls: ToolCall, **fields: Any) -> CallOutput:
    return CallOutput(model="m", text=text, tool_calls=calls, **fields)


def _call(name: str = "search", arguments: str = '{"query": "cats"}') -> ToolCall:
    return ToolCall(id="c1", name=name, arguments=arguments)


def _flags(**changes: bool) -> OutputFlags:
    return dataclasses.replace(CLEAN, **changes)


@pytest.mark.parametrize(
    ("output", "request_", "expected"),
    [
        (_out("Paris."), PLAIN, CLEAN),
        (_out(""), PLAIN, _flags(empty=True)),
        (_out(None), PLAIN, _flags(empty=True)),
        (_out(" \n\t "), PLAIN, _flags(empty=True)),
        (_out("\u4f60\u597d"), PLAIN, CLEAN),
        (_out("The capital is", finish_reason="length"), PLAIN, _flags(truncated=True)),
        (_out("", finish_reason="length"), PLAIN, _flags(empty=True, truncated=True)),
        (_out("Paris.", finish_reason="stop"), PLAIN, CLEAN),
        (_out("I'm sorry, but I can't help with that."), PLAIN, _flags(refusal=True)),
        (_out("Sorry for the wait! Paris."), PLAIN, CLEAN),
        (_out(None, refusal="I can't assist with that."), PLAIN, _flags(refusal=True)),
        (_out(None, refusal="   "), PLAIN, _flags(empty=True)),
        (
            _out(None, finish_reason="content_filter"),
            PLAIN,
            _flags(empty=True, refusal=True),
        ),
        (_out('{"query": "x"}'), JSON_OBJECT, _flags(json_expected=True)),
        (_out("[1, 2]"), JSON_OBJECT, _flags(json_expected=True)),
        (_out("not json"), JSON_OBJECT, _flags(json_expected=True, json_invalid=True)),
        (_out('{"a": 1'), JSON_OBJECT, _flags(json_expected=True, json_invalid=True)),
        (
            _out('```json\n{"a": 1}\n```'),
            JSON_OBJECT,
            _flags(json_expected=True, json_invalid=True),
        ),
        (_out(""), JSON_OBJECT, _flags(empty=True, json_expected=True, json_invalid=True)),
        (
            _out('{"a": ', finish_reason="length"),
            JSON_OBJECT,
            _flags(truncated=True, json_expected=True, json_invalid=True),
        ),
        (_out(None, refusal="No."), JSON_OBJECT, _flags(refusal=True, json_expected=True)),
        (_out(None, _call()), JSON_OBJECT, _flags(json_expected=True)),  # tool instead of text
        (_out('{"name": "Ada"}'), JSON_SCHEMA, _flags(json_expected=True)),
        (_out('{"name": 7}'), JSON_SCHEMA, _flags(json_expected=True, json_invalid=True)),
        (_out("{}"), JSON_SCHEMA, _flags(json_expected=True, json_invalid=True)),
        (_out(None, _call()), WITH_TOOLS, _flags(json_expected=True)),
        (_out("Let me search.", _call()), WITH_TOOLS, _flags(json_expected=True)),
        (
            _out(None, _call(arguments="")),
            WITH_TOOLS,
            _flags(json_expected=True, tool_schema_invalid=True),
        ),
        (
            _out(None, _call(arguments='{"query": 5}')),
            WITH_TOOLS,
            _flags(json_expected=True, tool_schema_invalid=True),
        ),
        (
            _out(None, _call(arguments='{"query": ')),
            WITH_TOOLS,
            _flags(json_expected=True, json_invalid=True),
        ),
        (
            _out(None, _call(name="delete_all")),
            WITH_TOOLS,
            _flags(json_expected=True, tool_unknown=True),
        ),
        (_out(None, _call()), PLAIN, _flags(json_expected=True, tool_unknown=True)),
        (
            _out(None, _call(), _call(name="nope", arguments="{x")),
            WITH_TOOLS,
            _flags(json_expected=True, json_invalid=True, tool_unknown=True),
        ),
    ],
)
def test_assess(output: CallOutput, request_: ModelRequest, expected: OutputFlags) -> None:
    """assess flags empty, truncated, refusal, JSON and tool problems of one output."""
    assert assess(output, request_) == expected


@pytest.mark.parametrize(
    ("output", "request_", "note"),
    [
        (_out('```json\n{"a": 1}\n```'), JSON_OBJECT, "JSON is wrapped in a Markdown code block"),
        (_out("nope"), JSON_OBJECT, "expected JSON, the text does not parse"),
        (_out("{}"), JSON_SCHEMA, "response schema: $: 'name' is a required property"),
        (_out(None, _call(name="rm")), WITH_TOOLS, "tool 'rm' was not offered"),
        (_out(None, _call(arguments="{}")), WITH_TOOLS, "'query' is a required property"),
    ],
)
def test_inspect_output_explains_flags(
    output: CallOutput, request_: ModelRequest, note: str
) -> None:
    """inspect_output adds a short note saying why a JSON or tool flag is set."""
    notes = inspect_output(output, request_).notes
    assert any(note in n for n in notes), notes


def test_inspect_output_caps_notes() -> None:
    """At most three notes are kept per output."""
    calls = [_call(name=f"unknown{i}") for i in range(6)]
    assert len(inspect_output(_out(None, *calls), WITH_TOOLS).notes) == 3


def test_compare_identical_outputs() -> None:
    """Two identical answers match on everything and differ by nothing."""
    output = _out("Paris.", latency_ms=100.0, ttft_ms=20.0, completion_tokens=3, cost_usd=0.001)
    result = compare(output, output, PLAIN)
    assert result == Comparison(
        exact_match=True,
        normalized_match=True,
        lexical_similarity=1.0,
        embedding_similarity=None,
        tool_name_agreement=None,
        tool_args_agreement=None,
        length_ratio=1.0,
        latency_delta_ms=0.0,
        ttft_delta_ms=0.0,
        completion_token_delta=0,
        cost_delta_usd=0.0,
        reference_flags=CLEAN,
        other_flags=CLEAN,
        notes=(),
    )


@pytest.mark.parametrize(
    ("reference", "other", "expected"),
    [
        (
            _out("Paris.", latency_ms=100.0, ttft_ms=30.0, completion_tokens=3, cost_usd=0.002),
            _out("Paris.", latency_ms=250.0, ttft_ms=20.0, completion_tokens=5, cost_usd=0.001),
            {"latency_delta_ms": 150.0, "ttft_delta_ms": -10.0, "completion_token_delta": 2},
        ),
        (
            _out("Paris.", latency_ms=100.0),
            _out("Paris."),
            {"latency_delta_ms": None, "ttft_delta_ms": None, "completion_token_delta": None},
        ),
        (
            _out("Paris."),
            _out("Paris.", latency_ms=100.0, ttft_ms=5.0, completion_tokens=1, cost_usd=0.1),
            {"latency_delta_ms": None, "ttft_delta_ms": None, "cost_delta_usd": None},
        ),
        (
            _out("Paris.", completion_tokens=0),
            _out("Paris.", completion_tokens=0),
            {"completion_token_delta": 0},
        ),
        (_out("Paris."), _out("paris"), {"exact_match": False, "normalized_match": True}),
        (_out("Paris."), _out("Lyon."), {"normalized_match": False, "lexical_similarity": 0.0}),
        (_out(""), _out(""), {"exact_match": True, "lexical_similarity": 1.0, "length_ratio": 1.0}),
        (_out(None), _out(""), {"exact_match": True, "length_ratio": None}),
        (_out("abcd"), _out("ab"), {"length_ratio": 0.5}),
        (_out(""), _out("abc"), {"length_ratio": None, "lexical_similarity": 0.0}),
        (
            _out(None, _call()),
            _out(None, _call(arguments='{ "query" : "cats" }')),
            {"tool_name_agreement": True, "tool_args_agreement": True, "length_ratio": None},
        ),
        (
            _out(None, _call()),
            _out("I will not search."),
            {"tool_name_agreement": False, "tool_args_agreement": False},
        ),
        (
            _out(None, _call(arguments='{"query": "cats", "limit": 5}')),
            _out(None, _call(arguments='{"limit": 5, "query": "cats"}')),
            {"tool_args_agreement": True},
        ),
        (
            _out(None, _call(arguments='{"query": "cats"}')),
            _out(None, _call(arguments='{"query": "dogs"}')),
            {"tool_name_agreement": True, "tool_args_agreement": False},
        ),
    ],
)
def test_compare_fields(reference: CallOutput, other: CallOutput, expected: dict[str, Any]) -> None:
    """compare sets each field from other vs reference, None where an input is missing."""
    result = compare(reference, other, WITH_TOOLS)
    for name, value in expected.items():
        actual = getattr(result, name)
        if value is None or isinstance(value, bool):
            assert actual is value, name
        else:
            assert actual == pytest.approx(value), name


def test_compare_cost_delta_is_other_minus_reference() -> None:
    """cost_delta_usd is other - reference."""
    result = compare(_out(cost_usd=0.004), _out(cost_usd=0.001), PLAIN)
    assert result.cost_delta_usd == pytest.approx(-0.003)


def test_compare_flags_each_side_and_prefixes_notes() -> None:
    """Flags are computed for both sides and notes say which side they are about."""
    reference = _out('{"query": "cats"}')
    other = _out('```json\n{"query": "cats"}\n```', finish_reason="length")
    result = compare(reference, other, JSON_OBJECT)
    assert result.reference_flags == _flags(json_expected=True)
    assert result.other_flags == _flags(json_expected=True, json_invalid=True, truncated=True)
    assert result.notes == ("other: JSON is wrapped in a Markdown code block",)


@pytest.mark.parametrize(
    ("embeddings", "expected", "note"),
    [
        (None, None, None),
        (([1.0, 0.0], [1.0, 0.0]), 1.0, None),
        (([1.0, 0.0], [0.0, 2.0]), 0.0, None),
        (([0.6, 0.8], [0.8, 0.6]), 0.96, None),
        (([0.0, 0.0], [1.0, 1.0]), 0.0, None),
        (([1.0, 0.0], [1.0, 0.0, 0.0]), None, "dimensions differ"),
        (([float("nan"), 0.0], [1.0, 0.0]), None, "NaN or infinite"),
    ],
)
def test_compare_embedding_similarity(
    embeddings: tuple[list[float], list[float]] | None, expected: float | None, note: str | None
) -> None:
    """Embedding cosine is used when given; unusable vectors give None and a note."""
    result = compare(_out("a"), _out("b"), PLAIN, embeddings=embeddings)
    if expected is None:
        assert result.embedding_similarity is None
    else:
        assert result.embedding_similarity == pytest.approx(expected)
    if note is None:
        assert result.notes == ()
    else:
        assert len(result.notes) == 1 and note in result.notes[0]


def test_compare_runs_an_extra_scorer() -> None:
    """A scorer appended to the chain sees the pair and can add notes."""

    def note_model_change(pair: ScoringInput, fields: Fields) -> Fields:
        if pair.reference.model != pair.other.model:
            fields["notes"].append(f"model {pair.reference.model} -> {pair.other.model}")
        return fields

    reference = CallOutput(model="gpt-a", text="x")
    other = CallOutput(model="gpt-b", text="x")
    result = compare(reference, other, PLAIN, scorers=(*DEFAULT_SCORERS, note_model_change))
    assert result.notes == ("model gpt-a -> gpt-b",)
    assert result.exact_match is True


def test_compare_later_scorer_can_override() -> None:
    """Scorers run in order, so a later one can replace an earlier field."""

    def case_sensitive(pair: ScoringInput, fields: Fields) -> Fields:
        fields["normalized_match"] = pair.reference.text == pair.other.text
        return fields

    result = compare(_out("A"), _out("a"), PLAIN, scorers=(*DEFAULT_SCORERS, case_sensitive))
    assert result.normalized_match is False


def test_compare_rejects_incomplete_chain() -> None:
    """A chain that leaves a Comparison field unset raises TypeError naming it."""
    with pytest.raises(TypeError, match="lexical_similarity"):
        compare(_out(), _out(), PLAIN, scorers=DEFAULT_SCORERS[:2])


def test_compare_rejects_unknown_field() -> None:
    """A chain that sets a field Comparison does not have raises TypeError naming it."""

    def typo(pair: ScoringInput, fields: Fields) -> Fields:
        fields["lexical_similarty"] = 1.0
        return fields

    with pytest.raises(TypeError, match="lexical_similarty"):
        compare(_out(), _out(), PLAIN, scorers=(*DEFAULT_SCORERS, typo))


def test_compare_is_deterministic() -> None:
    """The same inputs give the same Comparison every time."""
    reference = _out("The quick brown fox.", _call(), latency_ms=10.0)
    other = _out("A quick brown dog!", _call(arguments="{}"), latency_ms=12.0)
    first = compare(reference, other, WITH_TOOLS, embeddings=([1.0, 2.0], [2.0, 1.0]))
    assert all(
        compare(reference, other, WITH_TOOLS, embeddings=([1.0, 2.0], [2.0, 1.0])) == first
        for _ in range(5)
    )


def _capture(**changes: Any) -> CapturedCall:
    started = datetime(2025, 1, 1, tzinfo=UTC)
    fields: dict[str, Any] = {
        "event_id": "evt-00000001",
        "started_at": started,
        "ended_at": started + timedelta(seconds=1),
        "model": "gpt-base",
        "request": WITH_TOOLS,
        "response": ModelResponse(
            text="Looking.", tool_calls=[_call()], finish_reason="tool_calls", refusal=None
        ),
        "latency_ms": 900.0,
        "ttft_ms": 120.0,
        "prompt_tokens": 40,
        "completion_tokens": 12,
    }
    fields.update(changes)
    return CapturedCall(**fields)


def test_output_from_capture_copies_the_answer() -> None:
    """output_from_capture carries text, tool calls, timing, tokens and the given cost."""
    output = output_from_capture(_capture(), cost_usd=0.0123)
    assert output == CallOutput(
        model="gpt-base",
        text="Looking.",
        tool_calls=(_call(),),
        finish_reason="tool_calls",
        refusal=None,
        latency_ms=900.0,
        ttft_ms=120.0,
        prompt_tokens=40,
        completion_tokens=12,
        cost_usd=0.0123,
    )


def test_output_from_capture_without_response() -> None:
    """A failed call with no response becomes an output with no text or tool calls."""
    event = _capture(
        response=None,
        status=CallStatus.TIMEOUT,
        ttft_ms=None,
        prompt_tokens=None,
        completion_tokens=None,
    )
    output = output_from_capture(event, cost_usd=None)
    assert (output.text, output.tool_calls, output.finish_reason) == (None, (), None)
    assert (output.latency_ms, output.cost_usd, output.completion_tokens) == (900.0, None, None)
    assert assess(output, event.request).empty is True


def test_output_from_capture_feeds_compare() -> None:
    """Captures converted with output_from_capture compare with each other."""
    reference = output_from_capture(_capture(), cost_usd=0.01)
    other = output_from_capture(_capture(latency_ms=1000.0), cost_usd=0.02)
    result = compare(reference, other, _capture().request)
    assert result.latency_delta_ms == pytest.approx(100.0)
    assert result.cost_delta_usd == pytest.approx(0.01)
    assert (result.tool_name_agreement, result.tool_args_agreement) == (True, True)


@pytest.mark.parametrize(
    ("candidate_text", "noise_text", "expected"),
    [
        ("the cat sat", "the cat sat", 0.0),  # C and B2 equally close to B1
        ("the dog sat", "the cat sat", 2 / 3 - 1.0),  # C strays more than B2
        ("the cat sat", "the dog sat", 1.0 - 2 / 3),  # B2 strays more than C
        ("unrelated words here", "the cat sat", -1.0),
        ("", "", 0.0),  # both empty: equally far from B1
        ("", "the cat sat", -1.0),  # C empty, B2 repeats B1
    ],
)
def test_paired_difference(candidate_text: str, noise_text: str, expected: float) -> None:
    """paired_difference is sim(C, B1) - sim(B2, B1), Diffy's noise-floor D_i."""
    baseline = _out("the cat sat")
    candidate = compare(baseline, _out(candidate_text), PLAIN)
    noise = compare(baseline, _out(noise_text), PLAIN)
    assert paired_difference(candidate, noise) == pytest.approx(expected)
