"""Structured-output scorers: JSON validity, schemas, tool-call checks and agreement."""

from __future__ import annotations

from typing import Any

import pytest

from shadowcanary.events import ChatMessage, ModelRequest, ToolCall, ToolDefinition
from shadowcanary.judge.structured import (
    ToolProblem,
    check_tool_call,
    json_expected,
    json_valid,
    parse_json,
    response_schema,
    response_schema_errors,
    strip_code_fence,
    tool_args_schema_errors,
    tool_calls_agree,
    validate_against_schema,
)
from shadowcanary.judge.types import CallOutput

WEATHER = ToolDefinition(
    name="get_weather",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 1},
            "unit": {"enum": ["c", "f"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 14},
        },
        "required": ["city"],
        "additionalProperties": False,
    },
)
NO_ARGS = ToolDefinition(name="now", parameters={"type": "object", "properties": {}})
ANYTHING = ToolDefinition(name="log")  # no parameters schema: any object goes
WITH_DEFS = ToolDefinition(
    name="move",
    parameters={
        "$defs": {"point": {"type": "object", "required": ["x", "y"]}},
        "type": "object",
        "properties": {"to": {"$ref": "#/$defs/point"}},
        "required": ["to"],
    },
)
REMOTE_REF = ToolDefinition(
    name="remote", parameters={"$ref": "https://example.invalid/schema.json"}
)
BROKEN_SCHEMA = ToolDefinition(name="broken", parameters={"type": "no-such-type"})
DRAFT7 = ToolDefinition(
    name="pair",
    parameters={
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"xy": {"type": "array", "items": [{"type": "number"}]}},
    },
)
TOOLS = [WEATHER, NO_ARGS, ANYTHING, WITH_DEFS, REMOTE_REF, BROKEN_SCHEMA, DRAFT7]


def _request(**parameters: Any) -> ModelRequest:
    return ModelRequest(
        messages=[ChatMessage(role="user", content="hi")], tools=TOOLS, parameters=parameters
    )


def _output(text: str | None = None, *calls: ToolCall) -> CallOutput:
    return CallOutput(model="m", text=text, tool_calls=calls)


def _call(name: str, arguments: str = "{}") -> ToolCall:
    return ToolCall(id="call_1", name=name, arguments=arguments)


PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', True),
        ("[1, 2, 3]", True),
        ('  {"a": [true, null, "x"]}\n', True),
        ("42", True),  # any JSON value, as RFC 8259 allows
        ('"just a string"', True),
        ("null", True),
        ('{"emoji": "\U0001f680", "u": "\\u00e9"}', True),
        ("", False),
        ("   ", False),
        (None, False),
        ("{", False),
        ("{'a': 1}", False),  # single quotes
        ('{"a": 1,}', False),  # trailing comma
        ('{"a": NaN}', False),  # Python accepts it, JSON does not
        ("Infinity", False),
        ('{"a": 1} trailing', False),
        ("Sure! Here is the JSON: {}", False),
        ('```json\n{"a": 1}\n```', False),  # fenced: strict by default
        ("[" * 100_000 + "]" * 100_000, False),  # nested too deeply: no crash
    ],
)
def test_json_valid(text: str | None, expected: bool) -> None:
    """json_valid accepts RFC 8259 JSON only, strictly."""
    assert json_valid(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('```json\n{"a": 1}\n```', True),
        ('```\n{"a": 1}\n```', True),
        ("  ```JSON\n[1]\n```  \n", True),
        ('```json\n{"a": 1}```', True),
        ('{"a": 1}', True),  # unfenced stays valid
        ("```json\n{broken}\n```", False),
        ('Here you go:\n```json\n{"a": 1}\n```', False),  # prose around the block
        ('```json\n{"a": 1}\n```\n```json\n{"b": 2}\n```', False),  # two blocks
    ],
)
def test_json_valid_allowing_code_fence(text: str, expected: bool) -> None:
    """With allow_code_fence, exactly one Markdown block around valid JSON passes."""
    assert json_valid(text, allow_code_fence=True) is expected


