"""Drop-in tap for ``openai.OpenAI`` / ``openai.AsyncOpenAI``: every generation is captured.

``tap_openai(client, tap, ...)`` patches ``client.chat.completions.create`` and
``client.responses.create`` on that client instance and returns the same client, so
every other attribute and type check keeps working. Non-streamed calls are captured
when they return or raise (the exception reaches the caller unchanged). Streamed
calls return the SDK's own ``Stream``/``AsyncStream`` object yielding the same
chunks (or Responses events) in the same order; the tap watches them go by,
reassembles the answer and emits when the stream ends, fails or is closed early
(status ``cancelled``). Each captured call's event id is ``last_event_id()``
(``shadowcanary.tap.event_ids``), for ``tap.outcome``. A Responses call continuing an
earlier one of this client (``previous_response_id``) is captured with the earlier
turns (bounded memory).

Nothing in the tap path may hurt the call: any exception while capturing is caught,
counted as ``tap_error`` and logged at warning (without prompt text).

Not tapped (they keep working unchanged): ``with_raw_response``,
``with_streaming_response``, ``parse``/``stream`` helpers, and clients derived with
``with_options()``/``copy()`` (tap those separately).
"""

from __future__ import annotations

import functools
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import openai
import structlog

from shadowcanary.errors import ConfigError
from shadowcanary.events import (
    DEV_SALT,
    Arm,
    CallStatus,
    CapturedCall,
    ModelRequest,
    ModelResponse,
    hash_stickiness_key,
    now_utc,
)
from shadowcanary.tap.capture import (
    StreamAssembly,
    Usage,
    estimate_usage,
    failure_of,
    request_from_kwargs,
    response_from_completion,
    usage_of,
)
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.event_ids import remember
from shadowcanary.tap.responses_capture import (
    Conversations,
    ResponsesStreamAssembly,
    responses_request,
    responses_response,
)

log = structlog.get_logger(__name__)

ClientT = TypeVar("ClientT", openai.OpenAI, openai.AsyncOpenAI)
StickinessFrom = Callable[[Mapping[str, Any]], str | None]
ModelRouter = Callable[[str | None], str]

_MARKER = "__shadowcanary_tap__"


def _default_stickiness(kwargs: Mapping[str, Any]) -> str | None:
    for key in ("user", "safety_identifier"):
        value = kwargs.get(key)
        if isinstance(value, str) and value:
            return value
    return None


@dataclass(frozen=True, slots=True)
class _Context:
    tap: Tap
    route: str
    tenant: str
    rollout: str | None
    arm: Arm
    salt: str
    stickiness_from: StickinessFrom
    model_router: ModelRouter | None
    conversations: Conversations = field(default_factory=Conversations)


@dataclass(frozen=True, slots=True)
class _Api:
    """How one ``create`` method's calls are captured."""

    name: str
    iterable_arguments: tuple[str, ...]  # one-shot iterables are listed before the call
    request: Callable[[_Context, Mapping[str, Any]], ModelRequest]
    result: Callable[[Any], tuple[ModelResponse, Usage]]
    new_assembly: Callable[[], Any]


def _chat_result(result: Any) -> tuple[ModelResponse, Usage]:
    return response_from_completion(result), usage_of(result)


def _responses_request(ctx: _Context, kwargs: Mapping[str, Any]) -> ModelRequest:
    context = ctx.conversations.context(kwargs.get("previous_response_id"))
    return responses_request(kwargs, context or ())


_CHAT = _Api(
    "chat.completions",
    ("messages", "tools", "functions"),
    lambda _ctx, kwargs: request_from_kwargs(kwargs),
    _chat_result,
    StreamAssembly,
)
_RESPONSES = _Api(
    "responses",
    ("input", "tools", "include"),
    _responses_request,
    responses_response,
    ResponsesStreamAssembly,
)


def _tap_error(ctx: _Context, where: str, exc: BaseException) -> None:
    ctx.tap.record_tap_error()
    log.warning("tap_capture_failed", where=where, error=type(exc).__name__, route=ctx.route)


