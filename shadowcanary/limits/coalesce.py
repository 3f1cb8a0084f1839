"""Coalesce concurrent calls of one coroutine into batched calls (one Redis round trip).

A worker keeps hundreds of replays in flight, and with an RPM/TPM limit each of them
reserves its slot in Redis. One script call per replay costs the worker more CPU than
the reservation is worth (the redis-py client's own Python overhead per command), so
reservations requested while the previous batch is on its way to Redis wait for it and
then go together: at most one call per model is in flight, and under load every call
carries many reservations. When idle, a lone request goes out at once.

Hand-written because it is a dozen lines on top of asyncio futures; the libraries that
do request batching (aiodataloader and the like) add a per-key cache we must not have.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """``await submit(item)`` returns ``run_batch([..., item, ...])``'s answer for ``item``.

    ``run_batch`` gets the items in arrival order and returns one result per item, in
    the same order; if it raises, every caller of that batch gets the exception. Use
    one Coalescer per event loop.
    """

    def __init__(
        self, run_batch: Callable[[list[T]], Awaitable[Sequence[R]]], *, max_batch: int = 512
    ) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send())
        return await future

    async def _send(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    results = await self._run_batch([item for item, _ in batch])
                except asyncio.CancelledError:
                    for _, future in batch + self._pending:
                        future.cancel()
                    self._pending.clear()
                    raise
                except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    # A caller cancelled meanwhile simply loses its result (and its slot).
                    if not future.done():
                        future.set_result(result)
        finally:
            self._sender = None
