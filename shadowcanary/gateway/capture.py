"""Raw OpenAI JSON (what the gateway sees on the wire) to the pieces of a ``CapturedCall``.

The tap's helpers read dicts as well as SDK objects, so the gateway reuses them:
chat completions (``request_from_kwargs``, ``response_from_completion``,
``StreamAssembly``) and the Responses API (``tap.responses_capture``: the body kept as
sent, so a worker replays it against the candidate's Responses API).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from shadowcanary.events import ModelRequest, ModelResponse
from shadowcanary.tap.capture import (
    StreamAssembly,
    Usage,
    request_from_kwargs,
    response_from_completion,
    usage_of,
)
from shadowcanary.tap.responses_capture import (
    ResponsesStreamAssembly,
    responses_request,
    responses_response,
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


def chat_request(body: Mapping[str, Any]) -> ModelRequest:
    """The request of a ``/v1/chat/completions`` body (``stream`` and ``user`` not recorded)."""
    return request_from_kwargs(body)


def chat_response(payload: Mapping[str, Any]) -> tuple[ModelResponse, Usage]:
    return response_from_completion(payload), usage_of(payload)


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
