"""The gateway's ASGI app: authenticate, read and check the body, route, proxy.

Endpoints (also under ``/r/<route>/``): ``POST /v1/chat/completions``,
``/v1/responses``, ``/v1/embeddings``, ``GET /v1/models[/<id>]``,
``POST /v1/tap/events``, ``POST /v1/tap/outcomes``; every other ``/v1/...`` path
(moderations, audio, images, files, batches, ...) is passed through to the route's
baseline unchanged (``passthrough``); unauthenticated read-only ``/healthz``, ``/readyz`` and
``/metrics``. Every error is an OpenAI-style ``{"error": {...}}`` with a message that
says what was wrong and how to fix it.
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson
import prometheus_client
import structlog
from prometheus_client import multiprocess

from shadowcanary.events import now_utc
from shadowcanary.gateway import metrics
from shadowcanary.gateway import tap_outcomes as outcomes
from shadowcanary.gateway.calls import CHAT, EMBEDDINGS, RESPONSES, Call, Kind
from shadowcanary.gateway.http import (
    Message,
    Receive,
    Rejection,
    Scope,
    Send,
    error_body,
    send_bytes,
    send_json,
    send_rejection,
)
from shadowcanary.gateway.passthrough import pass_through, passable
from shadowcanary.gateway.resources import Runtime
from shadowcanary.gateway.routing import route_from_path, routed_path
from shadowcanary.gateway.tap_events import ingest
from shadowcanary.settings import GatewaySettings

log = structlog.get_logger(__name__)

_GENERATION: dict[str, Kind] = {
    "/v1/chat/completions": CHAT,
    "/v1/responses": RESPONSES,
    "/v1/embeddings": EMBEDDINGS,
}
_ENDPOINTS = (
    "POST /v1/chat/completions, POST /v1/responses, POST /v1/embeddings, GET /v1/models, "
    "POST /v1/tap/events, POST /v1/tap/outcomes, "
    "any other /v1/... path (passed through to the baseline), "
    "GET /healthz, GET /readyz, GET /metrics"
)


class GatewayApp:
    """ASGI callable; ``runtime_factory`` builds the process's runtime at startup."""

    def __init__(self, runtime_factory: Callable[[], Runtime]) -> None:
        self._factory = runtime_factory
        self.runtime: Runtime | None = None
        self._stopping = False
        self._names: tuple[bytes, bytes, bytes] | None = None
        # Event ids: a random prefix per process and a counter (a uuid4 per call costs more).
        self._id_prefix = f"gw{secrets.token_hex(8)}"
        self._ids = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    runtime = self._factory()
                    await runtime.start()
                except Exception as exc:  # noqa: BLE001 - reported to the server, which exits
                    log.error("gateway_start_failed", error=str(exc))
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                self.runtime = runtime
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._stopping = True
                if self.runtime is not None:
                    await self.runtime.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self.runtime
        path: str = scope["path"]
        try:
            # uvicorn always sends raw_path; the decoded path is only a fallback.
            path = routed_path(scope.get("raw_path") or path.encode())
            if runtime is None:
                raise Rejection(503, "The gateway is starting; retry in a moment.", code="starting")
            if path.startswith("/v1/") or path.startswith("/r/"):
                await self._api(runtime, scope, path, receive, send)
            elif path == "/healthz":
                await send_json(send, 200, {"status": "ok"})
            elif path == "/readyz":
                await self._ready(runtime, send)
            elif path == "/metrics":
                await _metrics(send)
            else:
                raise _unknown(scope["method"], path)
        except Rejection as rejection:
            metrics.REJECTED.labels(reason=rejection.code or str(rejection.status)).inc()
            await send_rejection(send, rejection)
        except Exception as exc:  # noqa: BLE001 - one bad request must not take the server down
            log.error("gateway_internal_error", path=path, error=type(exc).__name__)
            try:
                body = error_body(500, "Internal gateway error; the operator's logs have details.")
                await send_bytes(send, 500, body)
            except Exception:  # noqa: BLE001, S110 - the response had started: nothing to add
                pass

    async def _api(
        self, runtime: Runtime, scope: Scope, path: str, receive: Receive, send: Send
    ) -> None:
        started = time.perf_counter()
        gateway = runtime.settings.gateway
        route, path = route_from_path(path, runtime.routing.default_route)
        headers = _Headers(scope["headers"], self._header_names(gateway))
        method = scope["method"]
        kind = _GENERATION.get(path)
        served_here = (
            kind is not None
            or path in ("/v1/tap/events", outcomes.PATH, "/v1/models")
            or path.startswith("/v1/models/")
        )
        if not served_here and not passable(path):
            raise _unknown(method, path)
        service = runtime.keys.service_for(headers.authorization, headers.api_key)
        if not served_here:
            route = headers.route or route
            # Passed through to the baseline, never evidence; still a route of someone's
            # rollout, so a key reaches it only if bound to that rollout.
            runtime.keys.check_route(service, route, runtime.routing.rollout_of(route))
            raw = await _read_body(receive, headers.content_length, gateway.max_body_bytes)
            model = runtime.routing.baseline_of(route)
            await pass_through(runtime.upstreams, model, scope, path, raw, send)
            return
        if path.startswith("/v1/models"):
            if method != "GET":
                raise _method(method, path, "GET")
            await _models(runtime, path, send)
            return
        if method != "POST":
            raise _method(method, path, "POST")
        if kind is not None:
            if headers.route is not None:
                route = headers.route
            # Before the body is read: a call on another team's route costs nothing.
            runtime.keys.check_route(service, route, runtime.routing.rollout_of(route))
        raw = await _read_body(receive, headers.content_length, gateway.max_body_bytes)
        body = _parse(raw)
        if path == outcomes.PATH:
            status, answer = outcomes.ingest_outcomes(
                runtime.tap, body, service=service, keys=runtime.keys
            )
            await send_json(send, status, answer)
            return
        if kind is None:  # /v1/tap/events
            status, answer = ingest(
                runtime.tap,
                body,
                max_event_bytes=runtime.settings.tap.max_event_bytes,
                service=service,
                keys=runtime.keys,
            )
            await send_json(send, status, answer)
            return
        if not isinstance(body, dict):
            raise Rejection(400, f"The request body must be a JSON object, not {_json_type(body)}.")
        _check_shape(kind, body)
        decision = runtime.routing.decide(
            route, body.get("model"), _stickiness_id(runtime, route, headers, body)
        )
        event_id = f"{self._id_prefix}{next(self._ids):x}"
        call = Call(kind, body, raw, service, decision, event_id, started, now_utc())
        if kind is RESPONSES:
            call.conversations = runtime.conversations
        await runtime.proxy.handle(call, send, receive)

    def _header_names(self, gateway: GatewaySettings) -> tuple[bytes, bytes, bytes]:
        names = self._names
        if names is None:
            names = self._names = (
                gateway.route_header.lower().encode(),
                gateway.user_header.lower().encode(),
                gateway.conversation_header.lower().encode(),
            )
        return names

    async def _ready(self, runtime: Runtime, send: Send) -> None:
        breakers = {name: b.state.name.lower() for name, b in runtime.upstreams.breakers.items()}
        ready = not self._stopping
        await send_json(send, 200 if ready else 503, {"ready": ready, "breakers": breakers})


