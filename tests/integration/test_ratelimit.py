"""The shared RPM/TPM limiter against a real Redis, across real OS processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from structlog.testing import capture_logs

from shadowcanary.constants import rate_limit_key
from shadowcanary.errors import ConfigError, ServiceUnavailable, UpstreamRateLimited
from shadowcanary.limits.ratelimit import RateLimit, RedisRateLimiter
from tests.integration.redis_async import client, run

pytestmark = pytest.mark.integration

MODEL = "gpt-test"
PROCESS_DEADLINE_S = 60.0
# Redis TIME (the limiter's clock) and time.monotonic() tick at rates that differ by
# NTP's slew at most, plus the script's µs rounding: a millisecond covers both.
CLOCK_SLACK_S = 0.001


class Stopwatch:
    """Local time since a step began: an upper bound on how far the limiter's clock moved.

    The limiter reads Redis's clock inside each script call, so a wait it reports is the
    full wait minus the time that passed since the reference call. On a loaded machine
    that time is anything, so the tests bound waits by what was measured, never by a
    guess of how fast the machine is.
    """

    def __init__(self) -> None:
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def assert_wait(wait: float, full_s: float, since: Stopwatch) -> None:
    """``wait`` is ``full_s`` less at most the time elapsed since ``since`` started."""
    elapsed = since.elapsed()
    assert max(0.0, full_s - elapsed) - CLOCK_SLACK_S <= wait <= full_s + CLOCK_SLACK_S, (
        f"wait {wait:.4f}s, expected {full_s}s minus at most the {elapsed:.4f}s elapsed"
    )


def slept(logs: list[dict[str, Any]]) -> list[float]:
    """The waits the limiter decided to sleep (its debug line before each sleep)."""
    return [entry["wait_s"] for entry in logs if entry["event"] == "ratelimit.wait"]


# --- helpers running in spawned processes (module level so 'spawn' can import them) ---


def _hammer(
    url: str,
    limit: RateLimit,
    token_choices: Sequence[int],
    duration_s: float,
    start: Any,
    results: Any,
) -> None:
    """Acquire from 20 coroutines as fast as the limiter allows.

    Reports (asked at, returned at, tokens, waited) per grant: the slot lies between the
    two wall times, however late the scheduler ran the coroutine.
    """

    async def main() -> list[tuple[float, float, int, float]]:
        r = client(url)
        limiter = RedisRateLimiter(r, MODEL, limit)
        grants: list[tuple[float, float, int, float]] = []
        end = time.monotonic() + duration_s

        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            while (left := end - time.monotonic()) > 0:
                tokens = rng.choice(token_choices)
                asked_at = time.time()
                try:
                    # Wait past the end if need be: a process the scheduler started late
                    # finds its slots queued behind the other's, and must still progress.
                    waited = await limiter.acquire(tokens, max_wait_s=left + duration_s)
                except UpstreamRateLimited:
                    return
                grants.append((asked_at, time.time(), tokens, waited))

        await asyncio.gather(*(worker(seed) for seed in range(20)))
        await r.aclose()
        return grants

    start.wait(timeout=PROCESS_DEADLINE_S)
    results.put(asyncio.run(main()))


def _acquire_once(url: str, limit: RateLimit, start: Any, results: Any) -> None:
    """Acquire one request after the second start signal; report (grant wall time, waited)."""

    async def main() -> tuple[float, float]:
        r = client(url)
        waited = await RedisRateLimiter(r, MODEL, limit).acquire(1)
        granted_at = time.time()
        await r.aclose()
        return granted_at, waited

    start.wait(timeout=PROCESS_DEADLINE_S)  # ready: imports done
    start.wait(timeout=PROCESS_DEADLINE_S)  # go: the penalty is in place
    results.put(asyncio.run(main()))


def _in_processes(
    target: Callable[..., None], args_per_process: Sequence[tuple[Any, ...]]
) -> list[Any]:
    """Run ``target`` in fresh interpreters released together; return what each reported."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(len(args_per_process) + 1)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, start, results)) for a in args_per_process]
    try:
        for p in procs:
            p.start()
        start.wait(timeout=PROCESS_DEADLINE_S)
        reports = [results.get(timeout=PROCESS_DEADLINE_S) for _ in procs]
        for p in procs:
            p.join(timeout=PROCESS_DEADLINE_S)
            assert p.exitcode == 0
        return reports
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()


