"""The proxy itself: send a call to its upstream, relay the answer, fall back, record it.

Non-streamed answers are relayed byte for byte (status, body and the upstream's own
headers such as ``x-request-id`` and rate-limit headers). Streamed answers are
forwarded chunk by chunk as they arrive, while an ``SSEDecoder`` feeds the tap's
stream assembly on the side; when the client goes away the upstream response is
closed at once (the upstream sees the disconnect) and the event says ``cancelled``.

Fallback: when the candidate fails retryably (5xx, 429, timeout, connection error,
or its breaker is open) before anything was sent to the client, and the route allows
it, the call is served by the baseline. Both attempts are recorded: the candidate's
failure under its event id (so the controller sees the candidate's errors), the
baseline's answer under ``<event id>-fallback``.

Every answer carries ``x-shadowcanary-event-id``: the id of the captured call that
answered (the fallback's when there was one), which services send back with their
outcome reports. It is left out when the call is not captured: embeddings, or a call
the tap's sampling drops.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Literal, overload

import aiohttp
import structlog
from prometheus_client import Counter, Histogram

from shadowcanary.events import Arm, CallStatus
from shadowcanary.gateway import metrics
from shadowcanary.gateway.calls import Call, Outcome, record, record_outcome
from shadowcanary.gateway.capture import SSEDecoder
from shadowcanary.gateway.http import JSON_HEADERS, Receive, Send, error_body
from shadowcanary.gateway.upstream import (
    FailureKind,
    Upstreams,
    client_headers,
    error_class,
    failure_kind,
)
from shadowcanary.tap.emitter import Tap

log = structlog.get_logger(__name__)

FALLBACK_SUFFIX = "-fallback"
# The id of the captured call that answered, for outcome reports (POST /v1/tap/outcomes).
EVENT_ID_HEADER = b"x-shadowcanary-event-id"

# A stream the upstream accepted: the open response and when the call was sent.
_OpenStream = tuple[aiohttp.ClientResponse, float]


class Proxy:
    """Relays calls to the upstreams and records them in the tap."""

    def __init__(self, upstreams: Upstreams, tap: Tap) -> None:
        self._upstreams = upstreams
        self._tap = tap
        self._requests: dict[tuple[str, Arm, int], Counter] = {}

    async def handle(self, call: Call, send: Send, receive: Receive) -> None:
        if call.body.get("stream") is True and call.kind.new_assembly is not None:
            await self._streamed(call, send, receive)
        else:
            await self._plain(call, send)

    # -- non-streamed ---------------------------------------------------------------

    async def _plain(self, call: Call, send: Send) -> None:
        decision = call.decision
        outcome = await self._call_upstream(call, decision.model, stream=False)
        arm, event_id = decision.arm, call.event_id
        if outcome.retryable and decision.fallback_model is not None:
            self._record_failed_before_fallback(call, outcome, arm, event_id)
            outcome = await self._call_upstream(call, decision.fallback_model, stream=False)
            arm, event_id = Arm.BASELINE, event_id + FALLBACK_SUFFIX
        outcome.headers.extend(self._event_id_header(call, event_id))
        await _send_whole(send, outcome)
        added = time.perf_counter() - call.started - outcome.upstream_s
        _child(metrics.ADDED_LATENCY, call.kind.name).observe(added)
        _child(metrics.UPSTREAM_LATENCY, arm.value).observe(outcome.upstream_s)
        self._count(call, arm, outcome.status)
        record_outcome(self._tap, call, outcome, arm=arm, event_id=event_id)

    # -- streamed -------------------------------------------------------------------

    async def _streamed(self, call: Call, send: Send, receive: Receive) -> None:
        decision = call.decision
        opened = await self._call_upstream(call, decision.model, stream=True)
        arm, model, event_id = decision.arm, decision.model, call.event_id
        if isinstance(opened, Outcome) and opened.retryable and decision.fallback_model:
            self._record_failed_before_fallback(call, opened, arm, event_id)
            model, arm, event_id = decision.fallback_model, Arm.BASELINE, event_id + FALLBACK_SUFFIX
            opened = await self._call_upstream(call, model, stream=True)
        if isinstance(opened, Outcome):  # the upstream said no before streaming anything
            opened.headers.extend(self._event_id_header(call, event_id))
            await _send_whole(send, opened)
            self._count(call, arm, opened.status)
            record_outcome(self._tap, call, opened, arm=arm, event_id=event_id)
            return
        response, upstream_started = opened
        await self._relay(call, response, upstream_started, model, arm, event_id, send, receive)

    def _event_id_header(self, call: Call, event_id: str) -> list[tuple[bytes, bytes]]:
        """The captured call's id for outcome reports; none when it is not captured
        (embeddings) or the tap samples it out."""
        if call.kind.capture_request is None or not self._tap.keeps(call.decision.route, event_id):
            return []
        return [(EVENT_ID_HEADER, event_id.encode())]

    @overload
    async def _call_upstream(
        self, call: Call, model: str, *, stream: Literal[False]
    ) -> Outcome: ...

    @overload
    async def _call_upstream(
        self, call: Call, model: str, *, stream: Literal[True]
    ) -> Outcome | _OpenStream: ...

    async def _call_upstream(
        self, call: Call, model: str, *, stream: bool
    ) -> Outcome | _OpenStream:
        """One attempt at ``model``: its answer or failure as an ``Outcome``, the breaker told.

        A streamed call that the upstream accepts (200) comes back as the open response and
        the time it was sent; the relay reads it and tells the breaker how it ended. Any
        other answer is read whole here, and only an unstreamed one below 400 is a success.
        """
        endpoint = self._upstreams.endpoints[model]
        breaker = self._upstreams.breakers[model]
        if not breaker.allow():
            return _breaker_open(model, breaker.retry_after_s())
        timeout = call.decision.timeout_s or endpoint.timeout_s
        body = call.body_for(endpoint.upstream_model)
        started = time.perf_counter()
        try:
            response = await self._upstreams.post(
                endpoint, call.kind.path, body, timeout_s=timeout, stream=stream
            )
            if stream and response.status == 200:
                return response, started
            try:
                data = await response.read()
            finally:
                response.release()
        except asyncio.CancelledError:
            breaker.record_abandoned()
            raise
        except (TimeoutError, aiohttp.ClientError) as exc:
            breaker.record_failure()
            return _transport_failure(model, exc, time.perf_counter() - started, timeout)
        upstream_s = time.perf_counter() - started
        status = response.status
        if status >= 500:
            breaker.record_failure()
        else:
            breaker.record_success()
        if status < 400 and not stream:
            return Outcome(model, status, client_headers(response.raw_headers), data, upstream_s)
        return _status_failure(
            model, status, response.raw_headers, endpoint.scrub(data), upstream_s
        )

    async def _relay(
        self,
        call: Call,
        response: aiohttp.ClientResponse,
        upstream_started: float,
        model: str,
        arm: Arm,
        event_id: str,
        send: Send,
        receive: Receive,
    ) -> None:
        breaker = self._upstreams.breakers[model]
        assert call.kind.new_assembly is not None and call.kind.assembly_result is not None
        assembly = call.kind.new_assembly()
        decoder = SSEDecoder()
        task = asyncio.current_task()
        assert task is not None
        state = _RelayState()

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not state.finished:  # uvicorn also says "disconnect" once the response is done
                state.client_gone = True
                task.cancel()

        headers = client_headers(response.raw_headers) + self._event_id_header(call, event_id)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        # The gateway's own share of a stream: everything before the upstream call began.
        _child(metrics.ADDED_LATENCY, call.kind.name).observe(upstream_started - call.started)
        watcher = asyncio.ensure_future(watch_disconnect())
        status, failure_class = CallStatus.OK, None
        chunks = 0
        try:
            async for data in response.content.iter_any():
                chunks += 1
                now = time.perf_counter()
                for event in decoder.feed(data):
                    assembly.add(event, now)
                if state.finished:
                    continue  # past the stream's logical end: drained, not forwarded
                # The chunk that ends the stream also ends the response: one write, not two.
                state.finished = _ends_stream(data, assembly)
                await send(
                    {"type": "http.response.body", "body": data, "more_body": not state.finished}
                )
            if not state.finished:
                state.finished = True
                await send({"type": "http.response.body", "body": b""})
            breaker.record_success()
        except asyncio.CancelledError:
            if not state.client_gone:
                breaker.record_abandoned()
                raise  # the server is shutting down: not ours to swallow
            task.uncancel()
            status, failure_class = CallStatus.CANCELLED, "ClientDisconnected"
            breaker.record_abandoned()
        except (TimeoutError, aiohttp.ClientError) as exc:
            breaker.record_failure()
            kind = failure_kind(exc)
            status = CallStatus.TIMEOUT if kind is FailureKind.TIMEOUT else CallStatus.ERROR
            failure_class = (
                "APITimeoutError" if kind is FailureKind.TIMEOUT else "APIConnectionError"
            )
            log.warning("gateway_stream_broken", upstream=model, error=type(exc).__name__)
            state.finished = True
            # The status line is gone already: end the body so the client is not left hanging.
            await send({"type": "http.response.body", "body": b""})
        finally:
            watcher.cancel()
            if state.finished and status is CallStatus.OK:
                response.release()
            else:
                response.close()  # tells the upstream we stopped listening
        latency_s = time.perf_counter() - call.started
        ttft_s = (
            assembly.first_content_at - call.started
            if assembly.first_content_at is not None
            else None
        )
        metrics.STREAM_CHUNKS.inc(chunks)
        _child(metrics.UPSTREAM_LATENCY, arm.value).observe(time.perf_counter() - upstream_started)
        if ttft_s is not None:
            _child(metrics.TTFT, arm.value).observe(ttft_s)
        self._count(call, arm, 200 if status is CallStatus.OK else 499)
        try:
            answer, usage = call.kind.assembly_result(assembly)
        except Exception as exc:  # noqa: BLE001 - a stream we cannot reassemble is a tap error
            self._tap.record_tap_error()
            log.warning("gateway_capture_failed", endpoint=call.kind.name, error=type(exc).__name__)
            return
        record(
            self._tap, call, event_id=event_id, model=model, arm=arm, status=status,
            latency_s=latency_s, response=answer, usage=usage, ttft_s=ttft_s,
            error_class=failure_class, response_id=getattr(assembly, "response_id", None),
        )  # fmt: skip

    def _record_failed_before_fallback(
        self, call: Call, failed: Outcome, arm: Arm, event_id: str
    ) -> None:
        """The attempt a fallback replaces is recorded under its own arm and event id."""
        record_outcome(self._tap, call, failed, arm=arm, event_id=event_id)
        self._count(call, arm, failed.status)
        metrics.FALLBACKS.labels(reason=_reason(failed)).inc()

    def _count(self, call: Call, arm: Arm, status: int) -> None:
        key = (call.kind.name, arm, status)
        counter = self._requests.get(key)
        if counter is None:
            counter = metrics.REQUESTS.labels(
                endpoint=call.kind.name, arm=arm.value, status=str(status)
            )
            self._requests[key] = counter
        counter.inc()


_CHILDREN: dict[tuple[int, str], Histogram] = {}


def _child(histogram: Histogram, label: str) -> Histogram:
    """A histogram's child for one label value, looked up once (labels() takes a lock)."""
    key = (id(histogram), label)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = histogram.labels(label)
    return child


