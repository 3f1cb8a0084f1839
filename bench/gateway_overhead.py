"""What the gateway adds: direct calls to the simulator vs the same calls through the gateway.

Starts its own redis-server (for the tap), the model simulator at (nearly) zero
latency, and the gateway; then measures, in one run, side by side:

- latency at 1 client, non-streamed: p50/p99 direct vs through the gateway
  (``added_p50_ms``, ``added_p99_ms`` are the differences);
- time to first content chunk at 1 client, streamed (``added_ttft_p50_ms``);
- throughput at 64 concurrent clients, non-streamed (``direct_rps``, ``gateway_rps``)
  and streamed (``*_stream_rps``).

The client, the gateway and the simulator share this machine's cores, so the
through-gateway throughput is bounded by all three. Every call goes through the
gateway's full path: auth, routing by flag (a route with a rollout at 50 %),
upstream call, relay, event built and emitted to the tap (published to Redis).

Usage: ``python -m bench.gateway_overhead [--seconds 5] [--workers 2] [--clients 64]``.
The gateway runs 2 processes by default (sharing one listening socket, as
``docker-compose.yml`` deploys it); ``--workers 1`` measures a single process.
The last stdout line is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httptools
import uvloop

from flags.base import FlagSpec
from flags.embedded import EmbeddedFlags
from shadowcanary.launcher.gateway import run_gateway
from shadowcanary.launcher.sim import SIM_API_KEY, run_simulator
from shadowcanary.store.db import make_engine, migrate
from shadowcanary.testing.servers import PostgresServer, RedisServer

ZERO = {"median_ms": 0.001, "p99_ms": 0.001, "sampling_noise": 0.0}
PROFILES = {"gpt-5.2": ZERO, "gpt-5.5": {**ZERO, "diverge_from": "gpt-5.2", "divergence": 0.1}}
FLAG = FlagSpec(
    name="bench-flag",
    project="default",
    environment="development",
    stickiness="userId",
    baseline_model="gpt-5.2",
    candidate_model="gpt-5.5",
)


def _flag_at_half(database_url: str) -> None:
    """The embedded flag the gateway routes by, at 50 %: both arms get traffic."""
    migrate(database_url)
    engine = make_engine(database_url, pool_size=1)
    try:
        flags = EmbeddedFlags(engine)
        flags.ensure_flag(FLAG)
        flags.set_rollout(FLAG.name, 50)
    finally:
        engine.dispose()


def _body(i: int, stream: bool) -> bytes:
    return json.dumps(
        {
            "model": "gpt-5.2",
            "messages": [
                {"role": "system", "content": "You are a helpful support assistant."},
                {"role": "user", "content": f"Where is my order number {i % 500}? It is late."},
            ],
            "user": f"user-{i % 1000}",
            "stream": stream,
        }
    ).encode()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of the load generator, parsed with httptools.

    Not aiohttp: the client shares the two cores with the gateway and the simulator,
    and aiohttp's client costs about 250 µs of CPU per call, more than the simulator.
    httptools (the parser uvicorn uses) keeps the client at a fraction of that, so the
    figures say more about the gateway and less about the load generator.
    """

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[int] | None = None
        self.first_content_at: float | None = None
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        if self.first_content_at is None and b'"content":"' in body:
            self.first_content_at = time.perf_counter()
        if len(self.body) < 400:
            self.body += body[:400]

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("server closed the connection"))

    async def call(self, request: bytes) -> tuple[float, float | None]:
        assert self.transport is not None
        self.done = asyncio.get_running_loop().create_future()
        self.first_content_at = None
        self.body = bytearray()
        started = time.perf_counter()
        self.transport.write(request)
        status = await self.done
        elapsed = time.perf_counter() - started
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {bytes(self.body)!r}")
        ttft = self.first_content_at - started if self.first_content_at is not None else None
        return elapsed, ttft


def _request(url: str, key: str, body: bytes) -> bytes:
    parts = urlsplit(url)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connect(url: str) -> _Connection:
    parts = urlsplit(url)
    _, protocol = await asyncio.get_running_loop().create_connection(
        _Connection, parts.hostname, parts.port
    )
    return protocol


