"""Structured-output scorers: JSON validity, JSON-schema checks, tool-call agreement.

Pure functions: no I/O. Schemas are validated with ``jsonschema`` (Draft 2020-12 unless
the schema declares another ``$schema``) against an empty ``referencing`` registry, so a
remote ``$ref`` is reported as an unusable schema instead of being fetched.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from referencing import Registry
from referencing.exceptions import Unresolvable

from shadowcanary.events import ModelRequest, ToolCall, ToolDefinition
from shadowcanary.judge.types import CallOutput

JSON_RESPONSE_FORMATS = frozenset({"json_object", "json_schema"})
_MAX_REPORTED_ERRORS = 5
_MAX_MESSAGE_CHARS = 200
# No retrieval function: a remote $ref fails fast instead of doing network I/O.
_NO_REMOTE_REFS: Registry[Any] = Registry()
_CODE_FENCE = re.compile(r"\A\s*```[\w+-]*[ \t]*\n(?P<body>.*?)\n?[ \t]*```\s*\Z", re.DOTALL)


class ToolProblem(StrEnum):
    """Why a tool call did not check out."""

    UNKNOWN_TOOL = "unknown_tool"  # the request offered no tool of that name
    UNPARSABLE_ARGUMENTS = "unparsable_arguments"  # arguments are not a JSON object
    SCHEMA_VIOLATION = "schema_violation"  # arguments break the tool's parameters schema
    # The caller's schema is itself broken (invalid, or a $ref we will not fetch):
    # nothing can be said about the model's arguments, and it is not the model's fault.
    UNUSABLE_SCHEMA = "unusable_schema"


@dataclass(frozen=True, slots=True)
class ToolCallCheck:
    """Outcome of checking one tool call against the tools the request offered."""

    tool: str
    problems: tuple[ToolProblem, ...] = ()
    messages: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class SchemaCheck:
    """Outcome of validating one JSON value against one schema."""

    violations: tuple[str, ...] = ()
    unusable: str | None = None  # why the schema could not be used, if it could not


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity; RFC 8259 and most consumers do not.
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str) -> Any:
    """Parse RFC 8259 JSON text.

    Raises:
        ValueError: the text is not valid JSON (including NaN/Infinity and nesting
            too deep to parse).
    """
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise ValueError("JSON is nested too deeply to parse") from exc


def strip_code_fence(text: str) -> str | None:
    """The body of a text that is exactly one Markdown code block, else ``None``."""
    match = _CODE_FENCE.match(text)
    return match.group("body") if match else None


def json_valid(text: str | None, *, allow_code_fence: bool = False) -> bool:
    """Whether ``text`` parses as JSON.

    Strict by default, as a service calling ``json.loads`` on the answer would be: a
    reply wrapped in a Markdown code block is invalid unless ``allow_code_fence``.
    """
    if text is None:
        return False
    try:
        parse_json(text)
    except ValueError:
        if allow_code_fence and (body := strip_code_fence(text)) is not None:
            return json_valid(body)
        return False
    return True


def _output_format(request: ModelRequest) -> Mapping[str, Any] | None:
    """The format asked for: chat's ``response_format``, or the Responses API's
    ``text.format`` (its ``json_schema`` carries the schema inline, not nested)."""
    if request.api == "responses":
        text = request.parameters.get("text")
        fmt = text.get("format") if isinstance(text, Mapping) else None
        return fmt if isinstance(fmt, Mapping) else None
    response_format = request.parameters.get("response_format")
    return response_format if isinstance(response_format, Mapping) else None


def response_format_type(request: ModelRequest) -> str | None:
    """The output format type the request asked for (``json_object``, ...), if any."""
    fmt = _output_format(request)
    kind = fmt.get("type") if fmt is not None else None
    return kind if isinstance(kind, str) else None


def response_schema(request: ModelRequest) -> Mapping[str, Any] | None:
    """The JSON schema of a ``json_schema`` output format, if the request gave one."""
    fmt = _output_format(request)
    if fmt is None or fmt.get("type") != "json_schema":
        return None
    spec = fmt if request.api == "responses" else fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    return schema if isinstance(schema, Mapping) else None


def json_expected(request: ModelRequest, output: CallOutput) -> bool:
    """Whether the output should carry JSON: a JSON response_format, or tool calls came back."""
    return response_format_type(request) in JSON_RESPONSE_FORMATS or bool(output.tool_calls)


def _truncate(message: str) -> str:
    if len(message) <= _MAX_MESSAGE_CHARS:
        return message
    return message[: _MAX_MESSAGE_CHARS - 1] + "…"


@functools.lru_cache(maxsize=256)
def _schema_problem(canonical_schema: str) -> str | None:
    """Why a schema is invalid against its metaschema, or ``None`` when it is valid.

    Checking a schema costs ~1 ms while validating a value against it costs ~50 µs,
    and the same few tool schemas arrive on every request of a route: memoising this
    pure function keeps tool-call scoring cheap without changing any result.
    """
    schema = json.loads(canonical_schema)
    if not isinstance(schema.get("$schema", ""), str):
        return "the schema is invalid: $schema must be a URI string"
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as exc:
        return _truncate(f"the schema is invalid: {exc.message}")
    return None


def validate_against_schema(instance: Any, schema: Mapping[str, Any]) -> SchemaCheck:
    """Validate a parsed JSON value; at most five violations are reported, by JSON path."""
    problem = _schema_problem(json.dumps(schema, sort_keys=True))
    if problem is not None:
        return SchemaCheck(unusable=problem)
    validator_class = validator_for(schema, default=Draft202012Validator)
    try:
        errors = list(validator_class(schema, registry=_NO_REMOTE_REFS).iter_errors(instance))
    except Unresolvable as exc:
        return SchemaCheck(unusable=_truncate(f"the schema has an unresolvable $ref: {exc}"))
    except RecursionError:
        return SchemaCheck(unusable="the schema or the value is nested too deeply to validate")
    messages = [_truncate(f"{error.json_path}: {error.message}") for error in errors]
    if len(messages) > _MAX_REPORTED_ERRORS:
        hidden = len(messages) - _MAX_REPORTED_ERRORS
        messages = [*messages[:_MAX_REPORTED_ERRORS], f"and {hidden} more"]
    return SchemaCheck(violations=tuple(messages))


def response_schema_errors(request: ModelRequest, text: str | None) -> list[str]:
    """What is wrong with ``text`` under the request's ``json_schema`` response_format.

    Empty when the request gave no schema or the text conforms; a schema that cannot
    be used is reported as such.
    """
    schema = response_schema(request)
    if schema is None:
        return []
    try:
        instance = parse_json(text or "")
    except ValueError as exc:
        return [_truncate(f"the response is not valid JSON ({exc})")]
    check = validate_against_schema(instance, schema)
    if check.unusable is not None:
        return [f"response_format: {check.unusable}"]
    return list(check.violations)


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a boolean" if isinstance(value, bool) else "a number"


def _parse_arguments(arguments: str) -> Any:
    # Some OpenAI-compatible servers send "" for a call without arguments; that means {}.
    return parse_json(arguments) if arguments.strip() else {}


def check_tool_call(call: ToolCall, tools: Sequence[ToolDefinition]) -> ToolCallCheck:
    """Check a tool call's name against the offered tools and its arguments against the schema.

    The name and the arguments are checked independently, so an unknown tool called
    with broken JSON reports both problems.
    """
    problems: list[ToolProblem] = []
    messages: list[str] = []
    tool = next((t for t in tools if t.name == call.name), None)
    if tool is None:
        offered = ", ".join(sorted({t.name for t in tools})) or "none"
        problems.append(ToolProblem.UNKNOWN_TOOL)
        messages.append(f"tool {call.name!r} was not offered by the request (offered: {offered})")
    try:
        arguments = _parse_arguments(call.arguments)
    except ValueError as exc:
        problems.append(ToolProblem.UNPARSABLE_ARGUMENTS)
        messages.append(f"tool {call.name!r}: arguments are not valid JSON ({exc})")
        arguments = None
    else:
        if not isinstance(arguments, dict):
            problems.append(ToolProblem.UNPARSABLE_ARGUMENTS)
            messages.append(
                f"tool {call.name!r}: arguments must be a JSON object, not {_json_kind(arguments)}"
            )
    if tool is not None and isinstance(arguments, dict):
        schema_check = validate_against_schema(arguments, tool.parameters)
        if schema_check.unusable is not None:
            problems.append(ToolProblem.UNUSABLE_SCHEMA)
            messages.append(f"tool {call.name!r}: {schema_check.unusable}")
        elif schema_check.violations:
            problems.append(ToolProblem.SCHEMA_VIOLATION)
            messages.extend(f"tool {call.name!r}: {v}" for v in schema_check.violations)
    return ToolCallCheck(call.name, tuple(problems), tuple(_truncate(m) for m in messages))


def tool_args_schema_errors(call: ToolCall, tools: Sequence[ToolDefinition]) -> list[str]:
    """Everything wrong with one tool call, as messages; empty when it checks out."""
    return list(check_tool_call(call, tools).messages)


def _json_equal(a: Any, b: Any) -> bool:
    """JSON value equality: key order ignored, 1 == 1.0, but true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _arguments_agree(a: str, b: str) -> bool:
    try:
        parsed_a = _parse_arguments(a)
    except ValueError:
        # Not JSON: only the very same broken text agrees with it.
        return a.strip() == b.strip()
    try:
        parsed_b = _parse_arguments(b)
    except ValueError:
        return False
    return _json_equal(parsed_a, parsed_b)


def tool_calls_agree(
    a: Sequence[ToolCall], b: Sequence[ToolCall]
) -> tuple[bool | None, bool | None]:
    """(names agree, arguments agree) for two answers' tool calls, compared in order.

    Both are ``None`` when neither side called a tool. Arguments are compared as
    parsed JSON, so key order and whitespace do not matter; a different number of
    calls disagrees on both.
    """
    if not a and not b:
        return None, None
    names_agree = [call.name for call in a] == [call.name for call in b]
    args_agree = len(a) == len(b) and all(
        _arguments_agree(x.arguments, y.arguments) for x, y in zip(a, b, strict=True)
    )
    return names_agree, args_agree
