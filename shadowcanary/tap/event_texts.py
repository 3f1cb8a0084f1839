"""Every text a captured call can carry: list them, and put replacements back.

Redaction must reach every place a prompt or an answer can put user text: message
contents (plain and text parts), participant names, file names, tool-call arguments,
tool results (tool messages), response text and refusal, and string request
parameters at any depth. ``collect_texts`` lists exactly those; ``replace_texts``
rebuilds only the parts whose text changed, so an event without PII costs no copy;
``splice_texts_json`` puts replacements into the event's JSON instead, cheaper still.

Both are written out field by field rather than as one generic visitor: they run
for every event on the tap's publishing thread, where a function call per node
costs more than the redaction itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic_core import to_json

from shadowcanary.events import CapturedCall, ChatMessage, ContentPart, ModelResponse, ToolCall

M = TypeVar("M", bound=BaseModel)


def _with(model: M, update: dict[str, Any]) -> M:
    """``model.model_copy(update=update)`` at half the cost.

    Our wire models forbid extras and have no private attributes, so a copy is the
    field dict plus the fields-set; pydantic's generic ``__copy__`` does more.
    """
    copy = type(model).__new__(type(model))
    object.__setattr__(copy, "__dict__", {**model.__dict__, **update})
    object.__setattr__(copy, "__pydantic_extra__", None)
    object.__setattr__(
        copy, "__pydantic_fields_set__", model.__pydantic_fields_set__ | update.keys()
    )
    object.__setattr__(copy, "__pydantic_private__", None)
    return copy


def collect_texts(event: CapturedCall) -> list[str]:
    """The non-empty texts of ``event``, in a stable order (duplicates kept)."""
    out: list[str] = []
    add = out.append
    for message in event.request.messages:
        content = message.content
        if isinstance(content, str):
            if content:
                add(content)
        elif content:
            for part in content:
                if part.text:
                    add(part.text)
                if part.refusal:
                    add(part.refusal)
                if part.file is not None:
                    filename = part.file.get("filename")
                    if isinstance(filename, str) and filename:
                        add(filename)
        if message.name:
            add(message.name)
        for call in message.tool_calls:
            if call.arguments:
                add(call.arguments)
    if event.request.parameters:
        _collect_json(event.request.parameters, add)
    response = event.response
    if response is not None:
        if response.text:
            add(response.text)
        if response.refusal:
            add(response.refusal)
        for call in response.tool_calls:
            if call.arguments:
                add(call.arguments)
    return out


def _collect_json(value: Any, add: Any) -> None:
    if isinstance(value, str):
        if value:
            add(value)
    elif isinstance(value, dict):
        for item in value.values():
            _collect_json(item, add)
    elif isinstance(value, list):
        for item in value:
            _collect_json(item, add)


def replace_texts(event: CapturedCall, new: Mapping[str, str]) -> CapturedCall:
    """``event`` with every text found in ``new`` replaced; unchanged parts are shared."""
    request = event.request
    messages = [_message(m, new) for m in request.messages]
    parameters = _json(request.parameters, new)
    changed_request = parameters is not request.parameters or any(
        a is not b for a, b in zip(messages, request.messages, strict=True)
    )
    response = event.response
    new_response = _response(response, new) if response is not None else None
    if not changed_request and new_response is response:
        return event
    update: dict[str, Any] = {"response": new_response}
    if changed_request:
        update["request"] = _with(request, {"messages": messages, "parameters": parameters})
    return _with(event, update)


def _calls(calls: list[ToolCall], new: Mapping[str, str]) -> list[ToolCall]:
    if not any(call.arguments in new for call in calls):
        return calls
    return [
        _with(call, {"arguments": new[call.arguments]}) if call.arguments in new else call
        for call in calls
    ]


def _part(part: ContentPart, new: Mapping[str, str]) -> ContentPart:
    update: dict[str, Any] = {}
    if part.text and part.text in new:
        update["text"] = new[part.text]
    if part.refusal and part.refusal in new:
        update["refusal"] = new[part.refusal]
    filename = part.file.get("filename") if part.file is not None else None
    if isinstance(filename, str) and filename in new:
        update["file"] = {**(part.file or {}), "filename": new[filename]}
    return _with(part, update) if update else part


def _message(message: ChatMessage, new: Mapping[str, str]) -> ChatMessage:
    update: dict[str, Any] = {}
    content = message.content
    if isinstance(content, str):
        if content in new:
            update["content"] = new[content]
    elif content:
        parts = [_part(p, new) for p in content]
        if any(a is not b for a, b in zip(parts, content, strict=True)):
            update["content"] = parts
    if message.name and message.name in new:
        update["name"] = new[message.name]
    calls = _calls(message.tool_calls, new)
    if calls is not message.tool_calls:
        update["tool_calls"] = calls
    return _with(message, update) if update else message


def _response(response: ModelResponse, new: Mapping[str, str]) -> ModelResponse:
    update: dict[str, Any] = {}
    for key in ("text", "refusal"):
        value = getattr(response, key)
        if value and value in new:
            update[key] = new[value]
    calls = _calls(response.tool_calls, new)
    if calls is not response.tool_calls:
        update["tool_calls"] = calls
    return _with(response, update) if update else response


def _json(value: Any, new: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return new.get(value, value)
    if isinstance(value, dict):
        copied: dict[str, Any] | None = None
        for key, item in value.items():
            replaced = _json(item, new)
            if replaced is not item:
                copied = copied if copied is not None else dict(value)
                copied[key] = replaced
        return value if copied is None else copied
    if isinstance(value, list):
        listed = [_json(item, new) for item in value]
        return listed if any(a is not b for a, b in zip(listed, value, strict=True)) else value
    return value


def splice_texts_json(raw: bytes, changed: dict[str, tuple[str, int]]) -> bytes | None:
    """``raw`` with each changed text's JSON string replaced, or None when not provably safe.

    ``changed`` maps a text to its redaction and how many times the event carries it.
    A text is looked for as its whole JSON string token (quotes included), encoded by
    pydantic-core exactly as inside the event, so escapes (``\\n``, ``\\"``, ``\\u0000``)
    can neither hide a text nor be cut in half. Three checks make every replaced span
    one of the event's own string tokens, so the result is valid JSON with no text left
    behind: each token occurs exactly as often as the event carries the text (an
    occurrence elsewhere, e.g. as a dict key or the tail of a longer string, adds one),
    no two spans overlap, and afterwards no token is left (a string whose start was
    shadowed by a stray match keeps its bytes and is found). Otherwise: None.
    """
    spans: list[tuple[int, int, bytes]] = []
    tokens: list[bytes] = []
    for text, (new, count) in changed.items():
        token = to_json(text)
        replacement = to_json(new)
        size = len(token)
        at = raw.find(token)
        while at != -1:
            spans.append((at, at + size, replacement))
            count -= 1
            at = raw.find(token, at + size)
        if count:
            return None
        tokens.append(token)
    spans.sort()
    out: list[bytes] = []
    done = 0
    for start, end, replacement in spans:
        if start < done:
            return None
        out.append(raw[done:start])
        out.append(replacement)
        done = end
    out.append(raw[done:])
    spliced = b"".join(out)
    if any(token in spliced for token in tokens):
        return None
    return spliced