def _max_in_window(grants: list[tuple[float, float, int, float]], window_s: float) -> int:
    """The largest sum of weights of grants known to fall inside one window of this length.

    A grant is known to lie in [asked at, returned at]; only grants whose whole interval
    fits count, so a coroutine woken late can never make the limiter look too generous.
    """
    best = 0
    for window_start, _, _, _ in grants:
        window_end = window_start + window_s
        total = sum(w for asked, got, w, _ in grants if asked >= window_start and got <= window_end)
        best = max(best, total)
    return best


# --- across processes ---


@pytest.mark.parametrize(
    ("limit", "token_choices", "per_second", "biggest"),
    [
        # 600 RPM = 10 requests/s, 1 s burst = 10 requests
        (RateLimit(requests_per_minute=600, tokens_per_minute=None), (1,), 10.0, 1),
        # 60,000 TPM = 1,000 tokens/s, 1 s burst = 1,000 tokens, requests of mixed weight
        (
            RateLimit(requests_per_minute=None, tokens_per_minute=60_000),
            (10, 50, 100, 200),
            1000.0,
            200,
        ),
    ],
    ids=["rpm", "tpm"],
)
def test_limit_holds_across_two_processes(
    redis_url: str,
    limit: RateLimit,
    token_choices: tuple[int, ...],
    per_second: float,
    biggest: int,
) -> None:
    """Two processes hammering one model stay within burst + rate x window; both progress."""
    duration_s = 2.0
    reports = _in_processes(_hammer, [(redis_url, limit, token_choices, duration_s)] * 2)

    assert all(reports), "each process must get grants (progress, not fairness)"
    union = [tuple(grant) for report in reports for grant in report]
    burst = per_second * limit.burst_s
    for window_s in (0.1, 0.5, 1.0, duration_s):
        allowed = burst + per_second * window_s + biggest
        assert _max_in_window(union, window_s) <= allowed, f"window {window_s}s"
    # The limiter is what held them back: both processes had acquires told to wait.
    assert all(any(waited > 0 for *_, waited in report) for report in reports)


def test_penalize_pauses_other_processes(redis_url: str) -> None:
    """A 429 penalty set here holds back an acquire in another process until it ends."""
    limit = RateLimit(requests_per_minute=6000, tokens_per_minute=None)
    penalty_s = 1.5
    penalized_at: list[float] = []

    async def penalize() -> None:
        r = client(redis_url)
        penalized_at.append(time.time())
        await RedisRateLimiter(r, MODEL, limit).penalize(penalty_s)
        await r.aclose()

    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(2), ctx.Queue()
    proc = ctx.Process(target=_acquire_once, args=(redis_url, limit, start, results))
    try:
        proc.start()
        # The spawned interpreter takes a while to import; penalize once it is ready.
        start.wait(timeout=PROCESS_DEADLINE_S)
        asyncio.run(penalize())
        start.wait(timeout=PROCESS_DEADLINE_S)
        granted_at, waited = results.get(timeout=PROCESS_DEADLINE_S)
        proc.join(timeout=PROCESS_DEADLINE_S)
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()

    # Redis TIME and time.time() read the same clock here; allow the µs rounding.
    assert granted_at >= penalized_at[0] + penalty_s - 0.005
    assert waited > 0, "the other process must have waited, not merely started late"


# --- in one process ---


def test_burst_then_spacing(redis_url: str) -> None:
    """A full bucket grants the burst at once; the next request is told to wait one interval."""

    async def scenario(r: redis.asyncio.Redis) -> None:
        limiter = RedisRateLimiter(r, MODEL, RateLimit(600, None))  # 10 req/s, burst 10
        since_first = Stopwatch()
        assert [await limiter.try_acquire(1) for _ in range(10)] == [0.0] * 10
        assert_wait(await limiter.try_acquire(1), 0.1, since_first)
        with capture_logs() as logs:
            waited = await limiter.acquire(1)
        [planned] = slept(logs) or [0.0]  # none if the machine was slow enough to refill
        assert_wait(planned, 0.1, since_first)
        assert waited >= planned
        # State expires by itself once idle: no key lives forever.
        assert 0 < await r.pttl(rate_limit_key(MODEL, "rpm")) <= 2000

    run(redis_url, scenario)


