"""The simulator's Starlette app: the OpenAI API surface plus /healthz and /admin.

Per request the work is: parse, look up the profile, two RNG draws, a cached pure
answer, one ``asyncio.sleep`` (or a few while streaming). No per-request logging.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from shadowcanary.sim import shapes
from shadowcanary.sim.admin import admin_routes
from shadowcanary.sim.embeddings import embed, encode_base64
from shadowcanary.sim.json_body import parse_json_body
from shadowcanary.sim.output import SimAnswer
from shadowcanary.sim.profiles import ModelProfile, ProfileSet, describe_validation_error
from shadowcanary.sim.prompt import REASONING_TOKENS, SimPrompt, count_tokens, reasoning_tokens
from shadowcanary.sim.reject import JSON_MEDIA, Reject, endpoint
from shadowcanary.sim.requests import (
    ChatRequest,
    EmbeddingsRequest,
    RequestProblem,
    ResponsesRequest,
    answer_turns,
)
from shadowcanary.sim.state import (
    DEFAULT_MAX_BODY_BYTES,
    UNKNOWN_MODEL,
    Fault,
    SimState,
)
from shadowcanary.sim.streaming import EventStream, Timing, paced

_Body = TypeVar("_Body", bound=BaseModel)
# A body over the limit is still read (and dropped) up to this size, so the client
# sees the 413 instead of a reset connection while it is still sending.
_DRAIN_FACTOR = 8


# Azure OpenAI's two dialects of the same operations (see ``_HotPaths``): classic
# deployments (``api-key`` header, deployment in the path, ``api-version`` query) and
# the v1 API (OpenAI's paths under /openai/v1, model in the body).
_AZURE_CLASSIC = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|embeddings)$")
_AZURE_CLASSIC_RESPONSES = "/openai/responses"
_AZURE_V1 = "/openai/v1/"


@dataclass(frozen=True, slots=True)
class _AzureCall:
    deployment: str | None  # classic: the deployment named in the path (the model asked for)
    classic: bool


def _azure_checks(request: Request, azure: _AzureCall) -> None:
    if not azure.classic:
        return
    if not request.query_params.get("api-version"):
        raise Reject(
            404,
            "Resource not found: Azure OpenAI deployment paths need the api-version query "
            "parameter (e.g. ?api-version=2024-10-21).",
            code="404",
        )
    if not request.headers.get("api-key", "").strip():
        raise Reject(
            401,
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
            "to provide a valid key in the 'api-key' header (this is the shadowcanary "
            "simulator speaking Azure OpenAI: any key works).",
            code="401",
        )


def _require_api_key(request: Request) -> None:
    azure: _AzureCall | None = request.scope.get("shadowcanary.azure")
    if azure is not None:
        _azure_checks(request, azure)
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return
    if request.headers.get("api-key", "").strip():  # Azure-style clients
        return
    raise Reject(
        401,
        "You didn't provide an API key. Send 'Authorization: Bearer <any non-empty key>' "
        "(this is the shadowcanary simulator: any key works).",
        code="invalid_api_key",
    )


async def _read_json(request: Request, sim: SimState) -> dict[str, Any]:
    limit = sim.max_body_bytes
    declared = request.headers.get("content-length")
    too_large = declared is not None and declared.isdigit() and int(declared) > limit
    chunks: list[bytes] = []
    size = 0
    if not (too_large and int(declared or 0) > limit * _DRAIN_FACTOR):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                too_large = True
                if size > limit * _DRAIN_FACTOR:
                    break
                continue
            chunks.append(chunk)
    if too_large:
        raise Reject(
            413,
            f"Request body is larger than the simulator's limit of {limit} bytes; "
            "send a smaller body or start the simulator with a higher limit.",
            code="request_too_large",
        )
    body = parse_json_body(b"".join(chunks))
    if not isinstance(body, dict):
        raise Reject(400, f"The request body must be a JSON object, not {type(body).__name__}.")
    azure: _AzureCall | None = request.scope.get("shadowcanary.azure")
    if azure is not None and azure.deployment is not None:
        body["model"] = azure.deployment  # Azure serves the deployment, whatever the body says
    return body


def _validated(kind: type[_Body], body: dict[str, Any], sim: SimState) -> _Body:
    try:
        return kind.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]["loc"]
        model = body.get("model")
        raise Reject(
            400,
            f"Invalid request: {describe_validation_error(exc)}",
            param=".".join(str(p) for p in first) or None,
            model=model if isinstance(model, str) and model in sim.profiles else UNKNOWN_MODEL,
        ) from None


def _profile(sim: SimState, model: str) -> ModelProfile:
    profile = sim.profiles.get(model)
    if profile is None:
        known = sim.profiles.names()
        raise Reject(
            404,
            f"The model `{model}` does not exist or you do not have access to it. "
            f"Models known to this simulator: {', '.join(known)}.",
            code="model_not_found",
            param="model",
            model=UNKNOWN_MODEL,
            extra={"known_models": known},
        )
    return profile


def _to_prompt(
    request_model: ChatRequest | ResponsesRequest, history: tuple[tuple[str, str], ...]
) -> SimPrompt:
    try:
        if isinstance(request_model, ResponsesRequest):
            return request_model.to_prompt(history)
        return request_model.to_prompt()
    except RequestProblem as exc:
        raise Reject(400, exc.message, param=exc.param, model=request_model.model) from None


def _history(sim: SimState, req: ChatRequest | ResponsesRequest) -> tuple[tuple[str, str], ...]:
    """The stored turns a Responses call continues (``previous_response_id``)."""
    if not isinstance(req, ResponsesRequest) or req.previous_response_id is None:
        return ()
    turns = sim.stored_conversation(req.previous_response_id)
    if turns is None:
        raise Reject(
            400,
            f"Previous response with id '{req.previous_response_id}' not found.",
            code="previous_response_not_found",
            param="previous_response_id",
            model=req.model,
        )
    return turns


def _spend(
    req: ChatRequest | ResponsesRequest,
    profile: ModelProfile,
    history: tuple[tuple[str, str], ...],
) -> shapes.Spend:
    effort = req.reasoning_effort
    if effort is not None and effort not in REASONING_TOKENS:
        param = "reasoning.effort" if isinstance(req, ResponsesRequest) else "reasoning_effort"
        raise Reject(
            400,
            f"Invalid value for {param}: {effort!r}; supported values are "
            + ", ".join(repr(e) for e in REASONING_TOKENS)
            + ".",
            param=param,
            model=req.model,
        )
    # The turns behind previous_response_id are a prefix the provider has seen: served
    # from its prompt cache, as OpenAI reports them (input_tokens_details.cached_tokens).
    cached = SimPrompt(messages=history).prompt_tokens() if history else 0
    return shapes.Spend(reasoning_tokens(effort, profile.reasoning_scale), cached)


async def _apply_fault(sim: SimState, model: str, profile: ModelProfile, timing: Timing) -> None:
    fault = sim.draw_fault(profile)
    if fault == Fault.RATE_LIMITED:
        wait = profile.retry_after_s
        raise Reject(
            429,
            f"Rate limit reached for {model} (simulated). Please try again in {wait:g}s.",
            "requests",
            code="rate_limit_exceeded",
            model=model,
            headers={
                "retry-after": str(math.ceil(wait)),
                "retry-after-ms": str(round(wait * 1000)),
            },
        )
    if fault == Fault.SERVER_ERROR:
        await asyncio.sleep(timing.ttft_s)
        raise Reject(
            500,
            "The server had an error while processing your request (simulated). Sorry about that!",
            "server_error",
            model=model,
        )


def _headers(rid: str, timing: Timing) -> dict[str, str]:
    return {
        "x-request-id": f"req_{rid}",
        "openai-processing-ms": str(round(timing.latency_s * 1000)),
    }


_Generating = TypeVar("_Generating", ChatRequest, ResponsesRequest)


@dataclass(frozen=True, slots=True)
class _Generation(Generic[_Generating]):
    """An accepted text-generation request and the simulated answer to it."""

    req: _Generating
    body: dict[str, Any]
    profile: ModelProfile
    timing: Timing
    answer: SimAnswer
    rid: str
    created: int
    spend: shapes.Spend
    history: tuple[tuple[str, str], ...]


async def _generate(
    request: Request, sim: SimState, kind: type[_Generating]
) -> _Generation[_Generating]:
    """Authenticate, validate, draw timing and faults, and answer (chat and responses)."""
    _require_api_key(request)
    body = await _read_json(request, sim)
    req = _validated(kind, body, sim)
    profile = _profile(sim, req.model)
    history = _history(sim, req)
    prompt = _to_prompt(req, history)
    spend = _spend(req, profile, history)
    timing = sim.draw_timing(profile)
    await _apply_fault(sim, req.model, profile, timing)
    answer = sim.answer(req.model, prompt)
    sim.record(req.model, 200)
    return _Generation(
        req, body, profile, timing, answer, sim.new_id(), int(time.time()), spend, history
    )


async def _chat_completions(request: Request, sim: SimState) -> Response:
    gen = await _generate(request, sim, ChatRequest)
    req, profile, timing, answer, rid, created = (
        gen.req,
        gen.profile,
        gen.timing,
        gen.answer,
        gen.rid,
        gen.created,
    )
    if not req.stream:
        await asyncio.sleep(timing.latency_s)
        payload = shapes.chat_completion(f"chatcmpl-{rid}", created, req.model, answer, gen.spend)
        return Response(shapes.dumps(payload), headers=_headers(rid, timing), media_type=JSON_MEDIA)
    chunks = shapes.ChatChunks(
        f"chatcmpl-{rid}",
        created,
        req.model,
        answer,
        include_usage=req.include_usage,
        spend=gen.spend,
    )
    deltas = chunks.deltas(profile.stream_words_per_chunk)
    # The role chunk travels with the first content delta, both at TTFT.
    frames = [(False, deltas[0])] + [(True, d) for d in deltas[1:-1]]
    frames += [(False, deltas[-1])] + [(False, c) for c in chunks.closing()]
    return EventStream(paced(frames, 0, timing), _headers(rid, timing))


async def _responses(request: Request, sim: SimState) -> Response:
    gen = await _generate(request, sim, ResponsesRequest)
    req, body, profile, timing, answer, rid, created = (
        gen.req,
        gen.body,
        gen.profile,
        gen.timing,
        gen.answer,
        gen.rid,
        gen.created,
    )
    if req.store:
        calls = [(c.name, c.arguments) for c in answer.tool_calls]
        text = answer.content if answer.content is not None else answer.refusal
        turns = gen.history + req.conversation() + answer_turns(text, calls)
        sim.store_response(f"resp_{rid}", turns)
    if not req.stream:
        await asyncio.sleep(timing.latency_s)
        payload = shapes.response_object(rid, created, req.model, answer, body, gen.spend)
        return Response(shapes.dumps(payload), headers=_headers(rid, timing), media_type=JSON_MEDIA)
    events = list(
        shapes.response_events(
            rid, created, req.model, answer, body, profile.stream_words_per_chunk, gen.spend
        )
    )
    return EventStream(paced(events, 2, timing), _headers(rid, timing))


async def _embeddings(request: Request, sim: SimState) -> Response:
    _require_api_key(request)
    body = await _read_json(request, sim)
    req = _validated(EmbeddingsRequest, body, sim)
    profile = _profile(sim, req.model)
    try:
        texts = req.texts()
    except RequestProblem as exc:
        raise Reject(400, exc.message, param=exc.param, model=req.model) from None
    timing = sim.draw_timing(profile)
    await _apply_fault(sim, req.model, profile, timing)
    dims = req.dimensions or profile.embedding_dimensions
    vectors: list[Any] = [embed(t, dims) for t in texts]
    if req.encoding_format == "base64":
        vectors = [encode_base64(v) for v in vectors]
    sim.record(req.model, 200)
    await asyncio.sleep(timing.latency_s)
    tokens = sum(count_tokens(t) for t in texts)
    payload = shapes.embeddings_body(req.model, vectors, tokens)
    return Response(
        shapes.dumps(payload), headers=_headers(sim.new_id(), timing), media_type=JSON_MEDIA
    )


async def _moderations(request: Request, sim: SimState) -> Response:
    """Moderations (no profile: the simulator flags nothing), so proxies can be tested."""
    _require_api_key(request)
    body = await _read_json(request, sim)
    raw = body.get("input")
    if not isinstance(raw, str | list) or not raw:
        raise Reject(400, "'input' must be a string or a non-empty array.", param="input")
    model = body.get("model")
    model = model if isinstance(model, str) else "omni-moderation-latest"
    payload = shapes.moderation_body(sim.new_id(), model, 1 if isinstance(raw, str) else len(raw))
    return Response(shapes.dumps(payload), media_type=JSON_MEDIA)


async def _models(request: Request, sim: SimState) -> Response:
    _require_api_key(request)
    created = int(sim.started_at)
    data = [shapes.model_entry(n, created) for n in sim.profiles.names()]
    return Response(shapes.dumps({"object": "list", "data": data}), media_type=JSON_MEDIA)


async def _model(request: Request, sim: SimState) -> Response:
    _require_api_key(request)
    name = request.path_params["model"]
    _profile(sim, name)
    entry = shapes.model_entry(name, int(sim.started_at))
    return Response(shapes.dumps(entry), media_type=JSON_MEDIA)


async def _healthz(request: Request, sim: SimState) -> Response:
    body = {"status": "ok", "simulator": True, "models": sim.profiles.names()}
    return Response(shapes.dumps(body), media_type=JSON_MEDIA)


async def _not_found(request: Request, exc: Exception) -> Response:
    body = shapes.error_body(
        f"Unknown path {request.method} {request.url.path} (shadowcanary simulator: "
        "/v1/chat/completions, /v1/responses, /v1/embeddings, /v1/moderations, /v1/models, "
        "/healthz, /admin/...)",
        "invalid_request_error",
    )
    status = getattr(exc, "status_code", 404)
    return Response(shapes.dumps(body), status, media_type=JSON_MEDIA)


class _HotPaths:
    """ASGI front of the Starlette app: the generation endpoints skip its middleware stack.

    Per request, Starlette's error and exception middleware, router and endpoint wrapper
    cost about as much CPU as the simulator's own work on a cached answer, and a
    zero-latency benchmark makes the simulator the bottleneck. ``POST`` to these exact
    paths goes straight to the same handlers (``Reject`` is still answered by
    ``endpoint``; an unexpected error still becomes uvicorn's plain 500); everything
    else, including 404/405 and trailing-slash redirects, goes through Starlette.
    """

    def __init__(self, app: Starlette, hot: Mapping[str, Callable[[Request], Awaitable[Response]]]):
        self.app = app
        self.state = app.state
        self._hot = dict(hot)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            if scope["path"].startswith("/openai/"):
                scope = _azure_scope(scope)
            handler = self._hot.get(scope["path"])
            if handler is not None:
                scope["app"] = self.app  # what Starlette sets; request.app reads it
                sim: SimState = self.state.sim
                sim.in_flight += 1
                sim.in_flight_peak = max(sim.in_flight_peak, sim.in_flight)
                try:
                    response = await handler(Request(scope, receive))
                    await response(scope, receive, send)
                finally:
                    sim.in_flight -= 1
                return
        await self.app(scope, receive, send)


def _azure_scope(scope: Scope) -> Scope:
    """An Azure OpenAI path as the OpenAI path it stands for, the dialect noted in the scope."""
    path: str = scope["path"]
    azure: _AzureCall | None = None
    if path.startswith(_AZURE_V1):
        azure, path = _AzureCall(deployment=None, classic=False), "/v1/" + path[len(_AZURE_V1) :]
    elif path == _AZURE_CLASSIC_RESPONSES:
        azure, path = _AzureCall(deployment=None, classic=True), "/v1/responses"
    elif match := _AZURE_CLASSIC.match(path):
        azure, path = _AzureCall(deployment=match[1], classic=True), f"/v1/{match[2]}"
    if azure is None:
        return scope
    return {**scope, "path": path, "raw_path": path.encode(), "shadowcanary.azure": azure}


def create_app(
    profiles: ProfileSet,
    *,
    admin_token: str | None,
    seed: int = 0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> _HotPaths:
    """The simulator as an ASGI app (serve it with uvicorn; see ``sim.server.serve``).

    ``admin_token=None`` disables the /admin API.
    """
    state = SimState(profiles, admin_token=admin_token, seed=seed, max_body_bytes=max_body_bytes)
    hot = {
        "/v1/chat/completions": endpoint(_chat_completions),
        "/v1/responses": endpoint(_responses),
        "/v1/embeddings": endpoint(_embeddings),
    }
    routes = [
        *(Route(path, handler, methods=["POST"]) for path, handler in hot.items()),
        Route("/v1/moderations", endpoint(_moderations), methods=["POST"]),
        Route("/v1/models", endpoint(_models), methods=["GET"]),
        Route("/v1/models/{model:path}", endpoint(_model), methods=["GET"]),
        Route("/healthz", endpoint(_healthz), methods=["GET"]),
        *admin_routes(),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found})
    app.state.sim = state
    return _HotPaths(app, hot)
