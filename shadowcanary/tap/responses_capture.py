"""Turn OpenAI Responses API traffic into the pieces of a ``CapturedCall``.

The request is kept as sent: its body (``input`` items, ``instructions``, ``tools``
including built-in ones, ``text.format``, ``reasoning``, ``store``,
``previous_response_id``, ...) becomes ``ModelRequest.parameters`` with
``api="responses"``, so a replay sends the candidate the same Responses call. The
chat-form view (``messages``, function ``tools``) is derived for the scorers and the
reports. Inputs are read duck-typed: dicts (the gateway) or SDK objects (the tap).

A call continued with ``previous_response_id`` only sends its new turns; the earlier
ones live at the provider. ``Conversations`` remembers, per process and bounded, the
turns behind each response this process saw, so such a call is captured with its
context (``ModelRequest.context_messages``) and can be replayed in full.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from shadowcanary.events import (
    ChatMessage,
    ContentPart,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolDefinition,
)
from shadowcanary.tap.capture import Usage, _get, _int_or_none, _is_given, jsonable

# Arguments of responses.create() that are not part of the request body, or that
# identify a person (``user``/``safety_identifier``: hashed into the stickiness key).
_NOT_SENT = frozenset(
    {
        "model", "stream", "stream_options", "extra_headers", "extra_query", "extra_body",
        "timeout", "user", "safety_identifier",
    }
)  # fmt: skip
_TEXT_PART_TYPES = frozenset({"input_text", "output_text", "text"})


def _parts(raw: Any) -> str | list[ContentPart]:
    if isinstance(raw, str):
        return raw
    out: list[ContentPart] = []
    for part in raw if isinstance(raw, list) else ():
        kind = _get(part, "type")
        if kind in _TEXT_PART_TYPES:
            out.append(ContentPart(type="text", text=str(_get(part, "text", ""))))
        elif kind == "refusal":
            out.append(ContentPart(type="refusal", refusal=str(_get(part, "refusal", ""))))
        elif kind == "input_image" and _get(part, "image_url"):
            out.append(ContentPart(type="image_url", image_url={"url": _get(part, "image_url")}))
    return out


def input_messages(raw: Any) -> list[ChatMessage]:
    """The chat-form view of a Responses ``input`` (a string or a list of items)."""
    if isinstance(raw, str):
        return [ChatMessage(role="user", content=raw)]
    messages: list[ChatMessage] = []
    for item in raw if isinstance(raw, list) else ():
        kind = _get(item, "type") or "message"
        role = _get(item, "role")
        if kind == "message" and role in ("system", "developer", "user", "assistant"):
            messages.append(ChatMessage(role=role, content=_parts(_get(item, "content"))))
        elif kind == "function_call" and _get(item, "name"):
            call = ToolCall(
                id=str(_get(item, "call_id") or ""),
                name=str(_get(item, "name")),
                arguments=str(_get(item, "arguments") or ""),
            )
            messages.append(ChatMessage(role="assistant", tool_calls=[call]))
        elif kind == "function_call_output":
            output = _get(item, "output")
            messages.append(
                ChatMessage(
                    role="tool",
                    content=output if isinstance(output, str) else orjson.dumps(output).decode(),
                    tool_call_id=str(_get(item, "call_id") or ""),
                )
            )
    return messages


def _function_tools(raw: Any) -> list[ToolDefinition]:
    tools = []
    for tool in raw if isinstance(raw, list) else ():
        if _get(tool, "type", "function") in ("function", "custom") and _get(tool, "name"):
            parameters = _get(tool, "parameters")
            tools.append(
                ToolDefinition(
                    name=str(_get(tool, "name")),
                    description=_get(tool, "description"),
                    parameters=parameters if isinstance(parameters, dict) else {},
                )
            )
    return tools


def responses_body(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The request body a ``responses.create(**kwargs)`` sends, minus model, streaming
    and the caller's identity, as plain JSON."""
    body = {
        key: jsonable(value)
        for key, value in kwargs.items()
        if key not in _NOT_SENT and _is_given(value)
    }
    extra_body = kwargs.get("extra_body")
    if isinstance(extra_body, Mapping):
        body.update({str(k): jsonable(v) for k, v in extra_body.items() if k not in _NOT_SENT})
    return body


def responses_request(
    kwargs: Mapping[str, Any], context: Sequence[ChatMessage] = ()
) -> ModelRequest:
    """The request of a Responses call (``create`` kwargs or a ``/v1/responses`` body).

    ``context``: the turns behind its ``previous_response_id``, when known.
    """
    parameters = responses_body(kwargs)
    messages = list(context)
    instructions = parameters.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append(ChatMessage(role="system", content=instructions))
    messages.extend(input_messages(parameters.get("input")))
    if len(messages) == len(context):
        # Only items the chat view has no form for (e.g. item references): the call
        # still counts; its body is what a replay sends.
        messages.append(ChatMessage(role="user", content=None))
    return ModelRequest(
        messages=messages,
        tools=_function_tools(parameters.get("tools")),
        parameters=parameters,
        api="responses",
        context_messages=len(context),
    )


def _finish_reason(payload: Any, has_calls: bool) -> Any:
    status = _get(payload, "status")
    if status == "incomplete":
        reason = _get(_get(payload, "incomplete_details"), "reason")
        return "length" if reason == "max_output_tokens" else "content_filter"
    if status == "completed":
        return "tool_calls" if has_calls else "stop"
    return None