@pytest.mark.parametrize(
    ("text", "body"),
    [
        ("```json\nX\n```", "X"),
        ("```\nline1\nline2\n```", "line1\nline2"),
        ("no fence", None),
        ("```json X```", None),  # the language tag must end the first line
    ],
)
def test_strip_code_fence(text: str, body: str | None) -> None:
    """strip_code_fence returns the body of a text that is exactly one code block."""
    assert strip_code_fence(text) == body


def test_parse_json_rejects_nan_with_a_reason() -> None:
    """parse_json raises ValueError naming the non-JSON constant."""
    with pytest.raises(ValueError, match="NaN is not valid JSON"):
        parse_json("[NaN]")


@pytest.mark.parametrize(
    ("parameters", "calls", "expected"),
    [
        ({}, (), False),
        ({"response_format": {"type": "text"}}, (), False),
        ({"response_format": {"type": "json_object"}}, (), True),
        ({"response_format": JSON_SCHEMA_FORMAT}, (), True),
        ({}, (_call("now"),), True),  # a tool call carries JSON arguments
        ({"response_format": "json_object"}, (), False),  # malformed: not a mapping
        ({"response_format": {"kind": "json_object"}}, (), False),
        ({"temperature": 0.2}, (), False),
    ],
)
def test_json_expected(
    parameters: dict[str, Any], calls: tuple[ToolCall, ...], expected: bool
) -> None:
    """JSON is expected for a JSON response_format or when tool calls came back."""
    assert json_expected(_request(**parameters), _output("x", *calls)) is expected


@pytest.mark.parametrize(
    ("call", "problems", "message"),
    [
        (_call("get_weather", '{"city": "Oslo"}'), (), None),
        (_call("get_weather", '{"unit": "c", "city": "Oslo", "days": 3}'), (), None),
        (_call("get_weather", '  {"city":"Oslo"}  '), (), None),
        (_call("now", "{}"), (), None),
        (_call("now", ""), (), None),  # empty arguments mean {}
        (_call("log", '{"anything": [1, 2]}'), (), None),
        (_call("move", '{"to": {"x": 1, "y": 2}}'), (), None),
        # Draft-07 tuple "items" (invalid in 2020-12): the declared $schema is honoured.
        (_call("pair", '{"xy": [1, "second item unconstrained"]}'), (), None),
        (_call("pair", '{"xy": ["a"]}'), (ToolProblem.SCHEMA_VIOLATION,), "$.xy[0]"),
        (
            _call("get_weather", "{}"),
            (ToolProblem.SCHEMA_VIOLATION,),
            "'city' is a required property",
        ),
        (
            _call("get_weather", '{"city": ""}'),
            (ToolProblem.SCHEMA_VIOLATION,),
            "$.city",
        ),
        (
            _call("get_weather", '{"city": "Oslo", "days": 99}'),
            (ToolProblem.SCHEMA_VIOLATION,),
            "99 is greater than the maximum of 14",
        ),
        (
            _call("get_weather", '{"city": "Oslo", "unit": "k"}'),
            (ToolProblem.SCHEMA_VIOLATION,),
            "is not one of ['c', 'f']",
        ),
        (
            _call("get_weather", '{"city": "Oslo", "extra": 1}'),
            (ToolProblem.SCHEMA_VIOLATION,),
            "Additional properties are not allowed",
        ),
        (
            _call("get_weather", '{"city": 7, "days": "3"}'),
            (ToolProblem.SCHEMA_VIOLATION,),
            "is not of type",
        ),
        (
            _call("move", '{"to": {"x": 1}}'),
            (ToolProblem.SCHEMA_VIOLATION,),
            "'y' is a required property",
        ),
        (
            _call("get_weather", '{"city": "Oslo"'),
            (ToolProblem.UNPARSABLE_ARGUMENTS,),
            "arguments are not valid JSON",
        ),
        (
            _call("get_weather", "city=Oslo"),
            (ToolProblem.UNPARSABLE_ARGUMENTS,),
            "arguments are not valid JSON",
        ),
        (
            _call("get_weather", '["Oslo"]'),
            (ToolProblem.UNPARSABLE_ARGUMENTS,),
            "must be a JSON object, not an array",
        ),
        (
            _call("get_weather", '"Oslo"'),
            (ToolProblem.UNPARSABLE_ARGUMENTS,),
            "not a string",
        ),
        (
            _call("get_weather", "null"),
            (ToolProblem.UNPARSABLE_ARGUMENTS,),
            "not null",
        ),
        (
            _call("get_wether", '{"city": "Oslo"}'),
            (ToolProblem.UNKNOWN_TOOL,),
            "'get_wether' was not offered",
        ),
        (
            _call("get_wether", "{oops"),
            (ToolProblem.UNKNOWN_TOOL, ToolProblem.UNPARSABLE_ARGUMENTS),
            "not valid JSON",
        ),
        (
            _call("remote", "{}"),
            (ToolProblem.UNUSABLE_SCHEMA,),
            "unresolvable $ref",
        ),
        (
            _call("broken", "{}"),
            (ToolProblem.UNUSABLE_SCHEMA,),
            "the schema is invalid",
        ),
    ],
)
def test_check_tool_call(
    call: ToolCall, problems: tuple[ToolProblem, ...], message: str | None
) -> None:
    """check_tool_call reports unknown tools, broken JSON, schema violations and bad schemas."""
    check = check_tool_call(call, TOOLS)
    assert check.problems == problems
    assert check.ok is (not problems)
    if message is None:
        assert check.messages == ()
    else:
        assert any(message in m for m in check.messages), check.messages


