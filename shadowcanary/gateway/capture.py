"""Raw OpenAI JSON (what the gateway sees on the wire) to the pieces of a ``CapturedCall``.

Chat completions reuse the tap's helpers directly: they read dicts as well as SDK
objects (``request_from_kwargs``, ``response_from_completion``, ``StreamAssembly``).
The Responses API is mapped onto the same chat-shaped contract here: ``instructions``
becomes a system message, input items become messages, function calls become tool
calls, and only the parameters a chat replay understands are kept (so a worker can
replay the prompt against the candidate's chat endpoint).
"""

from __future__ import annotations

from collections.abc import Mapping
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
from shadowcanary.tap.capture import (
    StreamAssembly,
    Usage,
    request_from_kwargs,
    response_from_completion,
    usage_of,
)

__all__ = [
    "ResponsesStreamAssembly",
    "SSEDecoder",
    "StreamAssembly",
    "Usage",
    "chat_request",
    "chat_response",
    "responses_request",
    "responses_response",
]

# Responses API parameter -> the chat-completions parameter a replay sends instead.
_RESPONSES_PARAMETERS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_output_tokens": "max_completion_tokens",
    "parallel_tool_calls": "parallel_tool_calls",
    "tool_choice": "tool_choice",
}
_INPUT_TEXT_TYPES = frozenset({"input_text", "output_text", "text"})


def chat_request(body: Mapping[str, Any]) -> ModelRequest:
    """The request of a ``/v1/chat/completions`` body (``stream`` and ``user`` not recorded)."""
    return request_from_kwargs(body)


def chat_response(payload: Mapping[str, Any]) -> tuple[ModelResponse, Usage]:
    return response_from_completion(payload), usage_of(payload)


def _text_of_parts(parts: Any) -> str | list[ContentPart]:
    if isinstance(parts, str):
        return parts
    out: list[ContentPart] = []
    for part in parts if isinstance(parts, list) else ():
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _INPUT_TEXT_TYPES:
            out.append(ContentPart(type="text", text=str(part.get("text", ""))))
        elif kind == "refusal":
            out.append(ContentPart(type="refusal", refusal=str(part.get("refusal", ""))))
        elif kind == "input_image" and part.get("image_url"):
            out.append(ContentPart(type="image_url", image_url={"url": part["image_url"]}))
    return out


def _input_messages(raw: Any) -> list[ChatMessage]:
    if isinstance(raw, str):
        return [ChatMessage(role="user", content=raw)]
    messages: list[ChatMessage] = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") in ("system", "developer", "user", "assistant"):
            messages.append(ChatMessage(role=item["role"], content=_text_of_parts(item["content"])))
        elif kind == "function_call":
            call = ToolCall(
                id=str(item.get("call_id", "")),
                name=str(item.get("name")),
                arguments=str(item.get("arguments", "")),
            )
            messages.append(ChatMessage(role="assistant", tool_calls=[call]))
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append(
                ChatMessage(
                    role="tool",
                    content=output if isinstance(output, str) else orjson.dumps(output).decode(),
                    tool_call_id=str(item.get("call_id", "")),
                )
            )
    return messages


def _response_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema = {k: v for k, v in fmt.items() if k in ("name", "schema", "strict", "description")}
        return {"type": "json_schema", "json_schema": schema}
    return None


def responses_request(body: Mapping[str, Any]) -> ModelRequest:
    """The request of a ``/v1/responses`` body, in chat form."""
    messages = _input_messages(body.get("input"))
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.insert(0, ChatMessage(role="system", content=instructions))
    parameters = {chat: body[name] for name, chat in _RESPONSES_PARAMETERS.items() if name in body}
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        parameters["response_format"] = response_format
    tools = [
        ToolDefinition(
            name=str(t["name"]),
            description=t.get("description"),
            parameters=t["parameters"] if isinstance(t.get("parameters"), dict) else {},
        )
        for t in body.get("tools") or ()
        if isinstance(t, dict) and t.get("type", "function") == "function" and t.get("name")
    ]
    return ModelRequest(messages=messages, tools=tools, parameters=parameters)


def _finish_reason(payload: Mapping[str, Any], has_calls: bool) -> Any:
    status = payload.get("status")
    if status == "incomplete":
        reason = (payload.get("incomplete_details") or {}).get("reason")
        return "length" if reason == "max_output_tokens" else "content_filter"
    if status == "completed":
        return "tool_calls" if has_calls else "stop"
    return None


def responses_response(payload: Mapping[str, Any]) -> tuple[ModelResponse, Usage]:
    """The answer of a Responses API ``response`` object, and its token usage."""
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[ToolCall] = []
    for item in payload.get("output") or ():
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    texts.append(part.get("text", ""))
                elif part.get("type") == "refusal":
                    refusals.append(part.get("refusal", ""))
        elif kind == "function_call" and item.get("name"):
            calls.append(
                ToolCall(
                    id=str(item.get("call_id", "")),
                    name=item["name"],
                    arguments=item.get("arguments", ""),
                )
            )
    usage = payload.get("usage") or {}
    response = ModelResponse(
        text="".join(texts) if texts or not (calls or refusals) else None,
        tool_calls=calls,
        finish_reason=_finish_reason(payload, bool(calls)),
        refusal="".join(refusals) or None,
    )
    return response, Usage(usage.get("input_tokens"), usage.get("output_tokens"))


@dataclass(slots=True)
class ResponsesStreamAssembly:
    """Follows a Responses API event stream: the final ``response`` object, or the deltas."""

    text: list[str] = field(default_factory=list)
    final: dict[str, Any] | None = None
    first_content_at: float | None = None

    def add(self, event: Mapping[str, Any], now: float) -> None:
        kind = event.get("type")
        if kind == "response.output_text.delta":
            self.text.append(event.get("delta", ""))
        if self.first_content_at is None and kind in (
            "response.output_text.delta",
            "response.refusal.delta",
            "response.function_call_arguments.delta",
        ):
            self.first_content_at = now
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            response = event.get("response")
            if isinstance(response, dict):
                self.final = response

    def result(self) -> tuple[ModelResponse, Usage]:
        if self.final is not None:
            return responses_response(self.final)
        return ModelResponse(text="".join(self.text)), Usage()


class SSEDecoder:
    """Splits a server-sent-events byte stream into the JSON objects of its ``data:`` lines.

    Bytes arrive cut anywhere (mid-line, mid-event); the decoder keeps the unfinished
    tail. ``[DONE]`` and non-JSON data are skipped: they carry nothing to capture.
    """

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> list[Any]:
        buffer = self._tail + data if self._tail else data
        if b"\r" in buffer:  # CRLF line ends are valid SSE too
            buffer = buffer.replace(b"\r\n", b"\n")
        events = buffer.split(b"\n\n")
        self._tail = events.pop()
        out = []
        for event in events:
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    payload = line[5:].strip()
                    if payload and payload != b"[DONE]":
                        try:
                            out.append(orjson.loads(payload))
                        except orjson.JSONDecodeError:
                            continue
        return out
