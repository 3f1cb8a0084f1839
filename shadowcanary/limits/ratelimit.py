"""One requests/min and tokens/min limit per model, shared by every worker through Redis.

The provider counts every request from every worker process on every machine against
one quota, so the limiter state lives in Redis and is changed by one Lua script that
checks both limits and the shared 429 pause in a single atomic step.

Algorithm: GCRA (the generic cell rate algorithm, a leaky bucket stored as one
"theoretical arrival time" per limit). Why GCRA and not a sliding-window log: it keeps
one integer per limit instead of one entry per request (a log for 1M tokens/min would
hold thousands of members), and it spaces grants out smoothly instead of letting a
whole minute's quota go in the first second, which matters because providers enforce
per-minute limits over shorter quantised windows too.

The script *reserves* a slot: it answers "go now" or "your slot is in 0.4 s", and the
caller sleeps until its slot and then goes without asking again. So waiters are served
in arrival order across all processes, a request larger than the others cannot starve
behind a stream of small ones, and hundreds of waiting coroutines cost one Redis call
each instead of a poll every emission interval.

Concurrent acquires in one process share script calls (``_RESERVE_MANY_LUA`` through
``coalesce.Coalescer``): reservations asked for while one call is on its way to Redis
go together in the next, each placed exactly as if it had asked alone, so the spacing
is unchanged and a worker with hundreds of replays in flight makes a few Redis calls
per model at a time instead of one per replay.

All times are Redis server time (``TIME`` inside the script), so workers whose clocks
disagree still share one timeline. Needs Redis >= 5 (script effects replication, the
default since 5, makes ``TIME`` before a write legal).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.asyncio
import redis.exceptions
import structlog
from prometheus_client import Counter, Histogram

from shadowcanary.constants import rate_limit_key
from shadowcanary.errors import ConfigError, ServiceUnavailable, UpstreamRateLimited
from shadowcanary.limits.coalesce import Coalescer

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from shadowcanary.settings import ModelEndpoint

log = structlog.get_logger(__name__)

RATELIMIT_WAIT = Histogram(
    "shadowcanary_ratelimit_wait_seconds",
    "Time a replay waited for the shared provider rate limit before being sent.",
    ["model"],
    buckets=(0.0, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)
RATELIMIT_REFUSED = Counter(
    "shadowcanary_ratelimit_refused_total",
    "Acquires given up because the wait would exceed the caller's max_wait_s.",
    ["model"],
)
RATELIMIT_PENALTIES = Counter(
    "shadowcanary_ratelimit_penalties_total",
    "Upstream 429s that paused the shared limiter for every worker.",
    ["model"],
)

_MICROS = 1_000_000

# KEYS: [1] rpm TAT, [2] tpm TAT, [3] blocked-until; all integer microseconds of Redis time.
# ARGV: [1] µs per request (0 = no RPM limit), [2] RPM burst in requests,
#       [3] µs per token (0 = no TPM limit), [4] TPM burst in tokens,
#       [5] tokens of this request, [6] longest wait in µs the caller accepts (-1 = any).
# Returns {granted 0/1, wait µs until the slot, what set the wait: rpm|tpm|penalty|''}.
_RESERVE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local max_wait = tonumber(ARGV[6])

local wait, reason = 0, ''
local blocked = tonumber(redis.call('GET', KEYS[3]) or '0')
if blocked > now then wait, reason = blocked - now, 'penalty' end

local limits = {
  {key = KEYS[1], interval = tonumber(ARGV[1]), burst = tonumber(ARGV[2]), cost = 1, name = 'rpm'},
  {key = KEYS[2], interval = tonumber(ARGV[3]), burst = tonumber(ARGV[4]),
   cost = tonumber(ARGV[5]), name = 'tpm'},
}
for _, l in ipairs(limits) do
  if l.interval > 0 then
    local tat = tonumber(redis.call('GET', l.key) or '0')
    if tat < now then tat = now end
    l.tat = tat
    -- A request bigger than the whole burst is admitted once the bucket is full
    -- (tat == now) and leaves the bucket in debt, so it cannot wait forever; the debt
    -- delays everyone after it, keeping the long-run rate at the limit.
    local admit = math.min(l.cost, l.burst)
    local w = tat + (admit - l.burst) * l.interval - now
    if w > wait then wait, reason = w, l.name end
  end
end

wait = math.ceil(wait)
if max_wait >= 0 and wait > max_wait then
  return {0, wait, reason}
end

local start = now + wait
for _, l in ipairs(limits) do
  if l.interval > 0 then
    local new_tat = math.ceil(math.max(l.tat, start) + l.cost * l.interval)
    -- Once its TAT has passed a key means "bucket full", same as absent: let it expire.
    local ttl_ms = math.ceil((new_tat - now) / 1000) + 1000
    redis.call('SET', l.key, string.format('%.0f', new_tat), 'PX', ttl_ms)
  end
end
return {1, wait, reason}
"""

