"""kill -9 of the gateway while streams are in flight; a new gateway takes the traffic."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field

import openai
import pytest

from shadowcanary.launcher.gateway import GatewayHandle, run_gateway
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.store.db import make_engine
from shadowcanary.testing.poll import wait_until
from tests.faults.stack import settle
from tests.gateway.conftest import ROLLOUT, base_env, set_flag

pytestmark = pytest.mark.integration

CLIENTS = 8


@dataclass
class StreamingClients:
    """Threads streaming chat completions through whichever gateway is current."""

    gateway: GatewayHandle
    completed: list[float] = field(default_factory=list)  # monotonic time of each full answer
    failed: list[float] = field(default_factory=list)
    in_flight: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, worker_id: int) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            gateway = self.gateway
            client = openai.OpenAI(
                base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0, timeout=10
            )
            with self._lock:
                self.in_flight += 1
            try:
                stream = client.chat.completions.create(
                    model="gpt-5.2",
                    messages=[{"role": "user", "content": f"Question {n} from client {worker_id}"}],
                    user=f"user-{worker_id}-{n}",
                    stream=True,
                )
                for _ in stream:
                    pass
                self.completed.append(time.monotonic())
            except openai.APIError:
                self.failed.append(time.monotonic())
                self.stop.wait(0.2)  # the gateway is gone: the next one comes up soon
            finally:
                with self._lock:
                    self.in_flight -= 1
                client.close()


def test_gateway_killed_mid_stream_loses_at_most_its_last_flush(
    redis_url: str, database_url: str, worker_env: dict[str, str], sim: SimHandle
) -> None:
    """Streams in flight fail fast; a restarted gateway serves; every stored event is settled."""
    engine = make_engine(database_url)
    set_flag(database_url, 0)
    env = base_env(redis_url, database_url, sim)
    # Streams long enough that several are in flight at any moment.
    sim.set_profile("gpt-5.2", median_ms=600, p99_ms=900)
    try:
        with run_worker(worker_env) as worker, run_gateway(env, startup_timeout_s=90) as first:
            clients = StreamingClients(first)
            threads = [
                threading.Thread(target=clients.run, args=(i,), daemon=True) for i in range(CLIENTS)
            ]
            for thread in threads:
                thread.start()
            wait_until(
                lambda: len(clients.completed) >= 30 and clients.in_flight >= CLIENTS // 2,
                timeout_s=60,
                what="streams completing and in flight",
            )
            os.kill(first.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            completed_before = sum(t < killed_at for t in clients.completed)
            recently = sum(t >= killed_at - 0.25 for t in clients.completed if t < killed_at)
            wait_until(
                lambda: any(t >= killed_at for t in clients.failed),
                timeout_s=15,
                what="the in-flight streams failing",
            )
            with run_gateway(env, startup_timeout_s=90) as second:
                clients.gateway = second
                wait_until(
                    lambda: sum(t > killed_at for t in clients.completed) >= 20,
                    timeout_s=60,
                    what="the new gateway serving",
                )
                clients.stop.set()
                for thread in threads:
                    thread.join(timeout=15)
                total_completed = len(clients.completed)
                books = settle(
                    engine, ROLLOUT, total_completed - recently, diagnostics=worker.output
                )
    finally:
        sim.set_profile("gpt-5.2", median_ms=5, p99_ms=20)

    # Only events still in the killed gateway's memory (its last flush interval) may be
    # missing; every stream that had completed before that is stored.
    assert len(books.stored) >= total_completed - recently
    assert len(books.stored) >= completed_before - recently
    assert not books.unaccounted and not books.both
    assert books.live_rollup_requests == len(books.stored)
    assert books.shadow_rollup_n == books.compared
