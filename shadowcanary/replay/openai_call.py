"""One call to a model through the official ``openai`` SDK, mapped onto our types.

Works against anything that speaks the OpenAI API (OpenAI, Azure OpenAI, vLLM,
Ollama, a LiteLLM proxy, the simulator). SDK exceptions are translated into the
shadowcanary error tree so retry decisions are made in one place.

Non-streamed calls use the SDK's documented low-level call,
``client.post("/chat/completions", content=..., cast_to=httpx.Response)``: it still
goes through the SDK (auth, base URL, status errors, ``Retry-After``) but skips the
per-call transform of the params through their TypedDicts and the pydantic parse of
the response, which together cost more CPU than the HTTP exchange itself. The
captured request is already plain JSON, so it is sent as orjson bytes and the answer
is read with orjson. The replay worker goes one step further for non-streamed calls
and posts with aiohttp directly (``chat_post``), mapping failures through the same
``status_error``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx2
import openai
import orjson

from shadowcanary.errors import (
    ShadowCanaryError,
    TransientError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from shadowcanary.events import ModelRequest, ModelResponse
from shadowcanary.judge.types import CallOutput
from shadowcanary.replay.backoff import parse_retry_after
from shadowcanary.replay.responses_body import replay_body
from shadowcanary.tap.capture import StreamAssembly, Usage, response_from_completion, usage_of
from shadowcanary.tap.responses_capture import ResponsesStreamAssembly, responses_response

# Parameters of the live call that must not be replayed as they were: the replay
# chooses its own streaming, and never asks for more than one choice.
_DROPPED_PARAMETERS = frozenset(
    {"stream", "stream_options", "n", "user", "model", "messages", "tools"}
)


def request_kwargs(request: ModelRequest, *, stream: bool) -> dict[str, Any]:
    """The ``chat.completions.create`` arguments that reproduce a captured request."""
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        item: dict[str, Any] = {"role": message.role}
        if isinstance(message.content, list):
            item["content"] = [p.model_dump(exclude_none=True) for p in message.content]
        elif message.content is not None:
            item["content"] = message.content
        if message.name:
            item["name"] = message.name
        if message.tool_call_id:
            item["tool_call_id"] = message.tool_call_id
        if message.tool_calls:
            item["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in message.tool_calls
            ]
        messages.append(item)
    kwargs: dict[str, Any] = {
        k: v for k, v in request.parameters.items() if k not in _DROPPED_PARAMETERS
    }
    kwargs["messages"] = messages
    if request.tools:
        kwargs["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    **({"description": t.description} if t.description else {}),
                    "parameters": t.parameters,
                },
            }
            for t in request.tools
        ]
    if stream:
        kwargs["stream"] = True
        kwargs["stream_options"] = {"include_usage": True}
    return kwargs


def translate_error(
    exc: Exception, *, model: str, now: datetime | None = None
) -> ShadowCanaryError:
    """Map an ``openai`` SDK exception onto the error tree (transient vs permanent)."""
    if isinstance(exc, openai.APITimeoutError):
        return UpstreamTimeout(f"{model}: timed out")
    if isinstance(exc, openai.APIConnectionError):
        return UpstreamUnavailable(
            f"{model}: connection failed: {type(exc.__cause__ or exc).__name__}"
        )
    if isinstance(exc, openai.APIStatusError):
        return status_error(
            model,
            exc.status_code,
            exc.response.headers,
            exc.message,
            now=now or datetime.now(UTC),
        )
    return UpstreamUnavailable(f"{model}: {type(exc).__name__}")


def status_error(
    model: str, status: int, headers: Mapping[str, str], message: str, *, now: datetime
) -> ShadowCanaryError:
    """The error for an HTTP error status from ``model`` (429 and 5xx are transient)."""
    if status == 429:
        retry_after = parse_retry_after(headers, now=now)
        return UpstreamRateLimited(f"{model}: rate limited (429)", retry_after_s=retry_after)
    if status >= 500 or status in (408, 409):
        return UpstreamUnavailable(f"{model}: HTTP {status}")
    return UpstreamRejected(
        f"{model}: HTTP {status}: {message[:300]}",
        hint="the candidate rejected a prompt the baseline accepted; see the replay's error",
    )


async def call_model(
    client: openai.AsyncOpenAI,
    *,
    model: str,
    upstream_model: str,
    request: ModelRequest,
    stream: bool,
    cost_per_token: tuple[float, float],
    poster: ChatPost | None = None,
    cached_cost_per_token: float | None = None,
) -> CallOutput:
    """Send ``request`` to ``model`` and return what came back.

    A chat completion is replayed as a chat completion, a Responses call through the
    candidate's Responses API (``responses_body``). A non-streamed call goes through
    ``poster`` when one is given (the replay worker's lean path, see ``chat_post``),
    else through the SDK's low-level ``post``. ``cost_per_token`` is (input, output);
    cached input costs ``cached_cost_per_token`` (default: the input price).

    Raises:
        TransientError: 429, 5xx, timeouts, connection failures (retry later).
        UpstreamRejected: any other 4xx (recorded as a failed replay, not retried).
        NotReplayable: a Responses call that cannot be sent again as it was.
    """
    started = time.perf_counter()
    try:
        if request.api == "responses":
            body = replay_body(request, upstream_model=upstream_model)
            response, usage, first_at = await _responses_call(
                client, model, body, stream=stream, poster=poster
            )
        else:
            response, usage, first_at = await _chat_call(
                client, model, upstream_model, request, stream=stream, poster=poster
            )
    except openai.OpenAIError as exc:
        raise translate_error(exc, model=model) from exc
    latency_ms = (time.perf_counter() - started) * 1000
    ttft_ms = (first_at - started) * 1000 if first_at is not None else None
    cost = None
    if usage.prompt_tokens is not None and usage.completion_tokens is not None:
        cached = min(usage.cached_tokens or 0, usage.prompt_tokens)
        cached_price = cost_per_token[0] if cached_cost_per_token is None else cached_cost_per_token
        cost = (
            (usage.prompt_tokens - cached) * cost_per_token[0]
            + cached * cached_price
            + usage.completion_tokens * cost_per_token[1]
        )
    return CallOutput(
        model=model,
        text=response.text,
        tool_calls=tuple(response.tool_calls),
        finish_reason=response.finish_reason,
        refusal=response.refusal,
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=cost,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
    )


async def _chat_call(
    client: openai.AsyncOpenAI,
    model: str,
    upstream_model: str,
    request: ModelRequest,
    *,
    stream: bool,
    poster: ChatPost | None,
) -> tuple[ModelResponse, Usage, float | None]:
    kwargs = request_kwargs(request, stream=stream)
    if stream:
        # The same reassembly the tap applies to live streams.
        assembly = StreamAssembly()
        async for chunk in await client.chat.completions.create(model=upstream_model, **kwargs):
            assembly.add(chunk, time.perf_counter())
        response = assembly.response()
        if response.finish_reason is None:
            # The connection closed (or the body was no SSE at all) before the
            # model said it was done: a cut-off answer is no evidence. Retry.
            raise _malformed(model, "a stream that ended before any finish_reason")
        return response, assembly.usage, assembly.first_content_at
    body = {"model": upstream_model, **kwargs}
    content = await _post(client, model, "/chat/completions", body, poster)
    completion = _json_object(content, model=model, answer_key="choices")
    return response_from_completion(completion), usage_of(completion), None


async def _responses_call(
    client: openai.AsyncOpenAI,
    model: str,
    body: dict[str, Any],
    *,
    stream: bool,
    poster: ChatPost | None,
) -> tuple[ModelResponse, Usage, float | None]:
    if stream:
        assembly = ResponsesStreamAssembly()
        async for event in await client.responses.create(**body, stream=True):
            assembly.add(event, time.perf_counter())
        if assembly.final is None:
            raise _malformed(model, "a Responses stream that ended before response.completed")
        response, usage = assembly.result()
        return response, usage, assembly.first_content_at
    content = await _post(client, model, "/responses", body, poster)
    payload = _json_object(content, model=model, answer_key="output")
    response, usage = responses_response(payload)
    return response, usage, None


async def _post(
    client: openai.AsyncOpenAI,
    model: str,
    path: str,
    body: dict[str, Any],
    poster: ChatPost | None,
) -> bytes:
    if poster is not None:
        return await poster.post(model, body, path=path)
    # The SDK's default headers already say application/json. The Azure client maps
    # the model onto its deployment path only for json bodies, so it gets one.
    if isinstance(client, openai.AsyncAzureOpenAI):
        raw = await client.post(path, body=body, cast_to=httpx2.Response)
    else:
        raw = await client.post(path, content=orjson.dumps(body), cast_to=httpx2.Response)
    return bytes(raw.content)


class ChatPost(Protocol):
    """What ``call_model`` needs of a non-SDK poster (``chat_post.ChatPoster``)."""

    async def post(
        self, model: str, body: Mapping[str, Any], *, path: str = "/chat/completions"
    ) -> bytes: ...


def _json_object(body: bytes, *, model: str, answer_key: str = "choices") -> dict[str, Any]:
    """The decoded answer; a 200 whose body is not a JSON object is a transient fault."""
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _malformed(model, f"not JSON ({exc})") from exc
    if not isinstance(decoded, dict):
        raise _malformed(model, f"a JSON {type(decoded).__name__}, not an object")
    if not isinstance(decoded.get(answer_key), list) or (
        answer_key == "choices" and not decoded["choices"]
    ):
        # Some proxies answer 200 with an error document: no answer is no evidence.
        raise _malformed(model, f"a JSON object without {answer_key}")
    return decoded


def _malformed(model: str, what: str) -> TransientError:
    return UpstreamUnavailable(
        f"{model}: the answer body is {what}",
        hint="the endpoint answered 200 with a body that is not a chat completion or a "
        "response; check the model's base_url points at an OpenAI-compatible /v1",
    )
