"""The gateway's HTTP/1.1 connections: uvicorn's httptools protocol, with bounds on reading.

uvicorn bounds neither the size of a request head nor the time a client takes to send
its request: httptools buffers a head of any size (a 64 MiB header took 10 s and tens
of MiB), and only idle kept-alive connections are timed out, so a client that sends
nothing, or trickles its head or body, holds a connection and its buffers for as long
as it likes. This protocol adds, per request:

- a head limit (``GatewaySettings.max_header_bytes``): the parser is never fed more
  head than that; beyond it the answer is 431;
- a head deadline (``header_timeout_s``) from the connection opening, or from the
  request's first byte on a kept-alive connection, and a body deadline
  (``body_timeout_s``) from the end of the head: 408 when either passes.

Deadlines are totals, not idle timers, so trickling a byte at a time does not extend
them. They do not run while the gateway itself has stopped reading (a pipelined
request waiting for the previous answer) or while the app works on a request. A timer
is only set while part of a request is missing after a read: a request that arrives
whole in one read (the usual case) costs no timer but the connection's first.

A refusal is answered with an OpenAI-style error and ``connection: close``; then the
connection lingers for a moment, discarding what the client still sends, so that the
answer is read rather than lost to a reset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from shadowcanary.gateway import metrics
from shadowcanary.gateway.http import error_body
from shadowcanary.settings import GatewaySettings

# How long a refused connection keeps draining the client's bytes before it is closed.
_LINGER_S = 2.0


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How much head, and how much time, a request may take to arrive."""

    max_header_bytes: int
    header_timeout_s: float
    body_timeout_s: float

    @classmethod
    def from_settings(cls, gateway: GatewaySettings) -> ConnectionLimits:
        return cls(gateway.max_header_bytes, gateway.header_timeout_s, gateway.body_timeout_s)


class GatewayServerConfig(uvicorn.Config):
    """uvicorn's config with the connection limits; pickled as is to spawned workers."""

    def __init__(self, app: Any, *, limits: ConnectionLimits, **options: Any) -> None:
        super().__init__(app, http=BoundedHttpToolsProtocol, **options)
        self.connection_limits = limits


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with a request head limit and head and body deadlines."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._limits = (
            config.connection_limits
            if isinstance(config, GatewayServerConfig)
            else ConnectionLimits.from_settings(GatewaySettings())
        )
        # Between requests the next bytes are a head; during a body they are not.
        self._reading_head = True
        self._head_started = False  # the parser has seen the head's first byte
        self._head_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._lingering = False

    # -- the asyncio protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._limits.header_timeout_s, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        limit = self._limits.max_header_bytes
        while data and not self._lingering and not self.transport.is_closing():
            if not self._reading_head:
                super().data_received(data)
                break
            # Feed at most what is left of the head allowance, so an oversized head is
            # refused before the parser has buffered more than the limit. (A slice
            # covering all of ``data`` is ``data`` itself: no copy in the usual case.)
            room = limit - self._head_bytes
            chunk, data = data[:room], data[room:]
            self._head_bytes += len(chunk)
            super().data_received(chunk)
            if self._reading_head and self._head_bytes >= limit:
                self._refuse(
                    431,
                    f"The request line and headers are larger than this gateway's limit of "
                    f"{limit} bytes. Send fewer or smaller headers (data belongs in the body), "
                    "or ask the operator to raise SHADOWCANARY_GATEWAY__MAX_HEADER_BYTES.",
                    "request_headers_too_large",
                )
                return
        self._time_what_is_missing()

    # -- parser callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = True

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_started = False
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()
        self._reading_head = True
        self._head_bytes = 0

    # -- deadlines and refusals -------------------------------------------------------

    def _time_what_is_missing(self) -> None:
        """After a read: start the deadline of a head or body that is still incomplete."""
        if self._deadline is not None or self._lingering or self.transport.is_closing():
            return
        if not self._reading_head:
            self._arm(self._limits.body_timeout_s, self._body_timed_out)
        elif self._head_started:
            self._arm(self._limits.header_timeout_s, self._head_timed_out)

    def _arm(self, seconds: float, handler: Callable[[], None]) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, handler)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _answering(self) -> bool:
        """Whether a response is being written (a refusal now would corrupt it)."""
        cycle = self.cycle
        return cycle is not None and cycle.response_started and not cycle.response_complete

    def _head_timed_out(self) -> None:
        self._deadline = None
        if self._lingering or self.transport.is_closing():
            return
        if self._answering():
            # A pipelined head waits for the current answer: its time starts after it.
            self._arm(self._limits.header_timeout_s, self._head_timed_out)
            return
        if not self._head_started:
            metrics.REJECTED.labels(reason="idle_connection").inc()
            self.transport.close()  # nothing was asked: nothing to answer
            return
        self._refuse(
            408,
            f"The request line and headers did not arrive within "
            f"{self._limits.header_timeout_s:g} s. Send the whole request at once, or ask "
            "the operator to raise SHADOWCANARY_GATEWAY__HEADER_TIMEOUT_S.",
            "request_timeout",
        )

    def _body_timed_out(self) -> None:
        self._deadline = None
        if self._lingering or self.transport.is_closing():
            return
        if self.flow.read_paused:
            # The gateway stopped reading (pipelined request, unread body): not the
            # client's delay.
            self._arm(self._limits.body_timeout_s, self._body_timed_out)
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_started:
            # Answered early (e.g. 413) and the rest of the body never came: close.
            metrics.REJECTED.labels(reason="request_timeout").inc()
            self.transport.abort()
            return
        self._refuse(
            408,
            f"The request body did not arrive within {self._limits.body_timeout_s:g} s of "
            "its headers (does Content-Length promise more than is sent?). Send the whole "
            "body at once, or ask the operator to raise SHADOWCANARY_GATEWAY__BODY_TIMEOUT_S.",
            "request_timeout",
        )

    def _refuse(self, status: int, message: str, code: str) -> None:
        """Answer ``status`` and close, lingering so the client can read the answer."""
        metrics.REJECTED.labels(reason=code).inc()
        if self._answering():
            self.transport.abort()  # mid-answer to an earlier request: no room for another
            return
        body = error_body(status, message, code=code)
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(
            b"content-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % len(body)
        )
        self.transport.write(b"".join(head) + body)
        self._lingering = True
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The app may be waiting for this request's body: it will not come.
            cycle.disconnected = True
            cycle.message_event.set()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()  # keep draining: unread bytes would reset the answer
        self._arm(_LINGER_S, self.transport.abort)
