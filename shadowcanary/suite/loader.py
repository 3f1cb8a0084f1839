"""Reading a suite file (CSV or JSONL) into cases, with errors that name the line.

Both formats have the same fields; in CSV, the structured ones (``messages``,
``tools``, ``response_format``, ``parameters``, ``schema``) are JSON text in a cell,
and an empty cell means "not given"::

    id,prompt,expected_output,match,min_similarity,schema,expected_tool
    capital-fr,What is the capital of France? One word.,Paris,normalized,,,

    {"id": "refund-json", "prompt": "...", "response_format": "json_object",
     "schema": {"type": "object", "required": ["refund"]}}

A case gives ``prompt`` (optionally with ``system``) or ``messages``.
``response_format`` may be ``json_object``, or ``json_schema`` to send the case's
own ``schema`` as the response format. Unknown fields
are errors, not ignored: a typo in ``min_similarity`` must not silently drop a check.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)

from shadowcanary.errors import ConfigError
from shadowcanary.events import ChatMessage, ModelRequest, ToolDefinition
from shadowcanary.suite.cases import Expectations, MatchMode, SuiteCase

_MAX_REPORTED = 8
_JSON_CELLS = frozenset(
    {"messages", "tools", "response_format", "parameters", "schema", "tool_choice"}
)
# Chosen by the runner, never by a case.
_RESERVED_PARAMETERS = frozenset({"model", "messages", "tools", "stream", "stream_options", "n"})
_HINT = "fix the lines named above; see examples/prompts.csv and examples/prompts.jsonl"


class SuiteFileError(ConfigError):
    """A suite file is unreadable or has invalid cases; the message names the lines."""


def _json_problem(exc: json.JSONDecodeError) -> str:
    # Not json's own "line 1 column 5": the file's line number is given separately.
    return f"not valid JSON ({exc.msg} at character {exc.pos + 1})"


def _schema_problem(schema: Mapping[str, Any]) -> str | None:
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(dict(schema))
    except SchemaError as exc:
        return exc.message
    return None


def _tool(index: int, raw: Mapping[str, Any]) -> ToolDefinition:
    # Accept the OpenAI request shape as well as the flat one the events use.
    if raw.get("type") == "function" and isinstance(raw.get("function"), Mapping):
        raw = raw["function"]
    try:
        tool = ToolDefinition.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"tools[{index}]: {_describe(exc)}") from None
    if problem := _schema_problem(tool.parameters):
        raise ValueError(f"tool {tool.name!r} parameters are not a JSON schema: {problem}")
    return tool


class _CaseRow(BaseModel):
    """One case as written in the file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str | None = Field(default=None, min_length=1, max_length=200)
    prompt: str | None = None
    system: str | None = None
    messages: list[ChatMessage] | None = None
    tools: list[dict[str, JsonValue]] = Field(default_factory=list)
    tool_choice: str | dict[str, JsonValue] | None = None
    response_format: str | dict[str, JsonValue] | None = None
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    expected_output: str | None = None
    match: MatchMode = MatchMode.NORMALIZED
    min_similarity: float | None = Field(default=None, ge=0, le=1)
    output_schema: dict[str, JsonValue] | None = Field(default=None, alias="schema")
    expected_tool: str | None = Field(default=None, min_length=1)

    @field_validator("match", mode="before")
    @classmethod
    def _british_spelling(cls, value: Any) -> Any:
        return "normalized" if value == "normalised" else value

    @field_validator("response_format", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # "json_object" in a CSV cell is friendlier than {"type": "json_object"}.
        # "json_schema" alone means "send the case's schema as the response_format".
        if isinstance(value, str) and value in {"text", "json_object", "json_schema"}:
            return {"type": value}
        if isinstance(value, str):
            raise ValueError(
                "use 'text', 'json_object', 'json_schema' or a JSON object with a 'type'"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> _CaseRow:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        if self.system is not None and self.messages is not None:
            raise ValueError("'system' goes with 'prompt'; put it in 'messages' instead")
        reserved = sorted(_RESERVED_PARAMETERS & self.parameters.keys())
        if reserved:
            raise ValueError(f"parameters may not set {reserved}: the runner chooses them")
        if self.output_schema is not None and (problem := _schema_problem(self.output_schema)):
            raise ValueError(f"schema is not a valid JSON schema: {problem}")
        if self.response_format == {"type": "json_schema"}:
            if self.output_schema is None:
                raise ValueError("response_format 'json_schema' needs the case's 'schema'")
            generated: dict[str, JsonValue] = {"name": "output", "schema": self.output_schema}
            self.response_format = {"type": "json_schema", "json_schema": generated}
        if isinstance(self.response_format, dict):
            kind = self.response_format.get("type")
            if kind not in {"text", "json_object", "json_schema"}:
                raise ValueError(
                    f"response_format type {kind!r} is not text/json_object/json_schema"
                )
            spec = self.response_format.get("json_schema")
            inner = spec.get("schema") if isinstance(spec, dict) else None
            if kind == "json_schema" and not isinstance(inner, dict):
                raise ValueError("a json_schema response_format needs json_schema.schema")
            if isinstance(inner, dict) and (problem := _schema_problem(inner)):
                raise ValueError(f"response_format schema is not a valid JSON schema: {problem}")
        if self.match is MatchMode.JSON and self.expected_output is not None:
            try:
                json.loads(self.expected_output)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"match 'json' needs expected_output to be JSON: {_json_problem(exc)}"
                ) from None
        return self

    def to_case(self, default_id: str, source: str) -> SuiteCase:
        messages = self.messages
        if messages is None:
            messages = [ChatMessage(role="user", content=self.prompt)]
            if self.system is not None:
                messages.insert(0, ChatMessage(role="system", content=self.system))
        tools = [_tool(i, raw) for i, raw in enumerate(self.tools)]
        offered = {t.name for t in tools}
        if self.expected_tool is not None and self.expected_tool not in offered:
            raise ValueError(
                f"expected_tool {self.expected_tool!r} is not among the tools offered "
                f"({', '.join(sorted(offered)) or 'none'})"
            )
        parameters: dict[str, JsonValue] = dict(self.parameters)
        for name in ("temperature", "max_tokens", "response_format", "tool_choice"):
            if (value := getattr(self, name)) is not None:
                parameters[name] = value
        request = ModelRequest(messages=messages, tools=tools, parameters=parameters)
        expect = Expectations(
            output=self.expected_output,
            match=self.match,
            min_similarity=self.min_similarity,
            schema=self.output_schema,
            tool=self.expected_tool,
        )
        return SuiteCase(self.id or default_id, request, expect, source)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        field = ".".join(str(p) for p in err["loc"])
        message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        message = message.removeprefix("Value error, ")
        parts.append(f"{field}: {message}" if field else message)
    return "; ".join(parts)


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SuiteFileError(
            f"cannot read suite file {path}: {exc.strerror}",
            hint="pass --suite with the path of a .csv or .jsonl file",
        ) from exc
    try:
        return data.decode("utf-8-sig")  # spreadsheets save CSV with a BOM
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SuiteFileError(
            f"{path.name} line {line}: not UTF-8 text", hint="save the file as UTF-8"
        ) from exc


# (line, fields, problem): fields hold what could be read (at least the id, if any);
# problem says why the line cannot be a case before validation even starts.
_Row = tuple[int, dict[str, Any], str | None]


def _jsonl_rows(text: str) -> Iterator[_Row]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, {}, _json_problem(exc)
            continue
        if isinstance(value, dict):
            yield number, value, None
        else:
            yield number, {}, "each line must be a JSON object"


def _csv_rows(text: str, name: str) -> Iterator[_Row]:
    """One row per CSV record; JSON cells parsed, empty cells left out."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    known = set(_CaseRow.model_fields) - {"output_schema"} | {"schema"}
    unknown = [h for h in header if h not in known]
    if not header or unknown:
        what = f"unknown columns {unknown}" if unknown else "no header row"
        raise SuiteFileError(
            f"{name} line 1: {what}", hint=f"columns are: {', '.join(sorted(known))}"
        )
    start = reader.line_num + 1
    for record in reader:
        line, start = start, reader.line_num + 1  # a quoted cell may span lines
        fields: dict[str, Any] = {}
        problem = None
        if None in record:
            problem = f"more cells than the {len(header)} columns of the header"
        for column, cell in record.items():
            if column is None or not isinstance(cell, str) or cell.strip() == "":
                continue
            if column in _JSON_CELLS and cell.lstrip()[:1] in "[{":
                try:
                    fields[column] = json.loads(cell)
                except json.JSONDecodeError as exc:
                    problem = problem or f"{column}: {_json_problem(exc)}"
            else:
                fields[column] = cell
        yield line, fields, problem


def load_suite(path: Path) -> list[SuiteCase]:
    """All cases of a ``.csv`` or ``.jsonl`` suite file.

    Raises:
        SuiteFileError: the file cannot be read, or cases are invalid (every bad line
            is named, up to eight).
    """
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".jsonl", ".ndjson"}:
        raise SuiteFileError(
            f"{path.name}: unknown suite format {suffix or '(no extension)'!r}",
            hint="use a .csv or .jsonl file (one case per row or line)",
        )
    text = _decode(path)
    rows = _csv_rows(text, path.name) if suffix == ".csv" else _jsonl_rows(text)
    cases: list[SuiteCase] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for line, fields, problem in rows:
        case_id = fields.get("id")
        label = f"line {line}" + (f" (case {case_id!r})" if isinstance(case_id, str) else "")
        try:
            if problem is not None:
                raise ValueError(problem)
            case = _CaseRow.model_validate(fields).to_case(f"line-{line}", f"{path.name}:{line}")
        except ValidationError as exc:
            problems.append(f"{label}: {_describe(exc)}")
            continue
        except ValueError as exc:
            problems.append(f"{label}: {exc}")
            continue
        if case.case_id in first_line:
            problems.append(
                f"{label}: id {case.case_id!r} already used on line {first_line[case.case_id]}"
            )
            continue
        first_line[case.case_id] = line
        cases.append(case)
    if problems:
        shown = problems[:_MAX_REPORTED]
        more = len(problems) - len(shown)
        raise SuiteFileError(
            f"{path.name}: {len(problems)} invalid case(s):\n  "
            + "\n  ".join(shown)
            + (f"\n  and {more} more" if more else ""),
            hint=_HINT,
        )
    if not cases:
        raise SuiteFileError(f"{path.name} has no cases", hint=_HINT)
    return cases
