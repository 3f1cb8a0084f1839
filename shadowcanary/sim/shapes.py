"""Response bodies in exactly the shapes OpenAI's API returns (Chat Completions,
Responses, Embeddings, Models, errors), built from a ``SimAnswer``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from shadowcanary.sim.output import SimAnswer

SYSTEM_FINGERPRINT = "fp_simulator"
_PIECE = re.compile(r"\s*\S+")


def dumps(body: Any) -> bytes:
    """Compact UTF-8 JSON. orjson: the encoder is a large share of a request's CPU."""
    try:
        return orjson.dumps(body)
    except TypeError:
        # What orjson refuses but the stdlib writes (integers beyond 64 bits, non-str
        # keys) can only come from a client's own request echoed back.
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _json_str(text: str) -> bytes:
    return orjson.dumps(text)


def error_body(message: str, kind: str, code: str | None = None, param: str | None = None) -> Any:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def split_pieces(text: str, words_per_piece: int) -> list[str]:
    """Split ``text`` into stream deltas of a few words; ``"".join`` gives ``text`` back."""
    words = _PIECE.findall(text)
    if not words:
        return [text] if text else []
    tail = text[sum(len(w) for w in words) :]
    pieces = [
        "".join(words[i : i + words_per_piece]) for i in range(0, len(words), words_per_piece)
    ]
    pieces[-1] += tail
    return pieces


@dataclass(frozen=True, slots=True)
class Spend:
    """Tokens a call spends beyond its answer's text: reasoning (billed as output) and
    input served from the prompt cache (a share of the input tokens)."""

    reasoning_tokens: int = 0
    cached_tokens: int = 0


NO_SPEND = Spend()


def _usage(answer: SimAnswer, spend: Spend = NO_SPEND) -> dict[str, Any]:
    completion = answer.completion_tokens + spend.reasoning_tokens
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": answer.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": spend.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": spend.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(
    rid: str, created: int, model: str, answer: SimAnswer, spend: Spend = NO_SPEND
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": answer.content,
        "refusal": answer.refusal,
        "annotations": [],
    }
    if answer.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in answer.tool_calls
        ]
    return {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": answer.finish_reason,
            }
        ],
        "usage": _usage(answer, spend),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