def test_both_limits_apply_at_once(redis_url: str) -> None:
    """With RPM free but TPM spent, the request waits for TPM, and the reason says so."""

    async def scenario(r: redis.asyncio.Redis) -> None:
        limiter = RedisRateLimiter(r, MODEL, RateLimit(6000, 600))  # 100 req/s, 10 tok/s
        since_first = Stopwatch()
        assert await limiter.try_acquire(10) == 0.0
        wait = await limiter.try_acquire(10)
        assert_wait(wait, 1.0, since_first)  # 10 tokens at 10/s, though RPM has room
        with pytest.raises(UpstreamRateLimited, match=r"\(tpm\)"):
            await limiter.acquire(10, max_wait_s=0.0)

    run(redis_url, scenario)


def test_request_bigger_than_the_burst_is_granted_on_a_full_bucket(redis_url: str) -> None:
    """A request over the whole TPM burst goes when the bucket is full, then others pay its debt."""

    async def scenario(r: redis.asyncio.Redis) -> None:
        limiter = RedisRateLimiter(r, MODEL, RateLimit(None, 6000))  # 100 tok/s, burst 100
        since_first = Stopwatch()
        assert await limiter.try_acquire(300) == 0.0
        # 300 tokens on a 100-token bucket: 200 in debt, so 1 more token waits 2.01 s
        assert_wait(await limiter.try_acquire(1), 2.01, since_first)

    run(redis_url, scenario)


def test_max_wait_exceeded_raises_with_retry_after_and_reserves_nothing(redis_url: str) -> None:
    """Too short a max_wait_s raises UpstreamRateLimited with the wait; no slot is taken."""

    async def scenario(r: redis.asyncio.Redis) -> None:
        # 1 request per 10 s, burst 1: far longer than any pause of a loaded machine.
        limiter = RedisRateLimiter(r, MODEL, RateLimit(6, None))
        since_first = Stopwatch()
        with capture_logs() as logs:
            await limiter.acquire(1)
            with pytest.raises(UpstreamRateLimited) as err:
                await limiter.acquire(1, max_wait_s=0.2)
        assert slept(logs) == [], "the first is granted at once; the second gives up, unslept"
        assert err.value.retry_after_s is not None
        assert_wait(err.value.retry_after_s, 10.0, since_first)
        assert "gpt-test" in str(err.value) and "rpm" in str(err.value)
        # Nothing was reserved: the next slot is still 10 s after the first, not 20 s.
        assert_wait(await limiter.try_acquire(1), 10.0, since_first)

    run(redis_url, scenario)


def test_penalty_voids_a_slot_that_falls_inside_it(redis_url: str) -> None:
    """A request sleeping towards its slot when a penalty lands waits for the penalty's end."""

    async def scenario(r: redis.asyncio.Redis) -> None:
        limiter = RedisRateLimiter(r, MODEL, RateLimit(60, None))  # 1 req/s, burst 1
        await limiter.acquire(1)
        first_tat = await r.get(rate_limit_key(MODEL, "rpm"))
        waiter = asyncio.create_task(limiter.acquire(1))  # its slot: ~1 s from now
        deadline = time.monotonic() + 5
        while await r.get(rate_limit_key(MODEL, "rpm")) == first_tat:
            assert time.monotonic() < deadline, "the waiter never reserved its slot"
            await asyncio.sleep(0.005)
        penalized_at = time.time()
        assert await limiter.penalize(1.5) == pytest.approx(1.5, abs=0.01)
        await asyncio.wait_for(waiter, timeout=5)
        assert time.time() >= penalized_at + 1.5 - 0.005

    run(redis_url, scenario)


