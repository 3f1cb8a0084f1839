"""The Responses API body a replay sends for a captured Responses call, or why there is none.

A capture keeps the body as the service sent it (``ModelRequest.parameters`` with
``api="responses"``). The replay sends the same body to the candidate, with these
differences, each for a reason:

- ``store`` is false: the shadow path leaves nothing behind at the provider.
- ``stream``/``background`` are the replay's own choice (streamed only to measure TTFT).
- A call continued with ``previous_response_id`` sent only its new turns. The replay
  sends the whole conversation instead (the earlier turns the capturing process saw,
  ``ModelRequest.context_messages``, as input items, then the call's own input): the
  candidate has no stored response of the baseline's to continue. Without those turns
  the call is not replayable, and says so.
- A call offering built-in tools the provider runs itself (web search, code
  interpreter, MCP servers, ...) is not replayed: the shadow path never executes tools.
- Nor is one whose input refers to items stored at the provider (``item_reference``)
  or continues a stored ``conversation``: the candidate has neither.
"""

from __future__ import annotations

from typing import Any

from shadowcanary.errors import NotReplayable
from shadowcanary.events import ChatMessage, ModelRequest

# Tools the caller runs (the model only asks for them): safe to offer in a replay.
_CLIENT_TOOLS = frozenset({"function", "custom"})
_REPLAY_CHOOSES = ("stream", "stream_options", "background", "previous_response_id")


def _item_content(message: ChatMessage) -> Any:
    if isinstance(message.content, list):
        parts: list[dict[str, Any]] = []
        for part in message.content:
            if part.type == "text":
                kind = "output_text" if message.role == "assistant" else "input_text"
                parts.append({"type": kind, "text": part.text or ""})
            elif part.type == "refusal":
                parts.append({"type": "refusal", "refusal": part.refusal or ""})
            elif part.type == "image_url" and part.image_url:
                parts.append({"type": "input_image", "image_url": part.image_url.get("url")})
        return parts
    return message.content or ""


def context_items(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Earlier turns (chat form) as Responses input items."""
    items: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.tool_call_id or "",
                    "output": message.text(),
                }
            )
            continue
        if message.content is not None and (message.text() or message.role != "assistant"):
            items.append({"role": message.role, "content": _item_content(message)})
        items.extend(
            {
                "type": "function_call",
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments,
            }
            for call in message.tool_calls
        )
    return items


def _as_items(raw: Any) -> list[Any]:
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    return list(raw) if isinstance(raw, list) else []


def replay_body(request: ModelRequest, *, upstream_model: str) -> dict[str, Any]:
    """The body to POST to the candidate's ``/responses``.

    Raises:
        NotReplayable: the call cannot be replayed as it was; the message says why.
    """
    sent = request.parameters
    tools = sent.get("tools")
    built_in = sorted(
        str(tool.get("type"))
        for tool in (tools if isinstance(tools, list) else ())
        if isinstance(tool, dict) and tool.get("type", "function") not in _CLIENT_TOOLS
    )
    if built_in:
        raise NotReplayable(
            f"the call offers built-in tools the provider runs itself ({', '.join(built_in)}); "
            "the shadow path never executes tools",
            hint="only calls with function or custom tools (run by the caller) are replayed",
        )
    if sent.get("conversation") is not None:
        raise NotReplayable(
            "the call continues a stored conversation (conversation=...), whose earlier "
            "turns are only at the provider",
            hint="send the turns as input items, or use previous_response_id through the tap",
        )
    raw_input = sent.get("input")
    if isinstance(raw_input, list) and any(
        isinstance(item, dict) and item.get("type") == "item_reference" for item in raw_input
    ):
        raise NotReplayable(
            "the call's input refers to items stored at the provider (item_reference), "
            "which the candidate does not have",
            hint="send the items themselves as input, not references to them",
        )
    body = {key: value for key, value in sent.items() if key not in _REPLAY_CHOOSES}
    previous = sent.get("previous_response_id")
    if previous is not None:
        if request.context_messages == 0:
            raise NotReplayable(
                f"the call continues response {str(previous)[:80]!r} (previous_response_id), "
                "whose earlier turns the capturing process had not seen (another process or "
                "replica served them, or they were evicted)",
                hint="route a conversation's calls through one tapped client or gateway "
                "process, or send the turns as input items",
            )
        context = context_items(request.messages[: request.context_messages])
        body["input"] = context + _as_items(sent.get("input"))
    body["model"] = upstream_model
    body["store"] = False
    return body
