"""One proxied call as it moves through the gateway, and how it becomes a tap event.

``Kind`` says per endpoint where the call goes upstream and how its request and
answer are captured. ``Call`` carries what the gateway learned about the request;
``Outcome`` what one upstream attempt produced. ``record`` builds the
``CapturedCall`` after the response has gone out and hands it to the tap: any error
in there is counted as a tap error and never reaches the client.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson
import structlog

from shadowcanary.events import Arm, CallStatus, CapturedCall, ModelRequest, ModelResponse
from shadowcanary.gateway.capture import (
    ResponsesStreamAssembly,
    StreamAssembly,
    Usage,
    chat_request,
    chat_response,
    responses_request,
    responses_response,
)
from shadowcanary.gateway.routing import Decision
from shadowcanary.gateway.upstream import FailureKind
from shadowcanary.tap.capture import estimate_usage
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.responses_capture import Conversations

log = structlog.get_logger(__name__)


class Assembly(Protocol):
    first_content_at: float | None

    def add(self, chunk: Any, now: float) -> None: ...


def _chat_assembly_result(assembly: Any) -> tuple[ModelResponse, Usage]:
    return assembly.response(), assembly.usage


def _responses_assembly_result(assembly: Any) -> tuple[ModelResponse, Usage]:
    result: tuple[ModelResponse, Usage] = assembly.result()
    return result


@dataclass(frozen=True, slots=True)
class Kind:
    """An OpenAI endpoint the gateway proxies."""

    name: str  # metrics label
    path: str  # upstream path after the base URL
    capture_request: Callable[[Mapping[str, Any]], ModelRequest] | None  # None: not tapped
    capture_response: Callable[[Mapping[str, Any]], tuple[ModelResponse, Usage]] | None = None
    new_assembly: Callable[[], Assembly] | None = None
    assembly_result: Callable[[Any], tuple[ModelResponse, Usage]] | None = None


CHAT = Kind(
    "chat.completions",
    "/chat/completions",
    chat_request,
    chat_response,
    StreamAssembly,
    _chat_assembly_result,
)
RESPONSES = Kind(
    "responses",
    "/responses",
    responses_request,
    responses_response,
    ResponsesStreamAssembly,
    _responses_assembly_result,
)
# Embeddings are proxied, routed and measured but not tapped: a CapturedCall is a
# generation (a prompt in, an answer out) that a worker can replay.
EMBEDDINGS = Kind("embeddings", "/embeddings", None)


@dataclass(slots=True)
class Call:
    """What the gateway knows about one request."""

    kind: Kind
    body: dict[str, Any]
    raw: bytes
    service: str  # the calling service's key name: the event's tenant
    decision: Decision
    event_id: str
    started: float  # perf_counter at arrival
    started_at: datetime
    # This process's memory of Responses conversations (previous_response_id), when
    # the call is a Responses call.
    conversations: Conversations | None = None

    def body_for(self, upstream_model: str) -> bytes:
        """The body to send upstream: the client's bytes unless the model name changes."""
        if self.body.get("model") == upstream_model:
            return self.raw
        return orjson.dumps({**self.body, "model": upstream_model})


@dataclass(slots=True)
class Outcome:
    """What one upstream attempt produced (or why there was none)."""

    model: str
    status: int  # HTTP status for the client
    headers: list[tuple[bytes, bytes]]
    body: bytes
    upstream_s: float
    failure: FailureKind | None = None
    error_class: str | None = None
    upstream_status: int | None = None  # what the upstream said, when it said something

    @property
    def retryable(self) -> bool:
        if self.failure in (FailureKind.TIMEOUT, FailureKind.CONNECTION, FailureKind.BREAKER_OPEN):
            return True
        return self.status >= 500 or self.status == 429


def call_status(outcome: Outcome) -> CallStatus:
    if outcome.failure is FailureKind.TIMEOUT:
        return CallStatus.TIMEOUT
    if outcome.status == 429:
        return CallStatus.RATE_LIMITED
    return CallStatus.OK if outcome.status < 400 else CallStatus.ERROR


def record(
    tap: Tap,
    call: Call,
    *,
    event_id: str,
    model: str,
    arm: Arm,
    status: CallStatus,
    latency_s: float,
    response: ModelResponse | None = None,
    usage: Usage = Usage(),  # noqa: B008 - frozen value object
    ttft_s: float | None = None,
    http_status: int | None = None,
    error_class: str | None = None,
    response_id: object = None,
) -> None:
    """Build the call's event and hand it to the tap; never raises."""
    capture = call.kind.capture_request
    if capture is None:
        return
    route = call.decision.route
    conversations = call.conversations
    try:
        kept = tap.keeps(route, event_id)
        if not kept and conversations is None:
            tap.record_sampled_out()
            return
        if conversations is not None:
            # A continuation is captured with the turns it continues, and every answer
            # (sampled or not) is remembered for the calls that will continue it.
            context = conversations.context(call.body.get("previous_response_id"))
            request = responses_request(call.body, context or ())
            if response is not None and status is CallStatus.OK:
                conversations.remember(response_id, request, response)
        else:
            request = capture(call.body)
        if not kept:
            tap.record_sampled_out()
            return
        latency_ms = latency_s * 1000
        ttft_ms = min(ttft_s * 1000, latency_ms) if ttft_s is not None else None
        if response is not None and usage.prompt_tokens is None:
            usage = estimate_usage(request, response)  # a stream without include_usage
        tap.emit(
            CapturedCall(
                event_id=event_id,
                started_at=call.started_at,
                ended_at=call.started_at + timedelta(milliseconds=latency_ms),
                route=route,
                tenant=call.service,
                rollout=call.decision.rollout,
                arm=arm,
                model=model,
                request=request,
                response=response,
                latency_ms=latency_ms,
                ttft_ms=ttft_ms,
                status=status,
                error_class=error_class,
                http_status=http_status,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                tokens_estimated=usage.estimated,
                stickiness_key=call.decision.stickiness_key,
            )
        )
    except Exception as exc:  # noqa: BLE001 - the tap must never hurt the call
        tap.record_tap_error()
        # The class only: validation messages can quote the prompt.
        log.warning("gateway_capture_failed", endpoint=call.kind.name, error=type(exc).__name__)


def record_outcome(tap: Tap, call: Call, outcome: Outcome, *, arm: Arm, event_id: str) -> None:
    """The event of a non-streamed attempt (answer parsed from its body when it succeeded)."""
    capture = call.kind.capture_response
    if capture is None or call.kind.capture_request is None:
        return
    status = call_status(outcome)
    response: ModelResponse | None = None
    usage = Usage()
    response_id = None
    if status is CallStatus.OK:
        try:
            payload = orjson.loads(outcome.body)
            response, usage = capture(payload)
            response_id = payload.get("id") if isinstance(payload, dict) else None
        except Exception as exc:  # noqa: BLE001 - an answer we cannot read is a tap error
            tap.record_tap_error()
            log.warning("gateway_capture_failed", endpoint=call.kind.name, error=type(exc).__name__)
            return
    record(
        tap,
        call,
        event_id=event_id,
        model=outcome.model,
        arm=arm,
        status=status,
        latency_s=time.perf_counter() - call.started,
        response=response,
        usage=usage,
        http_status=outcome.upstream_status if status is not CallStatus.OK else None,
        error_class=outcome.error_class,
        response_id=response_id,
    )