# The reservation above for many requests in one call, in order, each as if it had
# called alone at the same instant (no max_wait: every request is granted a slot).
# KEYS as above. ARGV: [1]-[4] as above, [5..] tokens of each request.
# Returns {wait µs 1, reason 1, wait µs 2, reason 2, ...}.
_RESERVE_MANY_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local blocked = tonumber(redis.call('GET', KEYS[3]) or '0')
local limits = {
  {key = KEYS[1], interval = tonumber(ARGV[1]), burst = tonumber(ARGV[2]), tokens = false,
   name = 'rpm'},
  {key = KEYS[2], interval = tonumber(ARGV[3]), burst = tonumber(ARGV[4]), tokens = true,
   name = 'tpm'},
}
for _, l in ipairs(limits) do
  if l.interval > 0 then
    local tat = tonumber(redis.call('GET', l.key) or '0')
    if tat < now then tat = now end
    l.tat = tat
  end
end
local out = {}
for i = 5, #ARGV do
  local tokens = tonumber(ARGV[i])
  local wait, reason = 0, ''
  if blocked > now then wait, reason = blocked - now, 'penalty' end
  for _, l in ipairs(limits) do
    if l.interval > 0 then
      l.cost = l.tokens and tokens or 1
      local admit = math.min(l.cost, l.burst)
      local w = l.tat + (admit - l.burst) * l.interval - now
      if w > wait then wait, reason = w, l.name end
    end
  end
  wait = math.ceil(wait)
  for _, l in ipairs(limits) do
    if l.interval > 0 then
      l.tat = math.ceil(math.max(l.tat, now + wait) + l.cost * l.interval)
    end
  end
  out[#out + 1] = wait
  out[#out + 1] = reason
end
for _, l in ipairs(limits) do
  if l.interval > 0 then
    redis.call('SET', l.key, string.format('%.0f', l.tat), 'PX',
               math.ceil((l.tat - now) / 1000) + 1000)
  end
end
return out
"""

# KEYS: [1] blocked-until (µs of Redis time). ARGV: [1] pause in µs (0 = only read).
# Extends the pause, never shortens it; returns the µs left of the pause.
_PAUSE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = now + math.ceil(tonumber(ARGV[1]))
if wanted > current and wanted > now then
  redis.call('SET', KEYS[1], string.format('%.0f', wanted),
             'PX', math.ceil((wanted - now) / 1000) + 1)
  current = wanted
end
return math.max(0, current - now)
"""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A provider quota for one model; ``None`` means that dimension is unlimited.

    ``burst_s`` is how many seconds' worth of quota may be spent at once after an idle
    period (at least one request). One second keeps us inside providers that enforce
    e.g. 60,000 RPM as 1,000 per second.
    """

    requests_per_minute: int | None
    tokens_per_minute: int | None
    burst_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(
                    f"rate limit {name}={value} must be a positive integer",
                    hint="use None (unset) for no limit",
                )
        if not self.burst_s > 0:
            raise ConfigError(f"rate limit burst_s={self.burst_s} must be > 0")

    @classmethod
    def from_endpoint(cls, endpoint: ModelEndpoint) -> RateLimit:
        """The quota configured for a model endpoint in Settings."""
        return cls(endpoint.requests_per_minute, endpoint.tokens_per_minute)


def _gcra(per_minute: int | None, burst_s: float) -> tuple[float, float]:
    """(µs per unit, burst in units) of one limit, or (0, 0) when it is unlimited."""
    if per_minute is None:
        return 0.0, 0.0
    per_second = per_minute / 60.0
    return _MICROS / per_second, max(1.0, per_second * burst_s)


@dataclass(frozen=True, slots=True)
class _Reservation:
    granted: bool
    wait_s: float
    reason: str


class RedisRateLimiter:
    """The shared RPM + TPM limiter of one model, for all coroutines of a worker process.

    Build the Redis client on ``redis.asyncio.BlockingConnectionPool``: redis-py's
    default async pool fails at 100 connections instead of waiting for one.

    Token counts are the caller's estimate (prompt + max output tokens). That is also
    what OpenAI counts against TPM when the request arrives, so nothing is refunded
    when the answer turns out shorter.

    Keys: ``rate_limit_key(model, "rpm" | "tpm" | "blocked")``. On Redis Cluster the
    three keys must share a hash slot, which these names do not guarantee.
    """

    def __init__(self, redis: redis.asyncio.Redis, model: str, limit: RateLimit) -> None:
        self._redis = redis
        self.model = model
        self.limit = limit
        self._keys = [
            rate_limit_key(model, "rpm"),
            rate_limit_key(model, "tpm"),
            rate_limit_key(model, "blocked"),
        ]
        self._gcra_args = [
            *_gcra(limit.requests_per_minute, limit.burst_s),
            *_gcra(limit.tokens_per_minute, limit.burst_s),
        ]
        self._reserve_script: AsyncScript = redis.register_script(_RESERVE_LUA)
        self._reserve_many_script: AsyncScript = redis.register_script(_RESERVE_MANY_LUA)
        self._pause_script: AsyncScript = redis.register_script(_PAUSE_LUA)
        # Concurrent acquires share Redis round trips (see coalesce.py).
        self._reservations: Coalescer[int, _Reservation] = Coalescer(self._reserve_many)
        self._pause_reads: Coalescer[None, float] = Coalescer(self._pause_left_many)

    async def acquire(self, tokens: int, *, max_wait_s: float | None = None) -> float:
        """Wait until both RPM and TPM allow this request; return the seconds waited.

        Raises:
            UpstreamRateLimited: the wait would exceed ``max_wait_s``; nothing was
                reserved and ``retry_after_s`` says when it could be granted.
            ServiceUnavailable: Redis cannot be reached.
        """
        started = time.monotonic()
        while True:
            budget = None
            if max_wait_s is not None:
                budget = max(0.0, max_wait_s - (time.monotonic() - started))
            slot = await self._reserve(tokens, budget)
            if not slot.granted:
                RATELIMIT_REFUSED.labels(self.model).inc()
                raise UpstreamRateLimited(
                    f"shared rate limit for model {self.model!r} ({slot.reason}) needs a "
                    f"{slot.wait_s:.2f}s wait, more than max_wait_s={max_wait_s}",
                    retry_after_s=slot.wait_s,
                    hint="retry the replay later; if this persists, demand exceeds the "
                    "configured requests_per_minute/tokens_per_minute of this model",
                )
            if slot.wait_s == 0:
                return self._waited(started)
            log.debug("ratelimit.wait", model=self.model, wait_s=slot.wait_s, cause=slot.reason)
            # Cancelled while asleep, the slot is simply lost: under-using the quota is safe.
            await asyncio.sleep(slot.wait_s)
            # A 429 seen by another worker while we slept pauses everyone. Slots that
            # fell inside the pause are void; take a new one, which the script places
            # after the pause and spaced out, so the retries do not all fire at once.
            if await self._pause_left_s() == 0:
                return self._waited(started)

    async def try_acquire(self, tokens: int) -> float:
        """Take a slot only if one is free right now: 0.0 if granted, else seconds until one is."""
        slot = await self._reserve(tokens, 0.0)
        return 0.0 if slot.granted else slot.wait_s

    async def penalize(self, seconds: float) -> float:
        """Pause every worker for this model (the provider's Retry-After after a 429).

        Extends an existing pause, never shortens it. Returns the seconds the pause
        now lasts.
        """
        if not seconds >= 0 or math.isinf(seconds):
            raise ValueError(f"penalty must be a finite number of seconds >= 0, got {seconds}")
        left = await self._run(self._pause_script, [self._keys[2]], [math.ceil(seconds * _MICROS)])
        RATELIMIT_PENALTIES.labels(self.model).inc()
        log.info("ratelimit.paused", model=self.model, requested_s=seconds, pause_s=left / _MICROS)
        return float(left) / _MICROS

    async def _pause_left_s(self) -> float:
        return await self._pause_reads.submit(None)

    async def _pause_left_many(self, callers: list[None]) -> list[float]:
        left = await self._run(self._pause_script, [self._keys[2]], [0])
        return [float(left) / _MICROS] * len(callers)

    async def _reserve_many(self, tokens: list[int]) -> list[_Reservation]:
        flat = await self._run(self._reserve_many_script, self._keys, [*self._gcra_args, *tokens])
        return [
            _Reservation(True, float(wait_us) / _MICROS, _text(reason))
            for wait_us, reason in zip(flat[::2], flat[1::2], strict=True)
        ]

    async def _reserve(self, tokens: int, max_wait_s: float | None) -> _Reservation:
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        if max_wait_s is None:
            return await self._reservations.submit(tokens)
        max_wait_us = -1 if max_wait_s is None else math.floor(max_wait_s * _MICROS)
        args = [*self._gcra_args, tokens, max_wait_us]
        granted, wait_us, reason = await self._run(self._reserve_script, self._keys, args)
        return _Reservation(
            granted=bool(granted),
            wait_s=float(wait_us) / _MICROS,
            reason=_text(reason),
        )

    async def _run(self, script: AsyncScript, keys: list[str], args: list[float]) -> Any:
        try:
            return await script(keys=keys, args=[repr(a) for a in args])
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise redis_unavailable(f"rate limiter for model {self.model!r}", exc) from exc

    def _waited(self, started: float) -> float:
        waited = time.monotonic() - started
        RATELIMIT_WAIT.labels(self.model).observe(waited)
        return waited


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def redis_unavailable(subject: str, exc: Exception) -> ServiceUnavailable:
    """The transient error for a Redis call that failed, with the likely fix."""
    if "Too many connections" in str(exc):
        # redis-py's default async pool raises at 100 connections instead of waiting,
        # and a worker keeps hundreds of replays in flight.
        return ServiceUnavailable(
            f"{subject}: the Redis connection pool is exhausted ({exc})",
            hint="build the worker's client on redis.asyncio.BlockingConnectionPool, or "
            "give its pool more max_connections than replay.max_in_flight",
        )
    return ServiceUnavailable(
        f"{subject} cannot reach Redis: {exc}",
        hint="check SHADOWCANARY_REDIS_URL and that Redis is up; replays wait for it",
    )
