"""Benchmark of the tap against the naive "one Celery message per call", side by side.

Starts its own redis-server and measures, in one run:

(a) the caller-side cost of ``Tap.emit`` (median and p99 over many calls, with the
    background thread publishing at the same time, as in production);
(b) sustained events/s that actually land in Redis: events decoded from the Celery
    messages on the ingest queue, counted until all published events are there;
(c) the naive approach: ``send_task`` of one event per call, timed on the caller.

Usage: ``python bench/tap_emit.py [--emit-calls 200000] [--events 200000]``.
The last stdout line is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psutil
import redis
from celery import Celery

from shadowcanary import constants
from shadowcanary.events import (
    Arm,
    CapturedCall,
    ChatMessage,
    ModelRequest,
    ModelResponse,
    now_utc,
)
from shadowcanary.settings import TapSettings
from shadowcanary.tap import publisher
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.publisher import decode_ingest_message
from shadowcanary.testing.servers import RedisServer

SYSTEM_PROMPT = (
    "You are a helpful customer-support assistant for Acme Corp. Answer briefly and politely. "
    "If the customer asks about an order, ask for the order number. Never reveal internal notes. "
    "Prices are in USD."
)


def realistic_events(n: int, pii_share: float = 1.0) -> list[CapturedCall]:
    """Small chat events like a support bot's: constant system prompt, varying user text.

    A ``pii_share`` of the user messages carry an email address (redacted on the way).
    """
    start = now_utc()
    events = []
    every = max(1, round(1 / pii_share)) if pii_share > 0 else n + 1
    for i in range(n):
        contact = f"customer{i}@example.com" if i % every == 0 else "the number on my account"
        events.append(
            CapturedCall(
                event_id=uuid.uuid4().hex,
                started_at=start,
                ended_at=start + timedelta(milliseconds=812),
                route="support",
                rollout="gpt-5.5-migration",
                arm=Arm.BASELINE,
                model="gpt-5.2",
                request=ModelRequest(
                    messages=[
                        ChatMessage(role="system", content=SYSTEM_PROMPT),
                        ChatMessage(
                            role="user",
                            content=f"Hi, my order #{1000 + i} placed last Tuesday has not arrived "
                            f"yet. Can you check where it is? You can reach me at {contact}.",
                        ),
                    ],
                    parameters={"temperature": 0.2, "max_tokens": 256},
                ),
                response=ModelResponse(
                    text=f"I'm sorry order #{1000 + i} hasn't arrived yet. It left our warehouse "
                    "on Thursday and should reach you within two business days; a tracking "
                    "email is on its way.",
                    finish_reason="stop",
                ),
                latency_ms=812.0,
                ttft_ms=140.0,
                prompt_tokens=92,
                completion_tokens=41,
            )
        )
    return events


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure_emit(url: str, events: list[CapturedCall], calls: int) -> tuple[float, float, dict]:
    """(a): per-call cost of Tap.emit on this thread while the tap publishes."""
    clock = time.perf_counter_ns
    durations = [0] * calls
    pool = len(events)
    with Tap(TapSettings(), url) as tap:
        emit = tap.emit
        for i in range(calls):
            event = events[i % pool]
            t0 = clock()
            emit(event)
            durations[i] = clock() - t0
        stats = tap.stats()
    us = [d / 1000 for d in durations]
    return (
        statistics.median(us),
        percentile(us, 0.99),
        {
            "emitted": stats.emitted,
            "dropped_buffer_full": stats.dropped["buffer_full"],
        },
    )


def landed_events(client: redis.Redis) -> int:
    """Events inside the Celery messages on the ingest queue, decoded from the bodies."""
    return sum(
        len(decode_ingest_message(raw)) for raw in client.lrange(constants.QUEUE_INGEST, 0, -1)
    )


def measure_throughput(url: str, events: list[CapturedCall], total: int) -> tuple[float, dict]:
    """(b): sustained events/s landing in Redis, the producer backing off when the buffer fills."""
    client = redis.Redis.from_url(url)
    client.flushall()
    settings = TapSettings(buffer_size=50_000, batch_size=1_000)
    tap = Tap(settings, url)
    pool = len(events)
    high_water = settings.buffer_size // 2
    started = time.perf_counter()
    for i in range(total):
        tap.emit(events[i % pool])
        if i % 1000 == 0:
            while tap.stats().buffer_depth > high_water:
                time.sleep(0.0005)
    # The publishing thread's CPU per event so far (its time vanishes once it ends): on
    # a shared machine this says what the wall-clock figure would be on an idle one.
    cpu_s = _thread_cpu_s(tap._thread.native_id)
    cpu_published = tap.stats().published
    tap.close(timeout_s=120)
    # A publish returns once Redis has acknowledged the LPUSH: the clock stops here, and
    # what actually landed is then counted from the queue itself (not timed).
    elapsed = time.perf_counter() - started
    stats = tap.stats()
    deadline = time.monotonic() + 60
    landed = landed_events(client)
    while landed < stats.published and time.monotonic() < deadline:
        time.sleep(0.05)
        landed = landed_events(client)
    client.close()
    return landed / elapsed, {
        "landed": landed,
        "published": stats.published,
        "dropped": stats.dropped_total,
        "elapsed_s": round(elapsed, 3),
        "publisher_cpu_us_per_event": round(cpu_s / max(cpu_published, 1) * 1e6, 2),
    }


def _thread_cpu_s(native_id: int | None) -> float:
    """CPU seconds (user + system) used so far by one thread of this process."""
    for thread in psutil.Process().threads():
        if thread.id == native_id:
            return float(thread.user_time + thread.system_time)
    return float("nan")


def measure_naive(url: str, events: list[CapturedCall], calls: int) -> float:
    """(c): one send_task per event on the caller's thread (p50 µs), no redaction."""
    app = Celery("naive", broker=url, set_as_current=False)
    send = app.send_task
    for event in events[:50]:  # connect and warm up
        send(
            constants.TASK_INGEST,
            args=[[event.model_dump(mode="json")]],
            queue=constants.QUEUE_INGEST,
        )
    durations = []
    for i in range(calls):
        event = events[i % len(events)]
        t0 = time.perf_counter_ns()
        send(
            constants.TASK_INGEST,
            args=[[event.model_dump(mode="json")]],
            queue=constants.QUEUE_INGEST,
        )
        durations.append((time.perf_counter_ns() - t0) / 1000)
    app.close()
    return statistics.median(durations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emit-calls", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--naive-calls", type=int, default=3_000)
    parser.add_argument(
        "--distinct", type=int, default=5_000, help="distinct events cycled through"
    )
    parser.add_argument(
        "--pii-share", type=float, default=1.0, help="share of events carrying an email (0..1)"
    )
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="sc-bench-redis-"))
    server = RedisServer(directory).start()
    try:
        events = realistic_events(args.distinct, args.pii_share)
        emit_p50, emit_p99, emit_info = measure_emit(server.url, events, args.emit_calls)
        print(f"(a) Tap.emit: p50 {emit_p50:.2f} us, p99 {emit_p99:.2f} us  {emit_info}")
        events_per_s, info = measure_throughput(server.url, events, args.events)
        compressor = publisher.compress.__module__
        print(
            f"(b) sustained: {events_per_s:,.0f} events/s landed in Redis  {info}  "
            f"(batches compressed by {compressor})"
        )
        naive_p50 = measure_naive(server.url, events, args.naive_calls)
        print(f"(c) naive send_task per event: p50 {naive_p50:.1f} us")
        result = {
            "emit_p50_us": round(emit_p50, 3),
            "emit_p99_us": round(emit_p99, 3),
            "events_per_s": round(events_per_s),
            "naive_delay_p50_us": round(naive_p50, 1),
            "speedup_p50": round(naive_p50 / emit_p50, 1),
            # The machine is shared: the 1-minute load average the figures were taken at.
            "publisher_cpu_us_per_event": info["publisher_cpu_us_per_event"],
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
        print(json.dumps(result))
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