def test_check_tool_call_with_no_tools_offered() -> None:
    """A tool call when the request offered no tools is an unknown tool."""
    check = check_tool_call(_call("now"), [])
    assert check.problems == (ToolProblem.UNKNOWN_TOOL,)
    assert "offered: none" in check.messages[0]


def test_tool_args_schema_errors_lists_messages() -> None:
    """tool_args_schema_errors is the messages of check_tool_call, empty when valid."""
    assert tool_args_schema_errors(_call("get_weather", '{"city": "Oslo"}'), TOOLS) == []
    errors = tool_args_schema_errors(_call("get_weather", '{"days": 0}'), TOOLS)
    assert len(errors) == 2
    assert all(e.startswith("tool 'get_weather': $") for e in errors)


@pytest.mark.parametrize(
    ("schema", "unusable"),
    [
        ({"type": "object"}, None),
        ({"format": "email"}, None),  # formats are annotations in 2020-12
        ({"$schema": []}, "$schema must be a URI string"),
        ({"$schema": 5}, "$schema must be a URI string"),
        ({"type": 5}, "the schema is invalid"),
        ({"$ref": 5}, "the schema is invalid"),
        ({"properties": []}, "the schema is invalid"),
        ({"pattern": "("}, "the schema is invalid"),
        ({"$ref": "#/nope"}, "unresolvable $ref"),
        ({"$ref": "https://example.invalid/s.json"}, "unresolvable $ref"),  # never fetched
        ({"$dynamicRef": "#missing"}, "unresolvable $ref"),
        ({"$ref": "#"}, "nested too deeply"),  # a schema that refers to itself forever
    ],
)
def test_validate_against_schema_reports_unusable_schemas(
    schema: dict[str, Any], unusable: str | None
) -> None:
    """A broken caller schema is reported as unusable, never raised."""
    check = validate_against_schema({"a": 1}, schema)
    assert check.violations == ()
    if unusable is None:
        assert check.unusable is None
    else:
        assert check.unusable is not None and unusable in check.unusable


def test_schema_violations_are_capped() -> None:
    """At most five violations are reported, then a count of the rest."""
    schema = {"type": "object", "required": [f"k{i}" for i in range(8)]}
    check = validate_against_schema({}, schema)
    assert len(check.violations) == 6
    assert check.violations[-1] == "and 3 more"


def test_schema_messages_are_truncated() -> None:
    """A violation quoting a huge value is cut to a readable length."""
    check = validate_against_schema("x" * 5000, {"type": "integer"})
    assert len(check.violations) == 1
    assert len(check.violations[0]) <= 200
    assert check.violations[0].endswith("\u2026")


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({}, None),
        ({"response_format": {"type": "json_object"}}, None),
        ({"response_format": JSON_SCHEMA_FORMAT}, PERSON_SCHEMA),
        ({"response_format": {"type": "json_schema"}}, None),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, None),
        ({"response_format": {"type": "json_schema", "json_schema": "bad"}}, None),
    ],
)
def test_response_schema(parameters: dict[str, Any], expected: dict[str, Any] | None) -> None:
    """response_schema extracts the json_schema response_format's schema, if any."""
    assert response_schema(_request(**parameters)) == expected


