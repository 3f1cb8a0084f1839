"""Server-sent events on the simulated schedule: first delta at TTFT, last at latency.

A lean ASGI response instead of Starlette's ``StreamingResponse``: at hundreds of
streams per second its per-chunk task-group machinery costs more than the rest of
the simulator, and every chunk here is already bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

# Chunks closer together than this are sent as one write: far fewer wake-ups and
# syscalls, still a stream to the client (TTFT is kept exactly).
MIN_STREAM_GAP_S = 0.025


@dataclass(frozen=True, slots=True)
class Timing:
    """Drawn for one call: whole latency and time to first token, in seconds."""

    latency_s: float
    ttft_s: float


async def paced(
    frames: list[tuple[bool, bytes]], eager: int, timing: Timing
) -> AsyncGenerator[bytes, None]:
    """Yield ``(is_delta, bytes)`` frames so the first delta lands at TTFT, the end at latency.

    The first ``eager`` frames go out at once (e.g. ``response.created``); frames that
    are not deltas travel with the next delta.
    """
    if eager:
        yield b"".join(f for _, f in frames[:eager])
    groups: list[bytes] = []
    pending: list[bytes] = []
    for is_delta, frame in frames[eager:]:
        pending.append(frame)
        if is_delta:
            groups.append(b"".join(pending))
            pending = []
    tail = b"".join(pending)
    await asyncio.sleep(timing.ttft_s)
    rest = max(0.0, timing.latency_s - timing.ttft_s)
    if len(groups) <= 1:
        if groups:
            yield groups[0]
        await asyncio.sleep(rest)
        yield tail
        return
    yield groups[0]
    gap = rest / (len(groups) - 1)
    step = max(1, math.ceil(MIN_STREAM_GAP_S / gap)) if gap > 0 else len(groups)
    for start in range(1, len(groups), step):
        batch = groups[start : start + step]
        await asyncio.sleep(gap * len(batch))
        last = start + step >= len(groups)
        yield b"".join(batch) + (tail if last else b"")


class EventStream(Response):
    """``text/event-stream`` body from an async iterator; stops if the client leaves."""

    media_type = "text/event-stream"

    def __init__(self, body: AsyncGenerator[bytes, None], headers: Mapping[str, str]) -> None:
        self.status_code = 200
        self.background = None
        self._body_iterator = body
        self.init_headers({**headers, "cache-control": "no-cache"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        gone = asyncio.ensure_future(_client_gone(receive))
        try:
            async for chunk in self._body_iterator:
                if gone.done():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gone
            await self._body_iterator.aclose()


async def _client_gone(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
