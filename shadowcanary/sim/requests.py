"""Request bodies of the OpenAI API the simulator accepts, validated at the HTTP edge.

Unknown request fields are allowed (OpenAI adds parameters often and the simulator
ignores the ones it does not model: temperature, seed, user, ...). What the
simulator does read is checked and turned into a ``SimPrompt``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shadowcanary.sim.prompt import OutputFormat, SimPrompt, ToolSpec


class RequestProblem(ValueError):
    """The body is well-formed JSON but asks for something invalid (HTTP 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatMessageIn(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None


class FunctionIn(_Lenient):
    name: str = Field(min_length=1, max_length=200)
    parameters: dict[str, Any] = Field(default_factory=dict)


class ChatToolIn(_Lenient):
    type: str = "function"
    function: FunctionIn | None = None


class ChatRequest(_Lenient):
    model: str = Field(min_length=1)
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    tools: list[ChatToolIn] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1)
    reasoning_effort: str | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))

    def to_prompt(self) -> SimPrompt:
        if self.n != 1:
            raise RequestProblem("the simulator supports n=1 only", "n")
        messages = tuple((m.role, _chat_message_text(m)) for m in self.messages)
        tools = tuple(
            ToolSpec(t.function.name, t.function.parameters)
            for t in self.tools or []
            if t.type == "function" and t.function is not None
        )
        fmt, schema = _chat_format(self.response_format)
        return SimPrompt(
            messages=messages,
            tools=tools,
            tool_choice=_tool_choice(self.tool_choice, tools),
            output_format=fmt,
            json_schema=schema,
            max_tokens=self.max_completion_tokens or self.max_tokens,
        )


def _parts_text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    pieces = []
    for part in content:
        text = part.get("text") or part.get("refusal")
        pieces.append(text if isinstance(text, str) else f"[{part.get('type', 'part')}]")
    return "\n".join(pieces)


def _calls_text(calls: list[tuple[Any, Any]]) -> str:
    # The same rendering for chat tool_calls and Responses function_call items, so a
    # conversation gets the same answer through either API.
    return "".join(f"\n[call {name} {arguments}]" for name, arguments in calls)


def _chat_message_text(message: ChatMessageIn) -> str:
    text = _parts_text(message.content)
    calls = [
        (c.get("function", {}).get("name"), c.get("function", {}).get("arguments"))
        for c in message.tool_calls or []
    ]
    return text + _calls_text(calls)


def _chat_format(
    response_format: dict[str, Any] | None,
) -> tuple[OutputFormat, dict[str, Any] | None]:
    if not response_format:
        return OutputFormat.TEXT, None
    kind = response_format.get("type", "text")
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise RequestProblem(
                "response_format.json_schema must be an object with a 'schema' object",
                "response_format",
            )
        return OutputFormat.JSON_SCHEMA, spec.get("schema", {})
    return _format_kind(kind, "response_format.type"), None


def _format_kind(kind: Any, param: str) -> OutputFormat:
    try:
        return OutputFormat(kind)
    except ValueError:
        raise RequestProblem(
            f"{param} must be one of 'text', 'json_object', 'json_schema' (got {kind!r})", param
        ) from None


def _tool_choice(choice: str | dict[str, Any] | None, tools: tuple[ToolSpec, ...]) -> str | None:
    if choice is None or choice == "auto":
        return None
    if isinstance(choice, str):
        if choice not in ("none", "required"):
            raise RequestProblem(
                f"tool_choice must be 'auto', 'none', 'required' or a function (got {choice!r})",
                "tool_choice",
            )
        if choice == "required" and not tools:
            raise RequestProblem("tool_choice 'required' needs at least one tool", "tool_choice")
        return choice
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else choice.get("name")
    if not isinstance(name, str) or name not in {t.name for t in tools}:
        raise RequestProblem(
            f"tool_choice names function {name!r}, which is not in tools "
            f"({', '.join(t.name for t in tools) or 'none offered'})",
            "tool_choice",
        )
    return name