def test_penalties_extend_and_never_shorten(redis_url: str) -> None:
    """A shorter penalty after a longer one leaves the longer one; unlimited models obey it too."""

    async def scenario(r: redis.asyncio.Redis) -> None:
        limiter = RedisRateLimiter(r, MODEL, RateLimit(None, None))
        assert [await limiter.try_acquire(10**9) for _ in range(100)] == [0.0] * 100
        since_penalty = Stopwatch()
        assert await limiter.penalize(30) == pytest.approx(30, abs=CLOCK_SLACK_S)
        assert_wait(await limiter.penalize(1), 30, since_penalty)
        assert_wait(await limiter.try_acquire(1), 30, since_penalty)
        with pytest.raises(UpstreamRateLimited, match="penalty") as err:
            await limiter.acquire(1, max_wait_s=1.0)
        assert (err.value.retry_after_s or 0) > 29
        # other models are not paused
        other = RedisRateLimiter(r, "another-model", RateLimit(None, None))
        assert await other.try_acquire(1) == 0.0

    run(redis_url, scenario)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"requests_per_minute": 0, "tokens_per_minute": None},
        {"requests_per_minute": None, "tokens_per_minute": -1},
        {"requests_per_minute": 60, "tokens_per_minute": None, "burst_s": 0.0},
    ],
)
def test_nonsense_limits_are_config_errors(kwargs: dict[str, Any]) -> None:
    """A zero/negative limit or burst is a ConfigError, not a limiter that never grants."""
    with pytest.raises(ConfigError):
        RateLimit(**kwargs)


def test_redis_unreachable_is_a_transient_service_error(tmp_path: Path) -> None:
    """With Redis unreachable, acquire raises ServiceUnavailable (a retry can fix it)."""
    url = f"unix://{tmp_path / 'no-redis.sock'}"

    async def scenario(r: redis.asyncio.Redis) -> None:
        limiter = RedisRateLimiter(r, MODEL, RateLimit(60, None))
        with pytest.raises(ServiceUnavailable, match="cannot reach Redis"):
            await limiter.acquire(1)

    run(url, scenario)


def _script_calls(info: dict[str, Any]) -> int:
    return sum(int(v["calls"]) for k, v in info.items() if k in ("evalsha", "eval"))


def test_concurrent_acquires_share_redis_calls_and_keep_the_spacing(redis_url: str) -> None:
    """200 coroutines acquiring at once cost a few script calls, and are still spaced out."""

    async def scenario(r: redis.asyncio.Redis) -> None:
        limiter = RedisRateLimiter(r, MODEL, RateLimit(6000, None))  # 100 req/s, burst 100
        await r.config_resetstat()
        reserving = Stopwatch()
        waits = await asyncio.gather(*(limiter._reserve(1, None) for _ in range(200)))
        # Each script call reads Redis's clock anew: a wait can be short by the time
        # that passed between the first call and its own.
        spread = reserving.elapsed()
        calls = _script_calls(await r.info("commandstats"))
        assert calls <= 10, f"{calls} script calls for 200 reservations"
        # One slot each, in arrival order: the burst at once, then one every 10 ms.
        offsets = sorted(w.wait_s for w in waits)
        assert offsets[:100] == [0.0] * 100
        for i, wait in enumerate(offsets[100:], start=1):
            assert i * 0.01 - spread - CLOCK_SLACK_S <= wait <= i * 0.01 + CLOCK_SLACK_S, (i, wait)
        assert {w.reason for w in waits[100:]} == {"rpm"}

    run(redis_url, scenario)


def test_coalesced_acquires_wait_out_a_penalty(redis_url: str) -> None:
    """Batched reservations honour a 429 pause like single ones: nobody goes before it ends."""

    async def scenario(r: redis.asyncio.Redis) -> None:
        limiter = RedisRateLimiter(r, MODEL, RateLimit(60_000, None))  # 1,000 req/s
        await limiter.penalize(0.5)
        started = time.monotonic()
        waited = await asyncio.gather(*(limiter.acquire(1) for _ in range(50)))
        assert min(waited) >= 0.45 and time.monotonic() - started >= 0.5 - 0.01

    run(redis_url, scenario)
