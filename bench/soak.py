"""Soak: the full data path at a steady rate for ``--seconds``; nothing lost, nothing doubled.

Starts its own Redis (AOF, as docker-compose runs it), PostgreSQL, simulator,
``--workers`` Celery worker processes and, unless ``--no-gateway``, the gateway with
a few client threads. The tap (in this process) emits ``--rate`` captured calls per
second for ``--seconds``; afterwards the script waits for the queues to drain and
reads the books from Postgres.

Reported: throughput (events settled per second until the last one settled, and
events accepted per second while emitting); end-to-end lag emit -> comparison
stored, p50/p99, with the candidate call's own latency subtracted (the simulated
models answer in ~1 ms anyway); the queue depths sampled every second; the RSS of
every process at the start (after warm-up) and at the end. The baseline measured in
the same run is the first window of the soak: ``lag_p99_ratio`` is the last
window's p99 over the first one's (1.0 = no degradation over time). Last stdout
line, one JSON object:
events_per_s, lag_p50_ms, lag_p99_ms, lost, duplicated, rss_growth_pct, ...
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import openai
import psutil
import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine

from shadowcanary import constants
from shadowcanary.events import now_utc
from shadowcanary.launcher.sim import run_simulator
from shadowcanary.launcher.worker import run_worker
from shadowcanary.settings import TapSettings
from shadowcanary.store.db import make_engine, migrate
from shadowcanary.tap.emitter import Tap
from shadowcanary.testing.factories import make_event
from shadowcanary.testing.servers import PostgresServer, RedisServer

ROLLOUT = "soak"
# Near-zero model latency: the lag measured is our pipeline's, not the model's.
PROFILES: dict[str, dict[str, Any]] = {
    "gpt-5.2": {"median_ms": 1, "p99_ms": 3, "sampling_noise": 0.0},
    "gpt-5.5": {"median_ms": 1, "p99_ms": 3, "diverge_from": "gpt-5.2", "divergence": 0.05},
}


def _models(base_url: str) -> str:
    return json.dumps(
        {
            "gpt-5.2": {
                "base_url": base_url,
                "input_usd_per_mtok": 1.75,
                "output_usd_per_mtok": 14,
            },
            "gpt-5.5": {"base_url": base_url, "input_usd_per_mtok": 5, "output_usd_per_mtok": 30},
        }
    )


class Emitter(threading.Thread):
    """``rate`` captured baseline calls per second through a real tap."""

    def __init__(self, tap: Tap, rate: float, seconds: float) -> None:
        super().__init__(daemon=True)
        self.tap, self.rate, self.seconds = tap, rate, seconds
        self.emitted = 0

    def run(self) -> None:
        template = make_event(rollout=ROLLOUT, latency_ms=5.0)
        started = time.monotonic()
        # Emit in small bursts every 10 ms: a timer per event costs more than the emit.
        while (elapsed := time.monotonic() - started) < self.seconds:
            due = int(elapsed * self.rate) - self.emitted
            end = now_utc()
            begin = end - timedelta(milliseconds=5)
            for _ in range(max(0, due)):
                event = template.model_copy(
                    update={"event_id": os.urandom(16).hex(), "started_at": begin, "ended_at": end}
                )
                self.tap.emit(event)
                self.emitted += 1
            time.sleep(0.01)


class GatewayClients:
    """A few threads sending non-streamed calls through the gateway at ``rate`` per second."""

    def __init__(self, base_url: str, api_key: str, rate: float, threads: int = 4) -> None:
        self.ok = 0
        self.failed = 0
        self._stop = threading.Event()
        self._period = threads / rate
        self._threads = [
            threading.Thread(target=self._run, args=(base_url, api_key, i), daemon=True)
            for i in range(threads)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _run(self, base_url: str, api_key: str, index: int) -> None:
        client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=10)
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                client.chat.completions.create(
                    model="gpt-5.2",
                    messages=[{"role": "user", "content": f"soak question {n}"}],
                    user=f"soak-{index}-{n}",
                )
                self.ok += 1
            except openai.APIError:
                self.failed += 1
            self._stop.wait(self._period)


def _rss_by_process(pids: dict[str, int]) -> dict[str, int]:
    """RSS in bytes of each named process (Postgres: with its backends)."""
    out: dict[str, int] = {}
    for name, pid in pids.items():
        try:
            proc = psutil.Process(pid)
            children = proc.children(recursive=True) if name == "postgres" else []
            out[name] = proc.memory_info().rss + sum(c.memory_info().rss for c in children)
        except psutil.Error:
            out[name] = 0
    return out


def _cpu_by_process(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) each named process has used (Postgres: with its backends)."""
    out: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            proc = psutil.Process(pid)
            family = [proc, *(proc.children(recursive=True) if name == "postgres" else [])]
            out[name] = sum(sum(p.cpu_times()[:2]) for p in family)
        except psutil.Error:
            out[name] = 0.0
    return out