def responses_usage(payload: Any) -> Usage:
    usage = _get(payload, "usage")
    if usage is None:
        return Usage()
    return Usage(
        _int_or_none(_get(usage, "input_tokens")),
        _int_or_none(_get(usage, "output_tokens")),
        _int_or_none(_get(_get(usage, "input_tokens_details"), "cached_tokens")),
        _int_or_none(_get(_get(usage, "output_tokens_details"), "reasoning_tokens")),
    )


def responses_response(payload: Any) -> tuple[ModelResponse, Usage]:
    """The answer of a Responses ``response`` object (dict or SDK model) and its usage."""
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[ToolCall] = []
    for item in _get(payload, "output") or ():
        kind = _get(item, "type")
        if kind == "message":
            for part in _get(item, "content") or ():
                if _get(part, "type") == "output_text":
                    texts.append(_get(part, "text") or "")
                elif _get(part, "type") == "refusal":
                    refusals.append(_get(part, "refusal") or "")
        elif kind in ("function_call", "custom_tool_call") and _get(item, "name"):
            arguments = _get(item, "arguments") if kind == "function_call" else _get(item, "input")
            calls.append(
                ToolCall(
                    id=str(_get(item, "call_id") or ""),
                    name=str(_get(item, "name")),
                    arguments=arguments or "",
                )
            )
    response = ModelResponse(
        text="".join(texts) if texts or not (calls or refusals) else None,
        tool_calls=calls,
        finish_reason=_finish_reason(payload, bool(calls)),
        refusal="".join(refusals) or None,
    )
    return response, responses_usage(payload)


@dataclass(slots=True)
class ResponsesStreamAssembly:
    """Follows a Responses event stream: the final ``response`` object, or the deltas."""

    text: list[str] = field(default_factory=list)
    final: Any = None
    first_content_at: float | None = None

    def add(self, event: Any, now: float) -> None:
        kind = _get(event, "type")
        if kind == "response.output_text.delta":
            self.text.append(_get(event, "delta") or "")
        if self.first_content_at is None and kind in (
            "response.output_text.delta",
            "response.refusal.delta",
            "response.function_call_arguments.delta",
        ):
            self.first_content_at = now
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            response = _get(event, "response")
            if response is not None:
                self.final = response

    def result(self) -> tuple[ModelResponse, Usage]:
        if self.final is not None:
            return responses_response(self.final)
        return ModelResponse(text="".join(self.text)), Usage()

    # The chat assembly's interface, for the tap's stream watcher.
    def response(self) -> ModelResponse:
        return self.result()[0]

    @property
    def usage(self) -> Usage:
        return self.result()[1]

    @property
    def response_id(self) -> str | None:
        rid = _get(self.final, "id") if self.final is not None else None
        return rid if isinstance(rid, str) else None


def answer_messages(response: ModelResponse) -> list[ChatMessage]:
    """An answer as the turns a continuation of it sees (one per output item)."""
    turns = []
    text = response.text if response.text is not None else response.refusal
    if text is not None:
        turns.append(ChatMessage(role="assistant", content=text))
    turns.extend(ChatMessage(role="assistant", tool_calls=[call]) for call in response.tool_calls)
    return turns


class Conversations:
    """Per process, bounded: the turns behind each Responses answer seen, by response id.

    Only what this process saw: a conversation whose earlier calls went through
    another process (another gateway worker, another service replica) is not here,
    and its continuation is captured without context (replays then record it as not
    replayable, with the reason). Bounded in conversations and in characters kept
    (about 2 bytes each in CPython for most text): least recently used go first.
    Thread-safe.
    """

    def __init__(
        self,
        max_conversations: int = 4_096,
        max_chars: int = 200_000,
        max_total_chars: int = 8_000_000,
    ) -> None:
        self._turns: OrderedDict[str, tuple[tuple[ChatMessage, ...], int]] = OrderedDict()
        self._max_conversations = max_conversations
        self._max_chars = max_chars
        self._max_total_chars = max_total_chars
        self._total_chars = 0
        self._lock = threading.Lock()

    def context(self, previous_response_id: Any) -> tuple[ChatMessage, ...] | None:
        """The turns behind ``previous_response_id``; None when unknown here."""
        if not isinstance(previous_response_id, str):
            return None
        with self._lock:
            entry = self._turns.get(previous_response_id)
            if entry is None:
                return None
            self._turns.move_to_end(previous_response_id)
            return entry[0]

    def remember(self, response_id: Any, request: ModelRequest, response: ModelResponse) -> None:
        """Keep the conversation that ``response_id`` ends: context, input, answer."""
        if not isinstance(response_id, str) or request.parameters.get("store") is False:
            return  # not stored by the provider: nothing can continue it
        own = request.messages[request.context_messages :]
        instructions = request.parameters.get("instructions")
        if own and own[0].role == "system" and isinstance(instructions, str) and instructions:
            own = own[1:]  # instructions do not carry over to a continuation
        turns = (
            *request.messages[: request.context_messages],
            *(m for m in own if m.content is not None or m.tool_calls),
            *answer_messages(response),
        )
        chars = sum(len(m.text()) + sum(len(c.arguments) for c in m.tool_calls) for m in turns)
        if chars > self._max_chars:
            return  # too long to keep: its continuation is captured without context
        with self._lock:
            old = self._turns.pop(response_id, None)
            self._total_chars += chars - (old[1] if old is not None else 0)
            self._turns[response_id] = (turns, chars)
            while self._turns and (
                len(self._turns) > self._max_conversations
                or self._total_chars > self._max_total_chars
            ):
                _, (_, dropped) = self._turns.popitem(last=False)
                self._total_chars -= dropped