async def _run(
    url: str, key: str, *, clients: int, seconds: float, stream: bool, warmup: int = 200
) -> dict[str, Any]:
    # Requests built up front: the load generator's own work stays out of the figures.
    requests = [_request(url, key, _body(i, stream)) for i in range(1000)]
    connections = [await _connect(url) for _ in range(clients)]
    for i in range(warmup):
        await connections[i % clients].call(requests[i % len(requests)])
    latencies: list[float] = []
    ttfts: list[float] = []
    deadline = time.perf_counter() + seconds
    counter = itertools.count()

    async def client(connection: _Connection) -> None:
        while time.perf_counter() < deadline:
            latency, ttft = await connection.call(requests[next(counter) % len(requests)])
            latencies.append(latency)
            if ttft is not None:
                ttfts.append(ttft)

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in connections))
    elapsed = time.perf_counter() - started
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()
    out = {
        "n": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": _pct(latencies, 0.5) * 1000,
        "p99_ms": _pct(latencies, 0.99) * 1000,
    }
    if ttfts:
        out["ttft_p50_ms"] = statistics.median(ttfts) * 1000
    return out


def _measure(
    label: str, run: Callable[..., Any], results: dict[str, Any], **kwargs: Any
) -> dict[str, Any]:
    result: dict[str, Any] = uvloop.run(run(**kwargs))
    results[label] = result
    shown = ", ".join(
        f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()
    )
    print(f"{label:<28} {shown}  (load {os.getloadavg()[0]:.2f})", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput phase")
    parser.add_argument(
        "--workers", type=int, default=2, help="gateway processes (2: as docker-compose runs it)"
    )
    parser.add_argument("--clients", type=int, default=64)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="sc-bench-gw-"))
    redis_server = RedisServer(scratch / "redis")
    # Its own temporary directory: the postgres OS user must be able to enter it.
    postgres = PostgresServer(Path(tempfile.mkdtemp(prefix="sc-bench-gw-pg-")))
    redis_server.start()
    postgres.start()
    _flag_at_half(postgres.url)
    results: dict[str, Any] = {"load_avg_1m_start": round(os.getloadavg()[0], 2)}
    try:
        with run_simulator(PROFILES) as sim:
            models = {
                name: {"base_url": sim.base_url, "api_key": SIM_API_KEY}
                for name in ("gpt-5.2", "gpt-5.5")
            }
            env = {
                "SHADOWCANARY_REDIS_URL": redis_server.url,
                "SHADOWCANARY_MODELS": json.dumps(models),
                "SHADOWCANARY_LOG_LEVEL": "warning",
                "SHADOWCANARY_GATEWAY__WORKERS": str(args.workers),
                "SHADOWCANARY_DATABASE_URL": postgres.url,
                "SHADOWCANARY_GATEWAY__ROUTES": json.dumps(
                    {"default": {"rollout": "bench", "flag": FLAG.name}}
                ),
                "SHADOWCANARY_FLAGS": "embedded",
            }
            with run_gateway(env) as gateway:
                direct = f"{sim.base_url}/chat/completions"
                through = f"{gateway.base_url}/chat/completions"
                for stream in (False, True):
                    tag = "stream" if stream else "plain"
                    for clients in (1, args.clients):
                        for name, url, key in (
                            ("direct", direct, SIM_API_KEY),
                            ("gateway", through, gateway.api_key),
                        ):
                            _measure(
                                f"{name} {tag} c={clients}",
                                _run,
                                results,
                                url=url,
                                key=key,
                                stream=stream,
                                clients=clients,
                                seconds=args.seconds,
                            )
    finally:
        redis_server.stop()
        postgres.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(postgres.directory, ignore_errors=True)
    c = args.clients

    def figure(label: str, key: str) -> float:
        return float(results[label][key])

    def added(label: str, key: str) -> float:
        return round(figure(f"gateway {label}", key) - figure(f"direct {label}", key), 3)

    summary = {
        "added_p50_ms": added("plain c=1", "p50_ms"),
        "added_p99_ms": added("plain c=1", "p99_ms"),
        "added_ttft_p50_ms": added("stream c=1", "ttft_p50_ms"),
        "gateway_rps": round(figure(f"gateway plain c={c}", "rps"), 1),
        "direct_rps": round(figure(f"direct plain c={c}", "rps"), 1),
        "gateway_stream_rps": round(figure(f"gateway stream c={c}", "rps"), 1),
        "direct_stream_rps": round(figure(f"direct stream c={c}", "rps"), 1),
        f"added_p50_ms_c{c}": added(f"plain c={c}", "p50_ms"),
        "rps_ratio": round(
            figure(f"gateway plain c={c}", "rps") / figure(f"direct plain c={c}", "rps"), 3
        ),
        "gateway_workers": args.workers,
        "load_avg_1m_start": results["load_avg_1m_start"],
        "load_avg_1m_end": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