class ChatChunks:
    """SSE ``data:`` lines of one streamed chat completion, in OpenAI's order."""

    def __init__(
        self,
        rid: str,
        created: int,
        model: str,
        answer: SimAnswer,
        *,
        include_usage: bool,
        spend: Spend = NO_SPEND,
    ) -> None:
        self._head = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        self._answer = answer
        self._spend = spend
        self._include_usage = include_usage
        self._prefix = b"data: " + dumps(self._head)[:-1] + b',"choices":[{"index":0,"delta":'
        self._suffix = b"}]" + (b',"usage":null' if include_usage else b"") + b"}\n\n"

    def _chunk(self, delta: dict[str, Any] | bytes, finish: str | None = None) -> bytes:
        # Only the delta is serialised per chunk; the fixed parts are bytes already.
        body = delta if isinstance(delta, bytes) else dumps(delta)
        reason = b"null" if finish is None else dumps(finish)
        return b"".join(
            (self._prefix, body, b',"logprobs":null,"finish_reason":', reason, self._suffix)
        )

    def _text_chunks(self, key: bytes, text: str, words_per_piece: int) -> list[bytes]:
        # json.dumps of a bare str takes the C fast path; a dict per delta does not.
        return [
            self._chunk(b'{"' + key + b'":' + _json_str(piece) + b"}")
            for piece in split_pieces(text, words_per_piece)
        ]

    def deltas(self, words_per_piece: int) -> list[bytes]:
        """Every chunk up to and including the one with ``finish_reason``."""
        a = self._answer
        out = [self._chunk({"role": "assistant", "content": "", "refusal": None})]
        if a.content:
            out += self._text_chunks(b"content", a.content, words_per_piece)
        elif a.refusal:
            out += self._text_chunks(b"refusal", a.refusal, words_per_piece)
        for index, call in enumerate(a.tool_calls):
            first = {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            out.append(self._chunk({"tool_calls": [{"index": index, **first}]}))
            for piece in split_pieces(call.arguments, words_per_piece):
                out.append(
                    self._chunk(
                        {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                    )
                )
        out.append(self._chunk({}, a.finish_reason))
        return out

    def closing(self) -> list[bytes]:
        """The usage chunk (when asked for) and ``[DONE]``."""
        out = []
        if self._include_usage:
            body = {**self._head, "choices": [], "usage": _usage(self._answer, self._spend)}
            out.append(b"data: " + dumps(body) + b"\n\n")
        out.append(b"data: [DONE]\n\n")
        return out


def _response_usage(answer: SimAnswer, spend: Spend) -> dict[str, Any]:
    output = answer.completion_tokens + spend.reasoning_tokens
    return {
        "input_tokens": answer.prompt_tokens,
        "input_tokens_details": {"cached_tokens": spend.cached_tokens},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": spend.reasoning_tokens},
        "total_tokens": answer.prompt_tokens + output,
    }


def _output_items(rid: str, answer: SimAnswer, status: str, spend: Spend) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if spend.reasoning_tokens:
        # What OpenAI returns for a reasoning model without a summary asked for.
        items.append({"type": "reasoning", "id": f"rs_{rid}", "summary": []})
    if answer.content is not None or answer.refusal is not None:
        part: dict[str, Any] = (
            {"type": "refusal", "refusal": answer.refusal}
            if answer.refusal is not None
            else {"type": "output_text", "text": answer.content, "annotations": [], "logprobs": []}
        )
        items.append(
            {
                "type": "message",
                "id": f"msg_{rid}",
                "status": status,
                "role": "assistant",
                "content": [part],
            }
        )
    for i, call in enumerate(answer.tool_calls):
        items.append(
            {
                "type": "function_call",
                "id": f"fc_{rid}_{i}",
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments,
                "status": status,
            }
        )
    return items


def response_object(
    rid: str,
    created: int,
    model: str,
    answer: SimAnswer | None,
    request: dict[str, Any],
    spend: Spend = NO_SPEND,
) -> dict[str, Any]:
    """A Responses API object; ``answer=None`` gives the in-progress shell for streaming."""
    reasoning = request.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    incomplete = answer is not None and answer.finish_reason == "length"
    status = "in_progress" if answer is None else ("incomplete" if incomplete else "completed")
    return {
        "id": f"resp_{rid}",
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model,
        "output": [] if answer is None else _output_items(rid, answer, status, spend),
        "parallel_tool_calls": True,
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": {"effort": effort, "summary": None},
        "store": request.get("store", True) is not False,
        "temperature": 1.0,
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice") or "auto",
        "tools": request.get("tools") or [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None if answer is None else _response_usage(answer, spend),
        "metadata": {},
    }


def response_events(
    rid: str,
    created: int,
    model: str,
    answer: SimAnswer,
    request: dict[str, Any],
    words: int,
    spend: Spend = NO_SPEND,
) -> Iterator[tuple[bool, bytes]]:
    """``(is_delta, sse_bytes)`` for a streamed Responses call, in OpenAI's event order."""
    seq = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> bytes:
        body = {"type": kind, "sequence_number": next(seq), **fields}
        return b"event: " + kind.encode() + b"\ndata: " + dumps(body) + b"\n\n"

    shell = response_object(rid, created, model, None, request)
    yield False, event("response.created", response=shell)
    yield False, event("response.in_progress", response=shell)
    final = response_object(rid, created, model, answer, request, spend)
    for index, item in enumerate(final["output"]):
        yield False, event("response.output_item.added", output_index=index, item=_opened(item))
        if item["type"] == "reasoning":
            pass  # no summary asked for: the item opens and closes
        elif item["type"] == "message":
            part = item["content"][0]
            text_key = "refusal" if part["type"] == "refusal" else "text"
            empty = {**part, text_key: ""}
            ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
            yield False, event("response.content_part.added", **ids, part=empty)
            prefix = "response.refusal" if text_key == "refusal" else "response.output_text"
            extra: dict[str, Any] = {} if text_key == "refusal" else {"logprobs": []}
            for piece in split_pieces(part[text_key], words):
                yield True, event(f"{prefix}.delta", **ids, delta=piece, **extra)
            yield False, event(f"{prefix}.done", **ids, **{text_key: part[text_key]}, **extra)
            yield False, event("response.content_part.done", **ids, part=part)
        else:
            ids = {"item_id": item["id"], "output_index": index}
            for piece in split_pieces(item["arguments"], words):
                yield True, event("response.function_call_arguments.delta", **ids, delta=piece)
            yield (
                False,
                event(
                    "response.function_call_arguments.done",
                    **ids,
                    name=item["name"],
                    arguments=item["arguments"],
                ),
            )
        yield False, event("response.output_item.done", output_index=index, item=item)
    closing = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
    yield False, event(closing, response=final)


def _opened(item: dict[str, Any]) -> dict[str, Any]:
    if item["type"] == "reasoning":
        return item
    if item["type"] == "message":
        return {**item, "status": "in_progress", "content": []}
    return {**item, "status": "in_progress", "arguments": ""}


def embeddings_body(model: str, vectors: list[Any], prompt_tokens: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


_MODERATION_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)  # fmt: skip


def moderation_body(rid: str, model: str, inputs: int) -> dict[str, Any]:
    """A moderation result flagging nothing, for each input (OpenAI's shape)."""
    result = {
        "flagged": False,
        "categories": dict.fromkeys(_MODERATION_CATEGORIES, False),
        "category_scores": dict.fromkeys(_MODERATION_CATEGORIES, 0.0),
        "category_applied_input_types": {c: ["text"] for c in _MODERATION_CATEGORIES},
    }
    return {"id": f"modr-{rid}", "model": model, "results": [result] * inputs}


def model_entry(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "shadowcanary-simulator"}
