"""The JSON of captured calls with their texts redacted, written by orjson from the models.

The publisher needs each event of a batch as JSON with its texts redacted. Copying
pydantic models to redact them and having pydantic-core write their JSON cost more
than the redaction itself, and building plain-dict copies in Python allocates so
many containers that the garbage collector becomes the bottleneck. So orjson writes
the models directly: its ``default`` hook hands it each model's own field dict, and
only a model holding a text that redaction changed gets a copy with the new text
(``changed`` maps each original text of the batch to its redaction). The texts
covered are exactly those ``event_texts.collect_texts`` lists.

The result is the JSON of ``model_dump(mode="json")`` of the redacted event: the
same fields, timestamps in UTC with ``Z``, enums as their values, so readers validate
it with ``parse_event`` as before (the event was validated when it was built, and
is validated again where it is read).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from shadowcanary.events import (
    CapturedCall,
    ChatMessage,
    ContentPart,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolDefinition,
)
from shadowcanary.tap.event_texts import replace_json_texts, replace_texts

_OPTIONS = orjson.OPT_UTC_Z
Replacer = Callable[[dict[str, Any], Mapping[str, str]], dict[str, Any]]


def _message(fields: dict[str, Any], changed: Mapping[str, str]) -> dict[str, Any]:
    content, name = fields["content"], fields["name"]
    if (isinstance(content, str) and content in changed) or (name and name in changed):
        fields = dict(fields)
        if isinstance(content, str):
            fields["content"] = changed.get(content, content)
        if name:
            fields["name"] = changed.get(name, name)
    return fields


def _part(fields: dict[str, Any], changed: Mapping[str, str]) -> dict[str, Any]:
    text, refusal, file = fields["text"], fields["refusal"], fields["file"]
    filename = file.get("filename") if file is not None else None
    if (
        (text and text in changed)
        or (refusal and refusal in changed)
        or (isinstance(filename, str) and filename in changed)
    ):
        fields = dict(fields)
        if text:
            fields["text"] = changed.get(text, text)
        if refusal:
            fields["refusal"] = changed.get(refusal, refusal)
        if isinstance(filename, str) and filename in changed:
            fields["file"] = {**file, "filename": changed[filename]}
    return fields


def _call(fields: dict[str, Any], changed: Mapping[str, str]) -> dict[str, Any]:
    arguments = fields["arguments"]
    if arguments and arguments in changed:
        return {**fields, "arguments": changed[arguments]}
    return fields


def _response(fields: dict[str, Any], changed: Mapping[str, str]) -> dict[str, Any]:
    text, refusal = fields["text"], fields["refusal"]
    if (text and text in changed) or (refusal and refusal in changed):
        fields = dict(fields)
        if text:
            fields["text"] = changed.get(text, text)
        if refusal:
            fields["refusal"] = changed.get(refusal, refusal)
    return fields


def _request(fields: dict[str, Any], changed: Mapping[str, str]) -> dict[str, Any]:
    parameters = fields["parameters"]
    if parameters:
        replaced = replace_json_texts(parameters, changed)
        if replaced is not parameters:
            return {**fields, "parameters": replaced}
    return fields


_REPLACERS: dict[type, Replacer] = {
    ChatMessage: _message,
    ContentPart: _part,
    ToolCall: _call,
    ModelResponse: _response,
    ModelRequest: _request,
}


class EventsWriter:
    """Writes events as JSON with each text found in ``changed`` replaced by its redaction."""

    __slots__ = ("_changed", "_hook")

    def __init__(self, changed: Mapping[str, str], *, parameters: bool = True) -> None:
        """``parameters``: whether request parameters may hold texts (else not looked at)."""
        self._changed = changed
        self._hook = _replacing_hook(changed, parameters=parameters) if changed else _plain_hook

    def write_many(self, events: Sequence[CapturedCall]) -> bytes:
        """The JSON array of ``events``: one buffer for many events, several times cheaper
        than one bytes object per event (allocation and cache misses, not the encoding,
        dominated). Raises ``orjson.JSONEncodeError`` if one of them cannot be written."""
        return orjson.dumps(events, default=self._hook, option=_OPTIONS)

    def write_one(self, event: CapturedCall) -> bytes:
        """The JSON of one event; raises if it cannot be written (e.g. a lone surrogate)."""
        try:
            return orjson.dumps(event, default=self._hook, option=_OPTIONS)
        except orjson.JSONEncodeError:
            # Integers beyond 64 bits in free-form parameters are valid JSON that orjson
            # does not write: rare, so the model copy and pydantic-core are fine here.
            changed = self._changed
            redacted = replace_texts(event, changed) if changed else event
            return redacted.__pydantic_serializer__.to_json(redacted)


def _plain_hook(model: Any) -> Any:
    return model.__dict__  # only our pydantic models reach orjson's hook


def _replacing_hook(changed: Mapping[str, str], *, parameters: bool) -> Callable[[Any], Any]:
    # One hook call per model is most of the cost of writing an event: the common
    # cases are tested inline rather than dispatched to a function.
    message_type, response_type, request_type = ChatMessage, ModelResponse, ModelRequest
    replacers = _REPLACERS
    plain_types = (CapturedCall, ToolDefinition)  # no text of their own to replace

    def replacing(model: Any) -> Any:
        fields: dict[str, Any] = model.__dict__
        cls = model.__class__
        if cls is message_type:
            if not fields["name"]:
                content = fields["content"]
                if isinstance(content, str) and content in changed:
                    return {**fields, "content": changed[content]}
                return fields  # parts and tool calls are models: their own hook calls
        elif cls is request_type:
            if not parameters or not fields["parameters"]:
                return fields
        elif cls is response_type:
            text = fields["text"]
            if not (text and text in changed) and not fields["refusal"]:
                return fields
        elif cls in plain_types:
            return fields
        replacer = replacers.get(cls) or _subclass_replacer(cls)
        return replacer(fields, changed) if replacer is not None else fields

    return replacing


def _subclass_replacer(cls: type) -> Replacer | None:
    """The replacer of a subclass of one of our models (their texts are redacted too)."""
    for base, replacer in _REPLACERS.items():
        if issubclass(cls, base):
            return replacer
    return None
