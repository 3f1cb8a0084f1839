"""Every text a captured call can carry, mapped through one function.

Redaction must reach every place a prompt or an answer can put user text: message
contents (plain and text parts), participant names, file names, tool-call arguments,
tool results (tool messages), response text and refusal, and string request
parameters at any depth. ``map_event_texts`` walks exactly those and rebuilds only
the parts whose text changed, so an event without PII comes back as the same object
and costs no copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shadowcanary.events import (
    CapturedCall,
    ChatMessage,
    ContentPart,
    ModelRequest,
    ModelResponse,
    ToolCall,
)

TextMap = Callable[[str], str]


def map_event_texts(event: CapturedCall, fn: TextMap) -> CapturedCall:
    """``event`` with ``fn`` applied to each non-empty text; the same object if nothing changed."""
    request = _map_request(event.request, fn)
    response = _map_response(event.response, fn) if event.response is not None else None
    if request is event.request and response is event.response:
        return event
    return event.model_copy(update={"request": request, "response": response})


def _map_request(request: ModelRequest, fn: TextMap) -> ModelRequest:
    messages = _map_list(request.messages, _map_message, fn)
    parameters = _map_json(request.parameters, fn)
    if messages is request.messages and parameters is request.parameters:
        return request
    return request.model_copy(update={"messages": messages, "parameters": parameters})


def _map_message(message: ChatMessage, fn: TextMap) -> ChatMessage:
    update: dict[str, Any] = {}
    content = message.content
    if isinstance(content, str):
        if content:
            new_content = fn(content)
            if new_content is not content:
                update["content"] = new_content
    elif content:
        parts = _map_list(content, _map_part, fn)
        if parts is not content:
            update["content"] = parts
    if message.name:
        name = fn(message.name)
        if name is not message.name:
            update["name"] = name
    calls = _map_list(message.tool_calls, _map_tool_call, fn)
    if calls is not message.tool_calls:
        update["tool_calls"] = calls
    return message.model_copy(update=update) if update else message


def _map_part(part: ContentPart, fn: TextMap) -> ContentPart:
    update: dict[str, Any] = {}
    for key in ("text", "refusal"):
        value = getattr(part, key)
        if value:
            new = fn(value)
            if new is not value:
                update[key] = new
    if part.file is not None:
        # A file's name often carries a person's name or email; its bytes are not text.
        file = _map_json(part.file, fn, only_keys=("filename",))
        if file is not part.file:
            update["file"] = file
    return part.model_copy(update=update) if update else part


def _map_tool_call(call: ToolCall, fn: TextMap) -> ToolCall:
    if not call.arguments:
        return call
    arguments = fn(call.arguments)
    return call if arguments is call.arguments else call.model_copy(update={"arguments": arguments})


def _map_response(response: ModelResponse, fn: TextMap) -> ModelResponse:
    update: dict[str, Any] = {}
    for key in ("text", "refusal"):
        value = getattr(response, key)
        if value:
            new = fn(value)
            if new is not value:
                update[key] = new
    calls = _map_list(response.tool_calls, _map_tool_call, fn)
    if calls is not response.tool_calls:
        update["tool_calls"] = calls
    return response.model_copy(update=update) if update else response


def _map_list(items: list[Any], map_item: Callable[[Any, TextMap], Any], fn: TextMap) -> list[Any]:
    mapped = [map_item(item, fn) for item in items]
    if all(new is old for new, old in zip(mapped, items, strict=True)):
        return items
    return mapped


def _map_json(value: Any, fn: TextMap, only_keys: tuple[str, ...] | None = None) -> Any:
    if isinstance(value, str):
        return fn(value) if value else value
    if isinstance(value, dict):
        changed = False
        out: dict[str, Any] = {}
        for key, item in value.items():
            new = item if only_keys is not None and key not in only_keys else _map_json(item, fn)
            changed = changed or new is not item
            out[key] = new
        return out if changed else value
    if isinstance(value, list):
        items = [_map_json(item, fn) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return items
    return value