class _Call:
    """One call being captured; emits at most once."""

    __slots__ = (
        "arm",
        "ctx",
        "done",
        "event_id",
        "model",
        "request",
        "started",
        "started_at",
        "stickiness",
    )

    def __init__(
        self,
        ctx: _Context,
        request: ModelRequest,
        event_id: str,
        model: str,
        arm: Arm,
        key: str | None,
    ):
        self.ctx = ctx
        self.event_id = event_id
        self.model = model
        self.arm = arm
        self.stickiness = key
        self.request = request
        self.done = False
        self.started_at = now_utc()
        self.started = time.perf_counter()

    def finish(
        self,
        *,
        status: CallStatus,
        response: ModelResponse | None,
        usage: Usage = Usage(),  # noqa: B008 - frozen value object
        first_content_at: float | None = None,
        exc: BaseException | None = None,
        response_id: Any = None,
    ) -> None:
        if self.done:
            return
        self.done = True
        try:
            if response is not None and exc is None:
                if usage.prompt_tokens is None:
                    usage = estimate_usage(self.request, response)  # a stream without usage
                if self.request.api == "responses" and status is CallStatus.OK:
                    self.ctx.conversations.remember(response_id, self.request, response)
            latency_ms = (time.perf_counter() - self.started) * 1000
            failure = failure_of(exc) if exc is not None else None
            ttft_ms = (
                (first_content_at - self.started) * 1000 if first_content_at is not None else None
            )
            self.ctx.tap.emit(
                CapturedCall(
                    event_id=self.event_id,
                    started_at=self.started_at,
                    ended_at=self.started_at + timedelta(milliseconds=latency_ms),
                    route=self.ctx.route,
                    tenant=self.ctx.tenant,
                    rollout=self.ctx.rollout,
                    arm=self.arm,
                    model=self.model,
                    request=self.request,
                    response=response,
                    latency_ms=latency_ms,
                    ttft_ms=min(ttft_ms, latency_ms) if ttft_ms is not None else None,
                    status=failure.status if failure else status,
                    error_class=failure.error_class if failure else None,
                    http_status=failure.http_status if failure else None,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    cached_tokens=usage.cached_tokens,
                    reasoning_tokens=usage.reasoning_tokens,
                    tokens_estimated=usage.estimated,
                    stickiness_key=self.stickiness,
                )
            )
        except Exception as error:  # noqa: BLE001 - the tap must never raise into the caller
            _tap_error(self.ctx, "emit", error)


def _begin(ctx: _Context, api: _Api, kwargs: dict[str, Any]) -> _Call | None:
    """Route the model, then decide whether and how to capture; never raises."""
    try:
        raw_id = ctx.stickiness_from(kwargs)
        key = hash_stickiness_key(raw_id, ctx.salt) if raw_id else None
        requested = kwargs.get("model")
        model, arm = str(requested), ctx.arm
        if ctx.model_router is not None:
            model = ctx.model_router(key)
            kwargs["model"] = model
            if model != requested:
                arm = Arm.CANDIDATE
        for name in api.iterable_arguments:
            # A one-shot iterable would be consumed by the capture: hand the SDK a list.
            value = kwargs.get(name)
            if value is not None and not isinstance(
                value, str | list | tuple | openai.NotGiven | openai.Omit
            ):
                kwargs[name] = list(value)
        remember(None)  # until this call is known to be captured
        event_id = uuid.uuid4().hex
        if not ctx.tap.keeps(ctx.route, event_id):
            ctx.tap.record_sampled_out()
            return None
        call = _Call(ctx, api.request(ctx, kwargs), event_id, model, arm, key)
        remember(event_id)
        return call
    except Exception as exc:  # noqa: BLE001 - the tap must never raise into the caller
        _tap_error(ctx, "request", exc)
        return None


def _on_result(call: _Call, api: _Api, result: Any) -> None:
    try:
        response, usage = api.result(result)
        call.finish(
            status=CallStatus.OK,
            response=response,
            usage=usage,
            response_id=getattr(result, "id", None),
        )
    except Exception as exc:  # noqa: BLE001 - the tap must never raise into the caller
        _tap_error(call.ctx, "response", exc)


class _StreamWatch:
    """Reassembles a stream as the caller consumes it and emits once it is over."""

    __slots__ = ("__weakref__", "assembly", "broken", "call")

    def __init__(self, call: _Call, assembly: Any) -> None:
        self.call = call
        self.assembly = assembly
        self.broken = False

    def add(self, chunk: Any) -> None:
        if self.broken:
            return
        try:
            self.assembly.add(chunk, time.perf_counter())
        except Exception as exc:  # noqa: BLE001 - a chunk we cannot read must not reach the caller
            self.broken = True
            _tap_error(self.call.ctx, "stream_chunk", exc)

    def end(self, exc: BaseException | None = None, *, cancelled: bool = False) -> None:
        if self.call.done:
            return
        if self.broken:
            self.call.done = True
            return
        try:
            response = self.assembly.response()
        except Exception as error:  # noqa: BLE001 - the tap must never raise into the caller
            _tap_error(self.call.ctx, "stream_end", error)
            self.call.done = True
            return
        status = CallStatus.CANCELLED if cancelled else CallStatus.OK
        self.call.finish(
            status=status,
            response=response,
            usage=self.assembly.usage,
            first_content_at=self.assembly.first_content_at,
            exc=exc,
            response_id=getattr(self.assembly, "response_id", None),
        )


def _watch_stream(stream: openai.Stream[Any], watch: _StreamWatch) -> openai.Stream[Any]:
    source = stream._iterator

    def observed() -> Any:
        try:
            for chunk in source:
                watch.add(chunk)
                yield chunk
        except GeneratorExit:
            watch.end(cancelled=True)
            source.close()  # type: ignore[attr-defined]  # a generator
            raise
        except BaseException as exc:
            watch.end(exc)
            raise
        watch.end()

    # Through a weak reference: a closure holding the stream would keep it alive in a cycle.
    ref = weakref.ref(stream)

    def close() -> None:
        target = ref()
        try:
            if target is not None:
                type(target).close(target)
        finally:
            watch.end(cancelled=True)

    stream._iterator = observed()
    stream.close = close  # type: ignore[method-assign]
    # A stream dropped without being read or closed still gets reported.
    weakref.finalize(stream, watch.end, cancelled=True)
    return stream


