"""The asyncio side of a worker process: one event loop shared by every replay task.

Celery runs tasks on a small thread pool; each replay task hands its batch to this
loop and waits. All batches of the process then share one connection pool per model,
one rate limiter and one in-flight semaphore, so a single process keeps hundreds of
replays in flight while the Celery side stays simple and synchronous.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
import openai
import redis.asyncio as aioredis
import uvloop

from shadowcanary.limits.budget import DailyBudget
from shadowcanary.limits.ratelimit import RateLimit, RedisRateLimiter
from shadowcanary.replay.chat_post import ChatPoster
from shadowcanary.settings import ModelEndpoint, Settings

T = TypeVar("T")


@dataclass
class ReplayResources:
    """Objects that live on the runtime's loop; build and use them only from there."""

    clients: dict[str, openai.AsyncOpenAI]  # streamed replays and embeddings
    poster: ChatPoster  # non-streamed replays: the hot path
    limiters: dict[str, RedisRateLimiter]
    budget: DailyBudget
    in_flight: asyncio.Semaphore
    redis: aioredis.Redis


def sdk_client(endpoint: ModelEndpoint, limits: httpx2.Limits) -> openai.AsyncOpenAI:
    """The SDK client of one model endpoint, in its dialect (OpenAI, Azure classic or v1)."""
    key = endpoint.api_key.get_secret_value()
    common: dict[str, Any] = {
        "api_key": key,
        "timeout": endpoint.timeout_s,
        # Retries are ours (Celery retry with backoff and a dead-letter table), not the
        # SDK's silent ones.
        "max_retries": 0,
        # The SDK's aiohttp transport (openai[aiohttp]): its C HTTP parser and
        # connection pool cost a fraction of the default transport's CPU per call,
        # which is what bounds replays per second in one process.
        "http_client": openai.DefaultAioHttpClient(limits=limits, timeout=endpoint.timeout_s),
    }
    if endpoint.provider == "azure" and endpoint.api_version is not None:
        # Sends the api-key header and maps the model onto /openai/deployments/<name>.
        return openai.AsyncAzureOpenAI(
            azure_endpoint=endpoint.base_url, api_version=endpoint.api_version, **common
        )
    if endpoint.provider == "azure":
        return openai.AsyncOpenAI(
            base_url=endpoint.base_url, default_headers={"api-key": key}, **common
        )
    return openai.AsyncOpenAI(base_url=endpoint.base_url, **common)


class ReplayRuntime:
    """An event loop in a daemon thread, with the clients replays need."""

    def __init__(self, settings: Settings, redis_url: str) -> None:
        self._settings = settings
        self._redis_url = redis_url
        # uvloop: the loop's own bookkeeping is a large share of a replay's CPU.
        self._loop = uvloop.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="replay-loop", daemon=True
        )
        self._thread.start()
        self.resources = self.run(self._build())

    async def _build(self) -> ReplayResources:
        settings = self._settings
        # One connection pool per model, sized for the in-flight budget (the SDK's
        # default caps connections far lower and would queue replays behind it).
        limits = httpx2.Limits(
            max_connections=settings.replay.max_in_flight,
            max_keepalive_connections=settings.replay.max_in_flight,
        )
        clients = {}
        limiters = {}
        # Blocking pool: with hundreds of replays in flight, wait for a connection
        # instead of failing with "Too many connections".
        redis = aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(
                self._redis_url, max_connections=64, timeout=30
            )
        )
        for name, endpoint in settings.models.items():
            clients[name] = sdk_client(endpoint, limits)
            limiters[name] = RedisRateLimiter(redis, name, RateLimit.from_endpoint(endpoint))
        budget = DailyBudget.from_settings(redis, settings.replay)
        return ReplayResources(
            clients=clients,
            poster=ChatPoster(settings.models, max_connections=settings.replay.max_in_flight),
            limiters=limiters,
            budget=budget,
            in_flight=asyncio.Semaphore(settings.replay.max_in_flight),
            redis=redis,
        )

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run ``coro`` on the runtime's loop and wait for its result from this thread."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def in_flight(self) -> int:
        """Replays currently holding a slot."""
        sem = self.resources.in_flight
        return self._settings.replay.max_in_flight - sem._value

    def close(self) -> None:
        async def _close() -> None:
            for client in self.resources.clients.values():
                await client.close()
            await self.resources.poster.close()
            await self.resources.redis.aclose()

        try:
            self.run(_close(), timeout_s=5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