async def _send_whole(send: Send, outcome: Outcome) -> None:
    """An answer read whole (success or failure) goes to the client in one body."""
    outcome.headers.append((b"content-length", str(len(outcome.body)).encode()))
    await send(
        {"type": "http.response.start", "status": outcome.status, "headers": outcome.headers}
    )
    await send({"type": "http.response.body", "body": outcome.body})


def _ends_stream(data: bytes, assembly: object) -> bool:
    """Whether a chunk closes its stream: chat's ``[DONE]``, a Responses terminal event."""
    return data.endswith(b"data: [DONE]\n\n") or getattr(assembly, "final", None) is not None


class _RelayState:
    __slots__ = ("client_gone", "finished")

    def __init__(self) -> None:
        self.client_gone = False
        self.finished = False


def _reason(outcome: Outcome) -> str:
    return outcome.failure.value if outcome.failure is not None else f"http_{outcome.status}"


def _breaker_open(model: str, retry_after_s: float) -> Outcome:
    wait = max(1, math.ceil(retry_after_s))
    body = error_body(
        503,
        f"The upstream for model '{model}' is failing and its circuit breaker is open; "
        f"retry in {wait}s.",
        code="upstream_circuit_open",
    )
    headers = [*JSON_HEADERS, (b"retry-after", str(wait).encode())]
    return Outcome(model, 503, headers, body, 0.0, FailureKind.BREAKER_OPEN, "CircuitOpen")