class _Headers:
    """The request headers the gateway reads, found in one pass."""

    __slots__ = ("api_key", "authorization", "content_length", "conversation", "route", "user")

    def __init__(self, raw: list[tuple[bytes, bytes]], names: tuple[bytes, bytes, bytes]) -> None:
        route_name, user_name, conv_name = names
        self.authorization: bytes | None = None
        self.api_key: bytes | None = None
        self.content_length: bytes | None = None
        self.route: str | None = None
        self.user: str | None = None
        self.conversation: str | None = None
        for name, value in raw:
            if name == b"authorization":
                self.authorization = value
            elif name == b"content-length":
                self.content_length = value
            elif name == b"api-key":
                self.api_key = value
            elif name == route_name:
                self.route = value.decode("latin-1") or None
            elif name == user_name:
                self.user = value.decode("latin-1") or None
            elif name == conv_name:
                self.conversation = value.decode("latin-1") or None


def _stickiness_id(
    runtime: Runtime, route: str, headers: _Headers, body: dict[str, Any]
) -> str | None:
    """The raw id a user sticks on: the route's header first, then the body's ``user``."""
    if headers.conversation and runtime.routing.stickiness_of(route) == "conversationId":
        return headers.conversation
    if headers.user:
        return headers.user
    for field in ("user", "safety_identifier"):
        value = body.get(field)
        if isinstance(value, str) and value:
            return value
    return headers.conversation