def _books(engine: Engine) -> dict[str, int]:
    queries = {
        "stored": "select count(*) from captures where rollout = :r",
        "compared": "select count(*) from comparisons where rollout = :r and kind = 'candidate'",
        "dead_lettered": "select count(distinct d.event_id) from dead_letters d "
        "join captures c using (event_id) where c.rollout = :r and d.stage = 'replay'",
        "both": "select count(*) from captures c where c.rollout = :r and exists (select 1 "
        "from comparisons m where m.event_id = c.event_id and m.kind = 'candidate') and "
        "exists (select 1 from dead_letters d where d.event_id = c.event_id)",
        "live_rollup": "select coalesce(sum(requests), 0) from live_rollups where rollout = :r",
        "shadow_rollup": "select coalesce(sum(n), 0) from shadow_rollups "
        "where rollout = :r and kind = 'candidate'",
    }
    with engine.connect() as conn:
        return {
            k: int(conn.execute(text(q), {"r": ROLLOUT}).scalar() or 0) for k, q in queries.items()
        }


def _lag_ms(engine: Engine, since_s: float = 0.0, until_s: float = 1e9) -> dict[str, float]:
    """p50/p99 of (comparison stored - call ended - candidate call latency), in ms.

    Only calls that started between ``since_s`` and ``until_s`` after the first one.
    Also the two stages: call ended -> capture stored (tap, broker, ingest) and capture
    stored -> comparison stored (replay scheduling, model call excluded, recording).
    """
    sql = """
        with t as (
            select extract(epoch from m.recorded_at - c.started_at) * 1000
                   - c.latency_ms - coalesce(r.latency_ms, 0) as lag,
                   extract(epoch from c.received_at - c.started_at) * 1000
                   - c.latency_ms as ingest,
                   extract(epoch from m.recorded_at - c.received_at) * 1000
                   - coalesce(r.latency_ms, 0) as replay,
                   extract(epoch from c.started_at - min(c.started_at) over ()) as at_s
            from comparisons m join captures c using (event_id)
            join replays r on r.event_id = m.event_id and r.kind = m.kind
            where c.rollout = :r and m.kind = 'candidate'
        )
        select percentile_cont(0.5) within group (order by lag),
               percentile_cont(0.99) within group (order by lag),
               percentile_cont(0.99) within group (order by ingest),
               percentile_cont(0.99) within group (order by replay), count(*)
        from t where at_s >= :since and at_s < :until
    """
    with engine.connect() as conn:
        p50, p99, ingest_p99, replay_p99, n = conn.execute(
            text(sql), {"r": ROLLOUT, "since": since_s, "until": until_s}
        ).one()
    return {
        "p50": float(p50 or 0),
        "p99": float(p99 or 0),
        "ingest_p99": float(ingest_p99 or 0),
        "replay_p99": float(replay_p99 or 0),
        "n": int(n),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=500.0, help="events/s through the tap")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--gateway-rate", type=float, default=20.0)
    parser.add_argument("--no-gateway", action="store_true")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument(
        "--flush-interval",
        type=float,
        default=TapSettings().flush_interval_s,
        help="the tap's flush interval (s): how many events each ingest batch carries",
    )
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="sc-soak-"))
    with ExitStack() as stack:
        redis_server = RedisServer(scratch / "redis", appendonly=True).start()
        stack.callback(redis_server.stop)
        pg = PostgresServer(scratch / "pg", durable=True)
        if os.geteuid() == 0:
            scratch.chmod(0o755)
        pg.start()
        stack.callback(pg.stop)
        migrate(pg.url)
        engine = make_engine(pg.url, pool_size=2)
        sim = stack.enter_context(run_simulator(PROFILES))
        env = {
            "SHADOWCANARY_DATABASE_URL": pg.url,
            "SHADOWCANARY_REDIS_URL": redis_server.url,
            "SHADOWCANARY_MODELS": _models(sim.base_url),
            "SHADOWCANARY_LOG_LEVEL": "warning",
        }
        workers = [
            stack.enter_context(run_worker(env, name=f"soak{i}")) for i in range(args.workers)
        ]
        pids = {f"worker{i}": w.proc.pid for i, w in enumerate(workers)}
        pids["simulator"] = _sim_pid(sim.port)
        pids["redis"] = redis_server.pid() or 0
        pids["postgres"] = _postmaster_pid(pg)
        pids["tap_process"] = os.getpid()
        clients = None
        if not args.no_gateway:
            from shadowcanary.launcher.gateway import run_gateway

            gateway = stack.enter_context(
                run_gateway(
                    {
                        **env,
                        "SHADOWCANARY_GATEWAY__ROUTES": json.dumps(
                            {"default": {"rollout": ROLLOUT}}
                        ),
                    },
                    startup_timeout_s=90,
                )
            )
            pids["gateway"] = gateway.pid
            clients = GatewayClients(gateway.base_url, gateway.api_key, args.gateway_rate)
        tap = Tap(TapSettings(flush_interval_s=args.flush_interval), redis_server.url)
        emitter = Emitter(tap, args.rate, args.seconds)
        queue = redis.Redis.from_url(redis_server.url)
        depths: list[int] = []
        cpu_start = _cpu_by_process(pids)
        started = time.monotonic()
        emitter.start()
        if clients is not None:
            clients.start()
        # RSS is compared from the end of a warm-up (pools, caches and allocator arenas
        # filled): a tenth of the run, between 10 and 60 s. Sampled every 10 s after
        # that, so a leak (steady slope) can be told from a plateau.
        warmup = max(10.0, min(60.0, args.seconds / 10))
        rss_samples: list[tuple[float, dict[str, int]]] = []
        while emitter.is_alive():
            depths.append(
                int(queue.llen(constants.QUEUE_INGEST)) + int(queue.llen(constants.QUEUE_REPLAY))
            )
            at = time.monotonic() - started
            if at >= warmup + 10 * len(rss_samples):
                rss_samples.append((at, _rss_by_process(pids)))
            time.sleep(1.0)
        emit_s = time.monotonic() - started
        if clients is not None:
            clients.stop()
        tap.close(timeout_s=10)
        stats = tap.stats()
        rss_end = _rss_by_process(pids)
        rss_samples.append((time.monotonic() - started, rss_end))
        rss_start = rss_samples[0][1]
        rss_middle = rss_samples[len(rss_samples) // 2][1]
        expected = stats.published + (clients.ok if clients else 0)
        deadline = time.monotonic() + args.drain_timeout
        books = _books(engine)
        while time.monotonic() < deadline and (
            books["stored"] < expected
            or books["compared"] + books["dead_lettered"] < books["stored"]
        ):
            time.sleep(1.0)
            books = _books(engine)
        drained_s = time.monotonic() - started - emit_s
        cpu_end = _cpu_by_process(pids)
        window = max(10.0, args.seconds / 6)
        lag = _lag_ms(engine)
        first = _lag_ms(engine, 0.0, window)
        last = _lag_ms(engine, args.seconds - window)
        queue.close()
    shutil.rmtree(scratch, ignore_errors=True)

    # The pipeline's own processes. Postgres and Redis hold cache and backlog; the
    # simulator stands in for the model API and its answer cache fills up to its bound
    # (8,192 answers): all three are reported by process but not held to the target.
    ours = [n for n in rss_start if n not in ("redis", "postgres", "simulator")]
    growth = {
        n: 100.0 * (rss_end[n] - rss_start[n]) / rss_start[n] for n in rss_start if rss_start[n]
    }
    second_half = {
        n: 100.0 * (rss_end[n] - rss_middle[n]) / rss_middle[n] for n in ours if rss_middle[n]
    }
    lost = max(0, expected - books["stored"]) + max(
        0, books["stored"] - books["compared"] - books["dead_lettered"]
    )
    duplicated = (
        books["both"]
        + abs(books["live_rollup"] - books["stored"])
        + abs(books["shadow_rollup"] - books["compared"])
    )
    print(f"emitted {stats.emitted} (published {stats.published}, dropped {stats.dropped_total})")
    if clients is not None:
        print(f"gateway calls ok {clients.ok}, failed {clients.failed}")
    print(f"books {books}; drained {drained_s:.1f}s after the last emit")
    print(f"queue depth max {max(depths, default=0)}, last {depths[-1] if depths else 0}")
    print(f"lag first window p99 {first['p99']:.0f} ms, last window p99 {last['p99']:.0f} ms")
    for name in rss_start:
        timeline = " ".join(f"{sample[name] / 2**20:.0f}" for _, sample in rss_samples)
        print(f"rss {name} (MiB, every 10 s from {rss_samples[0][0]:.0f} s): {timeline}")
    settled = books["compared"] + books["dead_lettered"]
    cpu_ms_per_event = {
        n: round(1000 * (cpu_end.get(n, 0.0) - cpu_start.get(n, 0.0)) / max(1, settled), 2)
        for n in cpu_start
    }
    print(f"CPU ms per settled event: {cpu_ms_per_event}")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    result: dict[str, Any] = {
        "seconds": args.seconds,
        "rate": args.rate,
        # Settled (compared or dead-lettered) per second, until the last one settled:
        # what the pipeline sustains, whatever the offered rate.
        "events_per_s": round(
            (books["compared"] + books["dead_lettered"]) / (emit_s + drained_s), 1
        ),
        "accepted_per_s": round(books["stored"] / emit_s, 1),
        "drain_s": round(drained_s, 1),
        "lag_p50_ms": round(lag["p50"], 1),
        "lag_p99_ms": round(lag["p99"], 1),
        "lag_ingest_p99_ms": round(lag["ingest_p99"], 1),
        "lag_replay_p99_ms": round(lag["replay_p99"], 1),
        "lag_p99_ratio": round(last["p99"] / first["p99"], 2) if first["p99"] else None,
        "queue_depth_max": max(depths, default=0),
        "lost": lost,
        "duplicated": duplicated,
        "dropped_by_tap": stats.dropped_total,
        "rss_growth_pct": round(max((growth[n] for n in ours), default=0.0), 1),
        "rss_growth_second_half_pct": round(max(second_half.values(), default=0.0), 1),
        "rss_growth_pct_by_process": {n: round(g, 1) for n, g in growth.items()},
        "cpu_ms_per_event": cpu_ms_per_event,
        "load_avg_1m": round(load[0], 2),
    }
    print(json.dumps(result))


def _sim_pid(port: int) -> int:
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            return int(conn.pid or 0)
    return 0


def _postmaster_pid(server: PostgresServer) -> int:
    pidfile = server.directory / "data" / "postmaster.pid"
    try:
        return int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return 0


if __name__ == "__main__":
    main()
