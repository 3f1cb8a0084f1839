"""Turn OpenAI chat-completions traffic into the pieces of a ``CapturedCall``.

Pure functions and one accumulator, no I/O: what the caller sent (``kwargs`` of
``chat.completions.create``), what came back (a ``ChatCompletion`` or a stream of
``ChatCompletionChunk``) and how it failed. Inputs are read duck-typed (dicts or SDK
models alike) so a caller passing back an SDK message object, or a newer SDK adding
fields, does not break the capture.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import openai
from pydantic import BaseModel

from shadowcanary.events import (
    CallStatus,
    ChatMessage,
    ContentPart,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolDefinition,
)

# Arguments of create() that are not model parameters, or that we record elsewhere.
# ``user``/``safety_identifier`` identify a person: they become the hashed stickiness key.
_NOT_PARAMETERS = frozenset(
    {
        "messages", "tools", "functions", "model", "stream", "stream_options", "extra_headers",
        "extra_query", "extra_body", "timeout", "user", "safety_identifier",
    }
)  # fmt: skip
_PART_TYPES = frozenset({"text", "image_url", "input_audio", "file", "refusal"})
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _is_given(value: Any) -> bool:
    return not isinstance(value, openai.NotGiven | openai.Omit)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data; SDK models are dumped, unknown objects become None."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items() if _is_given(v)}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return None


def _tool_call(raw: Any) -> ToolCall | None:
    kind = _get(raw, "type", "function")
    if kind == "custom":
        custom = _get(raw, "custom")
        name, arguments = _get(custom, "name"), _get(custom, "input", "")
    else:
        function = _get(raw, "function")
        name, arguments = _get(function, "name"), _get(function, "arguments", "")
    if not name:
        return None
    return ToolCall(id=_get(raw, "id") or "", name=name, arguments=arguments or "")


def _tool_calls(raw: Any) -> list[ToolCall]:
    calls = (_tool_call(item) for item in raw or ())
    return [call for call in calls if call is not None]


def _part(raw: Any) -> ContentPart | None:
    kind = _get(raw, "type")
    if kind not in _PART_TYPES:
        return None
    payload = _get(raw, kind)
    return ContentPart(type=kind, **{kind: jsonable(payload)})


def _content(raw: Any) -> str | list[ContentPart] | None:
    if raw is None or isinstance(raw, str):
        return raw
    if isinstance(raw, list | tuple):
        parts = (_part(item) for item in raw)
        return [part for part in parts if part is not None]
    return None  # an iterator we must not consume: the SDK has yet to send it


def _message(raw: Any) -> ChatMessage:
    role = _get(raw, "role")
    tool_calls = _tool_calls(_get(raw, "tool_calls"))
    legacy_call = _get(raw, "function_call")
    if legacy_call:
        tool_calls.extend(_tool_calls([{"type": "function", "function": legacy_call}]))
    if role == "function":  # the deprecated form of a tool result
        role = "tool"
    return ChatMessage(
        role=role if role in _ROLES else "user",
        content=_content(_get(raw, "content")),
        name=_get(raw, "name"),
        tool_calls=tool_calls,
        tool_call_id=_get(raw, "tool_call_id"),
    )


def _tool_definition(raw: Any) -> ToolDefinition | None:
    kind = _get(raw, "type", "function")
    spec = _get(raw, kind) if kind in ("function", "custom") else None
    if spec is None and _get(raw, "name"):  # legacy ``functions=[{name, parameters}]``
        spec = raw
    name = _get(spec, "name")
    if not name:
        return None
    parameters = jsonable(_get(spec, "parameters")) or {}
    return ToolDefinition(
        name=name,
        description=_get(spec, "description"),
        parameters=parameters if isinstance(parameters, dict) else {},
    )


def request_from_kwargs(kwargs: Mapping[str, Any]) -> ModelRequest:
    """The request as the model saw it: messages, offered tools and every other parameter."""
    tools = [
        _tool_definition(t)
        for t in list(kwargs.get("tools") or ()) + list(kwargs.get("functions") or ())
    ]
    parameters = {
        key: jsonable(value)
        for key, value in kwargs.items()
        if key not in _NOT_PARAMETERS and _is_given(value)
    }
    extra_body = kwargs.get("extra_body")
    if isinstance(extra_body, Mapping):
        parameters.update({str(k): jsonable(v) for k, v in extra_body.items()})
    return ModelRequest(
        messages=[_message(m) for m in kwargs["messages"]],
        tools=[t for t in tools if t is not None],
        parameters=parameters,
    )


def _finish_reason(value: Any) -> Any:
    return value if value in _FINISH_REASONS else None


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # Shares of the two above: input served from the prompt cache, output spent reasoning.
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    estimated: bool = False  # counted by us (``estimate_usage``), not by the provider


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usage_of(obj: Any) -> Usage:
    """Token usage of a chat completion (or its last chunk)."""
    usage = _get(obj, "usage")
    if usage is None:
        return Usage()
    return Usage(
        _get(usage, "prompt_tokens"),
        _get(usage, "completion_tokens"),
        _int_or_none(_get(_get(usage, "prompt_tokens_details"), "cached_tokens")),
        _int_or_none(_get(_get(usage, "completion_tokens_details"), "reasoning_tokens")),
    )


# OpenAI's rule of thumb for English text; framing tokens per message as in its cookbook.
CHARS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 3


def estimate_usage(request: ModelRequest, response: ModelResponse) -> Usage:
    """Token counts for a call whose provider reported none (a chat stream without
    ``stream_options.include_usage``): characters / 4 plus 3 per message, as OpenAI's
    guidance estimates them. Marked ``estimated``; never mixed up with real counts."""
    prompt_chars = sum(len(m.text()) for m in request.messages)
    prompt_chars += sum(len(t.name) + len(str(t.parameters)) for t in request.tools)
    answer_chars = len(response.text or "") + len(response.refusal or "")
    answer_chars += sum(len(c.name) + len(c.arguments) for c in response.tool_calls)
    return Usage(
        prompt_tokens=-(-prompt_chars // CHARS_PER_TOKEN)
        + _TOKENS_PER_MESSAGE * len(request.messages),
        completion_tokens=-(-answer_chars // CHARS_PER_TOKEN),
        estimated=True,
    )


def response_from_completion(completion: Any) -> ModelResponse:
    """The first choice of a non-streamed ``ChatCompletion``."""
    choices = _get(completion, "choices") or []
    if not choices:
        return ModelResponse()
    choice = choices[0]
    message = _get(choice, "message")
    tool_calls = _tool_calls(_get(message, "tool_calls"))
    legacy_call = _get(message, "function_call")
    if legacy_call:
        tool_calls.extend(_tool_calls([{"type": "function", "function": legacy_call}]))
    return ModelResponse(
        text=_get(message, "content"),
        tool_calls=tool_calls,
        finish_reason=_finish_reason(_get(choice, "finish_reason")),
        refusal=_get(message, "refusal"),
    )


@dataclass(frozen=True, slots=True)
class Failure:
    status: CallStatus
    error_class: str
    http_status: int | None = None


def failure_of(exc: BaseException) -> Failure:
    """How the caller saw a call fail: status, exception class and HTTP status."""
    name = type(exc).__name__
    if isinstance(exc, openai.RateLimitError):
        return Failure(CallStatus.RATE_LIMITED, name, exc.status_code)
    if isinstance(exc, openai.APITimeoutError):
        return Failure(CallStatus.TIMEOUT, name)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code if 100 <= exc.status_code <= 599 else None
        return Failure(CallStatus.ERROR, name, status)
    if isinstance(exc, GeneratorExit | KeyboardInterrupt | asyncio.CancelledError):
        return Failure(CallStatus.CANCELLED, name)
    return Failure(CallStatus.ERROR, name)


@dataclass(slots=True)
class _ToolCallDraft:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class StreamAssembly:
    """Reassembles the first choice of a chat-completions stream, chunk by chunk."""

    text: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    tool_calls: dict[int, _ToolCallDraft] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    # Monotonic time of the first chunk carrying content (text, refusal or a tool call).
    first_content_at: float | None = None

    def add(self, chunk: Any, now: float) -> None:
        if _get(chunk, "usage") is not None:
            self.usage = usage_of(chunk)
        for choice in _get(chunk, "choices") or ():
            if (_get(choice, "index") or 0) != 0:
                continue
            delta = _get(choice, "delta")
            content = _get(delta, "content")
            refusal = _get(delta, "refusal")
            calls = _get(delta, "tool_calls") or ()
            legacy_call = _get(delta, "function_call")
            if content:
                self.text.append(content)
            if refusal:
                self.refusal.append(refusal)
            for call in calls:
                self._add_tool_call(_get(call, "index") or 0, call, _get(call, "function"))
            if legacy_call:
                self._add_tool_call(0, {}, legacy_call)
            if self.first_content_at is None and (content or refusal or calls or legacy_call):
                self.first_content_at = now
            if _get(choice, "finish_reason"):
                self.finish_reason = _get(choice, "finish_reason")

    def _add_tool_call(self, index: int, call: Any, function: Any) -> None:
        draft = self.tool_calls.setdefault(index, _ToolCallDraft())
        draft.id = _get(call, "id") or draft.id
        draft.name = _get(function, "name") or draft.name
        arguments = _get(function, "arguments")
        if arguments:
            draft.arguments.append(arguments)

    def response(self) -> ModelResponse:
        calls = [
            ToolCall(id=d.id, name=d.name, arguments="".join(d.arguments))
            for _, d in sorted(self.tool_calls.items())
            if d.name
        ]
        return ModelResponse(
            text="".join(self.text) if self.text or not (calls or self.refusal) else None,
            tool_calls=calls,
            finish_reason=_finish_reason(self.finish_reason),
            refusal="".join(self.refusal) or None,
        )