def _watch_async_stream(
    stream: openai.AsyncStream[Any], watch: _StreamWatch
) -> openai.AsyncStream[Any]:
    source = stream._iterator

    async def observed() -> Any:
        try:
            async for chunk in source:
                watch.add(chunk)
                yield chunk
        except GeneratorExit:
            watch.end(cancelled=True)
            await source.aclose()  # type: ignore[attr-defined]  # an async generator
            raise
        except BaseException as exc:
            watch.end(exc)
            raise
        watch.end()

    ref = weakref.ref(stream)

    async def close() -> None:
        target = ref()
        try:
            if target is not None:
                await type(target).close(target)
        finally:
            watch.end(cancelled=True)

    stream._iterator = observed()
    stream.close = close  # type: ignore[method-assign]
    weakref.finalize(stream, watch.end, cancelled=True)
    return stream


def _sync_create(ctx: _Context, api: _Api, create: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(create)
    def tapped_create(*args: Any, **kwargs: Any) -> Any:
        call = _begin(ctx, api, kwargs) if not args else None
        try:
            result = create(*args, **kwargs)
        except BaseException as exc:
            if call is not None:
                call.finish(status=CallStatus.ERROR, response=None, exc=exc)
            raise
        if call is None:
            return result
        if isinstance(result, openai.Stream):
            try:
                return _watch_stream(result, _StreamWatch(call, api.new_assembly()))
            except Exception as exc:  # noqa: BLE001 - hand back the stream untouched
                _tap_error(ctx, "stream_watch", exc)
                return result
        _on_result(call, api, result)
        return result

    return tapped_create


def _async_create(
    ctx: _Context, api: _Api, create: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(create)
    async def tapped_create(*args: Any, **kwargs: Any) -> Any:
        call = _begin(ctx, api, kwargs) if not args else None
        try:
            result = await create(*args, **kwargs)
        except BaseException as exc:
            if call is not None:
                call.finish(status=CallStatus.ERROR, response=None, exc=exc)
            raise
        if call is None:
            return result
        if isinstance(result, openai.AsyncStream):
            try:
                return _watch_async_stream(result, _StreamWatch(call, api.new_assembly()))
            except Exception as exc:  # noqa: BLE001 - hand back the stream untouched
                _tap_error(ctx, "stream_watch", exc)
                return result
        _on_result(call, api, result)
        return result

    return tapped_create


def tap_openai(
    client: ClientT,
    tap: Tap,
    *,
    route: str = "default",
    tenant: str = "default",
    rollout: str | None = None,
    arm: Arm = Arm.BASELINE,
    stickiness_salt: str = DEV_SALT,
    stickiness_from: StickinessFrom | None = None,
    model_router: ModelRouter | None = None,
) -> ClientT:
    """Tap every ``chat.completions.create`` and ``responses.create`` call of ``client``;
    returns the same client.

    Args:
        stickiness_salt: per-deployment secret for hashing user/conversation ids
            (``Settings.stickiness_salt``); never leave the default in production.
        stickiness_from: picks the raw user or conversation id from the ``create``
            kwargs; by default the ``user`` (or ``safety_identifier``) argument. Only
            its HMAC (``events.hash_stickiness_key``) is recorded.
        model_router: given the hashed stickiness key, returns the model to call (the
            flag router plugs in here). When it picks another model than the caller
            asked for, the call is recorded as the candidate arm.

    Raises:
        ConfigError: the client is not an OpenAI client, or is already tapped.
    """
    if not isinstance(client, openai.OpenAI | openai.AsyncOpenAI):
        raise ConfigError(
            "tap_openai() needs an openai.OpenAI or openai.AsyncOpenAI, "
            f"got {type(client).__name__}",
            hint="wrap the OpenAI client itself, e.g. tap_openai(openai.OpenAI(), tap)",
        )
    completions, responses = client.chat.completions, client.responses
    if getattr(completions.create, _MARKER, False):
        raise ConfigError(
            "this OpenAI client is already tapped",
            hint="call tap_openai() once per client; every call is then captured once",
        )
    # Bind the raw/streaming-response helpers to the untapped methods before patching.
    _ = completions.with_raw_response, completions.with_streaming_response
    _ = responses.with_raw_response, responses.with_streaming_response
    ctx = _Context(
        tap=tap,
        route=route,
        tenant=tenant,
        rollout=rollout,
        arm=arm,
        salt=stickiness_salt,
        stickiness_from=stickiness_from or _default_stickiness,
        model_router=model_router,
    )
    for resource, api in ((completions, _CHAT), (responses, _RESPONSES)):
        original = resource.create
        wrapper = (
            _async_create(ctx, api, original)
            if isinstance(client, openai.AsyncOpenAI)
            else _sync_create(ctx, api, original)
        )
        setattr(wrapper, _MARKER, True)
        resource.create = wrapper  # type: ignore[method-assign,assignment]
    return client