class ResponsesRequest(_Lenient):
    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False
    # As in OpenAI's API: responses are stored unless ``store`` is false, and a stored
    # one can be continued with ``previous_response_id`` (its instructions are not).
    store: bool = True
    previous_response_id: str | None = None
    reasoning: dict[str, Any] | None = None

    @property
    def reasoning_effort(self) -> str | None:
        effort = (self.reasoning or {}).get("effort")
        return effort if isinstance(effort, str) else None

    def conversation(self) -> tuple[tuple[str, str], ...]:
        """This request's input items as (role, text), instructions not included."""
        if isinstance(self.input, str):
            return (("user", self.input),)
        turns = (_input_item(item, i) for i, item in enumerate(self.input))
        return tuple(turn for turn in turns if turn is not None)

    def to_prompt(self, history: tuple[tuple[str, str], ...] = ()) -> SimPrompt:
        """The prompt, after ``history`` (the turns behind ``previous_response_id``)."""
        messages: list[tuple[str, str]] = []
        if self.instructions:
            messages.append(("system", self.instructions))
        messages.extend(history)
        messages.extend(self.conversation())
        if len(messages) == len(history) + bool(self.instructions):
            raise RequestProblem("input must not be empty", "input")
        tools = tuple(
            ToolSpec(str(t["name"]), t.get("parameters") or {})
            for t in self.tools or []
            if t.get("type") == "function" and isinstance(t.get("name"), str)
        )
        fmt, schema = _responses_format(self.text)
        return SimPrompt(
            messages=tuple(messages),
            tools=tools,
            tool_choice=_tool_choice(self.tool_choice, tools),
            output_format=fmt,
            json_schema=schema,
            max_tokens=self.max_output_tokens,
        )


def _input_item(item: dict[str, Any], index: int) -> tuple[str, str] | None:
    kind = item.get("type", "message")
    if kind == "reasoning":
        return None  # a reasoning item handed back: context, no text of its own
    if kind == "message":
        role = item.get("role")
        if role not in ("system", "developer", "user", "assistant"):
            raise RequestProblem(f"input[{index}].role must be a message role", f"input[{index}]")
        return str(role), _parts_text(item.get("content"))
    if kind == "function_call":
        return "assistant", _calls_text([(item.get("name"), item.get("arguments"))])
    if kind == "function_call_output":
        output = item.get("output")
        return "tool", output if isinstance(output, str) else json.dumps(output)
    raise RequestProblem(f"input[{index}].type {kind!r} is not supported by the simulator")


def answer_turns(text: str | None, calls: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """An answer's output items as the turns its continuation sees, rendered exactly as
    the same items handed back as input would be (so a conversation continued with
    ``previous_response_id`` and one replayed with its items in full ask the same)."""
    turns = [("assistant", text)] if text is not None else []
    turns.extend(("assistant", _calls_text([call])) for call in calls)
    return tuple(turns)


def _responses_format(text: dict[str, Any] | None) -> tuple[OutputFormat, dict[str, Any] | None]:
    spec = (text or {}).get("format")
    if not isinstance(spec, dict):
        return OutputFormat.TEXT, None
    kind = _format_kind(spec.get("type", "text"), "text.format.type")
    if kind is OutputFormat.JSON_SCHEMA:
        schema = spec.get("schema", {})
        if not isinstance(schema, dict):
            raise RequestProblem("text.format.schema must be an object", "text.format")
        return kind, schema
    return kind, None


class EmbeddingsRequest(_Lenient):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    dimensions: int | None = Field(default=None, ge=1, le=4_096)
    encoding_format: Literal["float", "base64"] = "float"

    def texts(self) -> list[str]:
        raw = self.input
        if isinstance(raw, str):
            return [raw]
        if not raw:
            raise RequestProblem("input must not be empty", "input")
        if all(isinstance(x, str) for x in raw):
            return [str(x) for x in raw]
        if all(isinstance(x, int) for x in raw):
            return [_token_text(raw)]
        return [_token_text(x) if isinstance(x, list) else str(x) for x in raw]


def _token_text(tokens: Any) -> str:
    # Token ids have no meaning here; spelling them as words keeps equal inputs equal.
    return " ".join(f"t{t}" for t in tokens)