def _too_large(limit: int) -> Rejection:
    return Rejection(
        413,
        f"Request body is larger than this gateway's limit of {limit} bytes; send a smaller "
        "body (e.g. images by URL rather than inline) or ask the operator to raise "
        "SHADOWCANARY_GATEWAY__MAX_BODY_BYTES.",
        code="request_too_large",
    )


async def _read_body(receive: Receive, declared: bytes | None, limit: int) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)  # answered before reading: the server discards the rest
    message: Message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Rejection(
                400, "The client disconnected while sending the body.", code="client_gone"
            )
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> Any:
    if not raw:
        raise Rejection(400, "The request body is empty; send a JSON object.", code="invalid_json")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        problem = (
            "is not valid UTF-8" if "utf-8" in str(exc).lower() else f"is not valid JSON ({exc})"
        )
        raise Rejection(
            400,
            f"We could not parse the JSON body of your request: it {problem}. "
            "Send a UTF-8 encoded JSON object.",
            code="invalid_json",
        ) from None


def _json_type(value: Any) -> str:
    names = {
        list: "an array",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
    }
    return names.get(type(value), "null" if value is None else type(value).__name__)


def _check_shape(kind: Kind, body: dict[str, Any]) -> None:
    """The few fields the gateway itself depends on; the upstream checks the rest."""
    if not isinstance(body.get("model"), str):
        raise Rejection(
            400,
            f"'model' must be a string naming the model, got {_json_type(body.get('model'))}.",
            param="model",
        )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise Rejection(
            400, f"'stream' must be true or false, got {_json_type(stream)}.", param="stream"
        )
    if kind is CHAT:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise Rejection(
                400,
                "'messages' must be a non-empty array of message objects, got "
                f"{_json_type(messages) if messages != [] else 'an empty array'}.",
                param="messages",
            )
        if not all(isinstance(m, dict) for m in messages):
            raise Rejection(
                400, "Each entry of 'messages' must be a JSON object.", param="messages"
            )
    elif kind is RESPONSES:
        if not isinstance(body.get("input"), str | list):
            raise Rejection(
                400, "'input' must be a string or an array of input items.", param="input"
            )
    elif body.get("input") is None:
        raise Rejection(400, "'input' is required: the text (or texts) to embed.", param="input")


def _unknown(method: str, path: str) -> Rejection:
    return Rejection(
        404,
        f"Unknown path {method} {path}. This gateway serves: {_ENDPOINTS} "
        "(optionally under /r/<route>/).",
        code="unknown_url",
    )


def _method(method: str, path: str, allowed: str) -> Rejection:
    return Rejection(
        405,
        f"{path} accepts {allowed}, not {method}.",
        code="method_not_allowed",
        headers=[(b"allow", allowed.encode())],
    )


async def _models(runtime: Runtime, path: str, send: Send) -> None:
    def entry(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 0, "owned_by": "shadowcanary-gateway"}

    names = sorted(runtime.settings.models)
    if path in ("/v1/models", "/v1/models/"):
        await send_json(send, 200, {"object": "list", "data": [entry(n) for n in names]})
        return
    name = path[len("/v1/models/") :]
    if name not in runtime.settings.models:
        raise Rejection(
            404,
            f"The model `{name}` is not served by this gateway. Models: {', '.join(names)}.",
            code="model_not_found",
        )
    await send_json(send, 200, entry(name))


async def _metrics(send: Send) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = prometheus_client.generate_latest(registry)
    else:
        body = prometheus_client.generate_latest()
    await send_bytes(
        send, 200, body, [(b"content-type", prometheus_client.CONTENT_TYPE_LATEST.encode())]
    )
