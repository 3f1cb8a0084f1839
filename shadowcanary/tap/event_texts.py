"""Every text a captured call can carry: list them, and put replacements back.

Redaction must reach every place a prompt or an answer can put user text: message
contents (plain and text parts), participant names, file names, tool-call arguments,
tool results (tool messages), response text and refusal, and string request
parameters at any depth. ``collect_texts`` lists exactly those; ``replace_texts``
rebuilds only the parts whose text changed, so an event without PII costs no copy.
The tap's publisher does not copy models at all: ``tap.wire`` writes the event as
plain dicts and points at the same texts there.

Both are written out field by field rather than as one generic visitor, like
``tap.wire``: on hot paths a function call per node costs more than the redaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

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
    texts, _, _ = collect_batch_texts([event], strict=True)
    return texts


def collect_batch_texts(
    events: Sequence[CapturedCall], *, strict: bool = False
) -> tuple[list[str], list[CapturedCall], bool]:
    """The texts of all ``events`` in one list, the events they were read from, and
    whether any of those texts is a request parameter.

    An event whose texts cannot be read (a bug, or a model built without validation)
    is left out of both, unless ``strict``, where the error propagates. One loop for
    the whole batch: on the tap's thread a call per event is a measurable cost.
    """
    out: list[str] = []
    add = out.append
    readable: list[CapturedCall] = []
    in_parameters = False
    for event in events:
        mark = len(out)
        try:
            request = event.request
            for message in request.messages:
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
            parameters = request.parameters
            if parameters:
                before = len(out)
                _collect_json(parameters.values(), add)
                in_parameters = in_parameters or len(out) > before
            response = event.response
            if response is not None:
                if response.text:
                    add(response.text)
                if response.refusal:
                    add(response.refusal)
                for call in response.tool_calls:
                    if call.arguments:
                        add(call.arguments)
        except Exception:
            if strict:
                raise
            del out[mark:]
            continue
        readable.append(event)
    return out, readable, in_parameters


# Numbers, booleans and None: most request parameters, skipped without a call.
_SCALARS = frozenset((int, float, bool, type(None)))


def _collect_json(values: Iterable[Any], add: Any) -> None:
    for item in values:
        if item.__class__ in _SCALARS:
            continue
        if isinstance(item, str):
            if item:
                add(item)
        elif isinstance(item, dict):
            _collect_json(item.values(), add)
        elif isinstance(item, list):
            _collect_json(item, add)


def replace_texts(event: CapturedCall, new: Mapping[str, str]) -> CapturedCall:
    """``event`` with every text found in ``new`` replaced; unchanged parts are shared."""
    request = event.request
    messages = [_message(m, new) for m in request.messages]
    parameters = replace_json_texts(request.parameters, new)
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


def replace_json_texts(value: Any, new: Mapping[str, str]) -> Any:
    """A JSON value with every string found in ``new`` replaced; unchanged parts shared."""
    if isinstance(value, str):
        return new.get(value, value)
    if isinstance(value, dict):
        copied: dict[str, Any] | None = None
        for key, item in value.items():
            if item.__class__ in _SCALARS:
                continue
            replaced = replace_json_texts(item, new)
            if replaced is not item:
                copied = copied if copied is not None else dict(value)
                copied[key] = replaced
        return value if copied is None else copied
    if isinstance(value, list):
        listed = [replace_json_texts(item, new) for item in value]
        return listed if any(a is not b for a, b in zip(listed, value, strict=True)) else value
    return value
