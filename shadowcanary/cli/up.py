"""``shadowcanary up``: the whole data path on one machine, with a live view.

Starts the model simulator (baseline and candidate), a Celery worker and a traffic
generator whose calls go through the tapped OpenAI client, exactly as a service's
would; shows live counts; at the end waits for the replays to catch up and prints
the status. Postgres and Redis are the embedded ones unless URLs are configured.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import redis
import structlog
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel

from shadowcanary import constants
from shadowcanary.cli.status_view import collect_status, render_status
from shadowcanary.events import Arm
from shadowcanary.launcher.embedded_services import ServiceUrls
from shadowcanary.launcher.sim import SimHandle, run_simulator
from shadowcanary.launcher.traffic import TrafficMix, arm_for_user
from shadowcanary.launcher.worker import run_worker
from shadowcanary.settings import Settings
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.openai_wrapper import tap_openai

log = structlog.get_logger(__name__)

ROLLOUT = "local-demo"
_CATCH_UP_TIMEOUT_S = 90.0


class TrafficGenerator:
    """Calls the (simulated) baseline or candidate per user, through tapped OpenAI clients."""

    def __init__(self, settings: Settings, tap: Tap, sim: SimHandle, canary_percent: float) -> None:
        self._settings = settings
        self._mix = TrafficMix()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="traffic")
        self.calls = 0
        self.failures = 0

        self._clients: dict[tuple[str, Arm], openai.OpenAI] = {}
        for route in ("support", "coding", "extraction", "orders"):
            for arm in Arm:
                client = openai.OpenAI(base_url=sim.base_url, api_key=sim.api_key, max_retries=0)
                self._clients[(route, arm)] = tap_openai(
                    client,
                    tap,
                    route=route,
                    rollout=ROLLOUT,
                    arm=arm,
                    stickiness_salt=settings.stickiness_salt.get_secret_value(),
                )
        self._canary_percent = canary_percent

    def run(self, rate: float, duration_s: float | None) -> None:
        """Issue ``rate`` calls per second until stopped or ``duration_s`` passes."""
        started = time.monotonic()
        interval = 1.0 / rate
        next_at = started
        while not self._stop.is_set():
            if duration_s is not None and time.monotonic() - started >= duration_s:
                break
            call = self._mix.next_call()
            arm = arm_for_user(call.user_id, self._canary_percent)
            model = (
                self._settings.candidate_model
                if arm is Arm.CANDIDATE
                else self._settings.baseline_model
            )
            self._pool.submit(
                self._one, self._clients[(call.route, arm)], model, call.user_id, call.kwargs
            )
            next_at += interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _one(self, client: openai.OpenAI, model: str, user: str, kwargs: Mapping[str, Any]) -> None:
        try:
            client.chat.completions.create(model=model, user=user, **kwargs)
        except openai.OpenAIError:
            self.failures += 1  # the live error is captured by the tap; the caller moves on
        finally:
            self.calls += 1

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True)


def _view(status: dict[str, Any], traffic: TrafficGenerator, tap: Tap, phase: str) -> Group:
    stats = tap.stats()
    header = Panel(
        f"[bold]{phase}[/]  live calls: {traffic.calls:,} (failed {traffic.failures:,})  "
        f"tap: emitted {stats.emitted:,}, published {stats.published:,}, "
        f"dropped {stats.dropped_total:,}, buffered {stats.buffer_depth:,}",
        title="shadowcanary up (simulated models)",
    )
    return Group(header, render_status(status))


def run_local_stack(
    settings: Settings,
    urls: ServiceUrls,
    *,
    env: Mapping[str, str],
    duration_s: float | None,
    rate: float,
    canary_percent: float,
    sim_port: int,
    console: Console,
) -> dict[str, Any]:
    """Run simulator + worker + traffic; return the final status data."""
    with run_simulator(None, port=sim_port) as sim:
        worker_env = {k: v for k, v in env.items() if k.startswith("SHADOWCANARY_")}
        with (
            run_worker(worker_env, name="local") as _worker,
            Tap(settings.tap, urls.broker_url) as tap,
        ):
            traffic = TrafficGenerator(settings, tap, sim, canary_percent)
            runner = threading.Thread(target=traffic.run, args=(rate, duration_s), daemon=True)
            runner.start()
            with Live(console=console, refresh_per_second=2, transient=False) as live:
                try:
                    while runner.is_alive():
                        live.update(
                            _view(collect_status(settings, urls, ROLLOUT), traffic, tap, "running")
                        )
                        runner.join(timeout=1.0)
                except KeyboardInterrupt:
                    live.update(
                        _view(collect_status(settings, urls, ROLLOUT), traffic, tap, "stopping")
                    )
                traffic.stop()
                tap.close()
                status = _wait_for_replays(settings, urls, live, traffic, tap)
    return status


def _wait_for_replays(
    settings: Settings, urls: ServiceUrls, live: Live, traffic: TrafficGenerator, tap: Tap
) -> dict[str, Any]:
    client = redis.Redis.from_url(urls.redis_url, socket_timeout=2)
    deadline = time.monotonic() + _CATCH_UP_TIMEOUT_S
    try:
        while True:
            status = collect_status(settings, urls, ROLLOUT)
            pending = _pending_tasks(client)
            live.update(_view(status, traffic, tap, f"waiting for {pending} queued tasks"))
            if pending == 0 or time.monotonic() > deadline:
                live.update(_view(status, traffic, tap, "done"))
                return status
            time.sleep(1.0)
    finally:
        client.close()


def _pending_tasks(client: redis.Redis) -> int:
    """Tasks waiting in the queues or held unacknowledged by a worker (kombu's keys)."""
    queued = sum(int(client.llen(q)) for q in (constants.QUEUE_INGEST, constants.QUEUE_REPLAY))
    return queued + int(client.hlen("unacked"))