def _transport_failure(
    model: str, exc: BaseException, elapsed_s: float, timeout_s: float
) -> Outcome:
    kind = failure_kind(exc)
    if kind is FailureKind.TIMEOUT:
        status, code, name = 504, "upstream_timeout", "APITimeoutError"
        message = f"The upstream for model '{model}' did not answer within {timeout_s:g}s."
    else:
        status, code, name = 502, "upstream_unreachable", "APIConnectionError"
        message = f"The upstream for model '{model}' could not be reached ({type(exc).__name__})."
    log.warning("gateway_upstream_failed", upstream=model, error=type(exc).__name__)
    return Outcome(
        model,
        status,
        list(JSON_HEADERS),
        error_body(status, message, code=code),
        elapsed_s,
        kind,
        name,
    )


def _status_failure(
    model: str,
    status: int,
    raw_headers: tuple[tuple[bytes, bytes], ...],
    body: bytes,
    upstream_s: float,
) -> Outcome:
    name = error_class(status)
    if status in (401, 403):
        # The upstream refused the gateway's own credentials: an operator problem, not
        # the client's, and its message may quote part of the key.
        log.error("gateway_upstream_auth_failed", upstream=model, status=status)
        message = (
            f"The gateway's credentials for model '{model}' were refused upstream "
            f"(HTTP {status}). The operator must fix its api_key in SHADOWCANARY_MODELS."
        )
        body = error_body(502, message, code="upstream_auth_failed")
        return Outcome(
            model, 502, list(JSON_HEADERS), body, upstream_s, FailureKind.STATUS, name, status
        )
    headers = client_headers(raw_headers)
    return Outcome(model, status, headers, body, upstream_s, FailureKind.STATUS, name, status)
