"""Async Redis helpers shared by the limiter and budget tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import redis.asyncio


def client(url: str) -> redis.asyncio.Redis:
    # As a worker builds it: wait for a free connection instead of failing at the cap.
    pool = redis.asyncio.BlockingConnectionPool.from_url(url, max_connections=20, timeout=5)
    # from_pool: the client owns the pool, so aclose() closes its connections too.
    return redis.asyncio.Redis.from_pool(pool)


def run(url: str, scenario: Callable[[redis.asyncio.Redis], Awaitable[None]]) -> None:
    """Run ``scenario`` with a fresh client on its own event loop, then close the client."""

    async def main() -> None:
        client_ = client(url)
        try:
            await scenario(client_)
        finally:
            await client_.aclose()

    asyncio.run(main())