@pytest.mark.parametrize(
    ("parameters", "text", "message"),
    [
        ({"response_format": JSON_SCHEMA_FORMAT}, '{"name": "Ada", "age": 36}', None),
        ({"response_format": JSON_SCHEMA_FORMAT}, '{"name": "Ada"}', "'age' is a required"),
        ({"response_format": JSON_SCHEMA_FORMAT}, '{"name": "Ada", "age": "36"}', "$.age"),
        ({"response_format": JSON_SCHEMA_FORMAT}, "[]", "is not of type 'object'"),
        ({"response_format": JSON_SCHEMA_FORMAT}, "not json", "not valid JSON"),
        ({"response_format": JSON_SCHEMA_FORMAT}, None, "not valid JSON"),
        ({"response_format": {"type": "json_object"}}, "[]", None),  # no schema to check
        ({}, "anything", None),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": 5}},
                }
            },
            "{}",
            "response_format: the schema is invalid",
        ),
    ],
)
def test_response_schema_errors(
    parameters: dict[str, Any], text: str | None, message: str | None
) -> None:
    """Text is validated against a json_schema response_format."""
    errors = response_schema_errors(_request(**parameters), text)
    if message is None:
        assert errors == []
    else:
        assert any(message in e for e in errors), errors


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((), (), (None, None)),
        ((_call("now"),), (), (False, False)),
        ((), (_call("now"),), (False, False)),
        ((_call("now"),), (_call("now"),), (True, True)),
        ((_call("now", ""),), (_call("now", "{}"),), (True, True)),
        (
            (_call("get_weather", '{"city": "Oslo", "unit": "c"}'),),
            (_call("get_weather", '{"unit":"c","city":"Oslo"}'),),
            (True, True),
        ),
        (
            (_call("f", '{"a": {"x": [1, {"p": 1, "q": 2}]}}'),),
            (_call("f", '{"a": {"x": [1, {"q": 2, "p": 1}]}}'),),
            (True, True),
        ),
        (
            (_call("f", '{"a": [1, 2]}'),),
            (_call("f", '{"a": [2, 1]}'),),  # list order matters
            (True, False),
        ),
        ((_call("f", '{"n": 1}'),), (_call("f", '{"n": 1.0}'),), (True, True)),
        ((_call("f", '{"n": 1}'),), (_call("f", '{"n": true}'),), (True, False)),
        ((_call("f", '{"n": 0}'),), (_call("f", '{"n": false}'),), (True, False)),
        ((_call("f", '{"n": null}'),), (_call("f", "{}"),), (True, False)),
        ((_call("f", '{"s": "1"}'),), (_call("f", '{"s": 1}'),), (True, False)),
        (
            (_call("get_weather", '{"city": "Oslo"}'),),
            (_call("get_weather", '{"city": "Bergen"}'),),
            (True, False),
        ),
        (
            (_call("get_weather", '{"city": "Oslo"}'),),
            (_call("now", '{"city": "Oslo"}'),),
            (False, True),
        ),
        ((_call("f", "{broken"),), (_call("f", " {broken "),), (True, True)),
        ((_call("f", "{broken"),), (_call("f", "{}"),), (True, False)),
        ((_call("f", "{}"),), (_call("f", "{broken"),), (True, False)),
        (
            (_call("a"), _call("b")),
            (_call("b"), _call("a")),  # compared in order
            (False, True),
        ),
        ((_call("a"), _call("b")), (_call("a"),), (False, False)),
        (
            (_call("a", '{"x": 1}'), _call("b", '{"y": 2}')),
            (_call("a", '{"x": 1}'), _call("b", '{"y": 2}')),
            (True, True),
        ),
    ],
)
def test_tool_calls_agree(
    a: tuple[ToolCall, ...], b: tuple[ToolCall, ...], expected: tuple[bool | None, bool | None]
) -> None:
    """Tool calls agree on names in order and on parsed JSON arguments."""
    assert tool_calls_agree(a, b) == expected
