"""Replays per second of ONE worker process against a 300 ms simulated candidate.

Side by side in the same run:
- shadowcanary's worker: threads pool handing batches to one asyncio loop
  (hundreds of replays in flight), batched reads and writes;
- the naive default: prefork with concurrency 2, one synchronous OpenAI call and one
  transaction per task (bench/naive_app.py).

Starts its own Redis, PostgreSQL and simulator. Last stdout line is one JSON object:
replays_per_s, in_flight_max, naive_replays_per_s, speedup.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy import Engine, text

from shadowcanary import constants
from shadowcanary.events import now_utc
from shadowcanary.launcher.sim import run_simulator
from shadowcanary.launcher.worker import REPO_ROOT, run_worker
from shadowcanary.store.db import make_engine, migrate
from shadowcanary.store.repository import AssessedCapture, Store
from shadowcanary.testing.factories import make_event
from shadowcanary.testing.servers import PostgresServer, RedisServer, free_port

PROFILES: dict[str, dict[str, Any]] = {
    "gpt-5.2": {"median_ms": 300, "p99_ms": 900},
    "gpt-5.5": {"median_ms": 300, "p99_ms": 900, "diverge_from": "gpt-5.2", "divergence": 0.1},
}


def _create_database(server: PostgresServer, name: str) -> str:
    admin = make_engine(server.url, pool_size=1)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = server.url.rsplit("/", 1)[0] + f"/{name}"
    migrate(url)
    return url


def _seed(url: str, n: int) -> list[str]:
    store = Store(make_engine(url, pool_size=2))
    events = [make_event(model="gpt-5.2", rollout="bench") for _ in range(n)]
    for start in range(0, n, 1000):
        chunk = events[start : start + 1000]
        store.insert_captures(
            [AssessedCapture(e, None, None) for e in chunk], received_at=now_utc()
        )
    return [e.event_id for e in events]


def _replayed(url: str) -> int:
    engine = make_engine(url, pool_size=1)
    try:
        return _count_replays(engine)
    finally:
        engine.dispose()


def _count_replays(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("select count(*) from replays")).scalar_one())


def _wait_replayed(url: str, target: int, timeout_s: float) -> float:
    # One connection for the whole wait: a new one per poll would fork a Postgres
    # backend each time, CPU taken from the worker being measured on a small machine.
    engine = make_engine(url, pool_size=1)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if _count_replays(engine) >= target:
                return time.monotonic()
            time.sleep(0.1)
        raise TimeoutError(f"only {_count_replays(engine)} of {target} replays after {timeout_s}s")
    finally:
        engine.dispose()


def _poll_in_flight(port: int, stop: threading.Event, seen: list[float]) -> None:
    pattern = re.compile(r"^shadowcanary_worker_replays_in_flight (\S+)$", re.M)
    while not stop.is_set():
        try:
            body = (
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1)
                .read()
                .decode()
            )
            match = pattern.search(body)
            if match:
                seen.append(float(match.group(1)))
        except OSError:
            pass
        # Every scrape costs the worker CPU (the process collector reads /proc): 4/s.
        stop.wait(0.25)


def run_ours(url: str, redis_url: str, base_url: str, n: int, batch: int) -> tuple[float, float]:
    ids = _seed(url, n)
    producer = Celery("bench", broker=redis_url, set_as_current=False)
    with producer.connection_for_write() as conn:
        for start in range(0, n, batch):
            producer.send_task(
                constants.TASK_REPLAY,
                args=[ids[start : start + batch]],
                queue=constants.QUEUE_REPLAY,
                connection=conn,
            )
    metrics_port = free_port()
    env = {
        "SHADOWCANARY_DATABASE_URL": url,
        "SHADOWCANARY_REDIS_URL": redis_url,
        "SHADOWCANARY_MODELS": json.dumps(
            {"gpt-5.2": {"base_url": base_url}, "gpt-5.5": {"base_url": base_url}}
        ),
        "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0",
        "SHADOWCANARY_REPLAY__BATCH_SIZE": str(batch),
        "SHADOWCANARY_METRICS_PORT": str(metrics_port),
        "SHADOWCANARY_LOG_LEVEL": "warning",
    }
    seen: list[float] = []
    stop = threading.Event()
    with run_worker(env, queues=[constants.QUEUE_REPLAY], ready_timeout_s=60):
        started = time.monotonic()
        poller = threading.Thread(
            target=_poll_in_flight, args=(metrics_port, stop, seen), daemon=True
        )
        poller.start()
        finished = _wait_replayed(url, n, timeout_s=300)
        stop.set()
    return n / (finished - started), max(seen, default=0.0)


def run_naive(url: str, redis_url: str, base_url: str, seconds: float) -> float:
    n = int(seconds * 20) + 50  # more than two processes can finish in the window
    ids = _seed(url, n)
    producer = Celery("bench-naive", broker=redis_url, set_as_current=False)
    with producer.connection_for_write() as conn:
        for event_id in ids:
            producer.send_task("naive.replay", args=[event_id], connection=conn)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHADOWCANARY_")},
        "NAIVE_BROKER_URL": redis_url,
        "NAIVE_DATABASE_URL": url,
        "NAIVE_BASE_URL": base_url,
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.naive_app",
            "worker",
            "-P",
            "prefork",
            "-c",
            "2",
            "-l",
            "warning",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while _replayed(url) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        first, started = _replayed(url), time.monotonic()
        time.sleep(seconds)  # a fixed measurement window, not synchronisation
        done = _replayed(url) - first
        return done / (time.monotonic() - started)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    # Enough that the ramp-up and the last batch's latency tail, both inside the timed
    # span, are a small share of it (at 500/s: 24 s).
    parser.add_argument("--events", type=int, default=12_000)
    parser.add_argument("--naive-seconds", type=float, default=20.0)
    parser.add_argument("--batch-size", type=int, default=64, help="events per replay task")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="sc-bench-"))
    redis = RedisServer(scratch / "redis").start()
    pg = PostgresServer(Path(tempfile.mkdtemp(prefix="sc-bench-pg-"))).start()
    try:
        with run_simulator(PROFILES) as sim:
            ours_url = _create_database(pg, "bench_ours")
            naive_url = _create_database(pg, "bench_naive")
            replays_per_s, in_flight_max = run_ours(
                ours_url, redis.url, sim.base_url, args.events, args.batch_size
            )
            print(
                f"shadowcanary worker: {replays_per_s:,.0f} replays/s, "
                f"in flight max {in_flight_max:.0f}"
            )
            naive = run_naive(naive_url, redis.url, sim.base_url, args.naive_seconds)
            print(f"naive prefork -c 2:  {naive:,.1f} replays/s")
            load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            print(f"load average (1, 5, 15 min) at the end: {load}")
    finally:
        redis.stop()
        pg.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        json.dumps(
            {
                "replays_per_s": round(replays_per_s, 1),
                "in_flight_max": in_flight_max,
                "naive_replays_per_s": round(naive, 2),
                "speedup": round(replays_per_s / naive, 1) if naive else None,
            }
        )
    )


if __name__ == "__main__":
    main()
