"""``shadowcanary up``: the whole data path on one machine, with a live view.

Starts the model simulator (baseline and candidate), a Celery worker and a traffic
generator whose calls go through the tapped OpenAI client, exactly as a service's
would; shows live counts; at the end waits for the replays to catch up and prints
the status. Postgres and Redis are the embedded ones unless URLs are configured.

With ``rollout=NAME`` the traffic is routed per user by that rollout's flag, as a
service's would be, so a controller running beside it steps the plan through its
percentages; without it, ``local-demo`` is fed at a fixed canary percent
(``shadowcanary.cli.up_models`` says what is simulated and which rollout is fed).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai
import redis
import structlog
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel

from shadowcanary import constants
from shadowcanary.cli.status_view import collect_status, render_status
from shadowcanary.cli.up_models import (
    DEFAULT_ROLLOUT,
    UpTarget,
    default_plan,
    simulator_profiles,
    target_of,
    worker_models_json,
)
from shadowcanary.errors import ConfigError
from shadowcanary.events import Arm
from shadowcanary.launcher.embedded_services import ServiceUrls
from shadowcanary.launcher.sim import SimHandle, run_simulator
from shadowcanary.launcher.traffic import TrafficMix, arm_for_user
from shadowcanary.launcher.worker import run_worker
from shadowcanary.rollout_records import RolloutStatus
from shadowcanary.settings import Settings
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.openai_wrapper import tap_openai

if TYPE_CHECKING:
    from flags.router import ModelRouter

log = structlog.get_logger(__name__)

_CATCH_UP_TIMEOUT_S = 90.0
_ROUTES = ("support", "coding", "extraction", "orders")
_FLAG_REFRESH_S = 1.0  # how soon the traffic follows a step the controller takes


class TrafficGenerator:
    """Calls the (simulated) baseline or candidate per user, through tapped OpenAI clients.

    With a ``router`` the flag picks each user's model (the tap records the arm);
    without, ``canary_percent`` of users go to the candidate.
    """

    def __init__(
        self,
        settings: Settings,
        tap: Tap,
        sim: SimHandle,
        target: UpTarget,
        *,
        canary_percent: float,
        router: ModelRouter | None = None,
    ) -> None:
        self._target = target
        self._mix = TrafficMix()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="traffic")
        self.calls = 0
        self.failures = 0

        self._clients: dict[tuple[str, Arm], openai.OpenAI] = {}
        for route in _ROUTES:
            for arm in Arm:
                client = openai.OpenAI(base_url=sim.base_url, api_key=sim.api_key, max_retries=0)
                self._clients[(route, arm)] = tap_openai(
                    client,
                    tap,
                    route=route,
                    rollout=target.rollout,
                    arm=Arm.BASELINE if router is not None else arm,
                    stickiness_salt=settings.stickiness_salt.get_secret_value(),
                    model_router=router,
                )
        # Routed by the flag: every call asks for the baseline; the router swaps it.
        self._canary_percent = 0.0 if router is not None else canary_percent

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
            model = self._target.candidate if arm is Arm.CANDIDATE else self._target.baseline
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


def prepare_rollout(settings: Settings, urls: ServiceUrls, rollout: str | None) -> UpTarget:
    """The rollout to feed: ``rollout`` as started, or ``local-demo`` (started, paused).

    Raises:
        RolloutNotFound: ``rollout`` was never started (the hint names the known ones).
        ConfigError: ``rollout`` has finished, or its flag is not on the embedded backend.
    """
    from shadowcanary.controller.notify import WebhookNotifier
    from shadowcanary.controller.operator import Operator, cli_actor
    from shadowcanary.store.db import make_engine
    from shadowcanary.store.locks import lock_engine
    from shadowcanary.store.rollouts import RolloutNotFound
    from shadowcanary.wiring import FlagsConfig, build_ports, flags_factory

    if rollout is not None and settings.flags != "embedded":
        raise ConfigError(
            "`shadowcanary up --rollout` follows flags of the embedded backend only",
            hint="unset SHADOWCANARY_FLAGS (embedded), or send traffic through "
            "`shadowcanary gateway run` routed by the Unleash flag",
        )
    engine = make_engine(urls.database_url, pool_size=2)
    locks = lock_engine(urls.database_url)
    try:
        ports = build_ports(
            engine=engine,
            lock_engine=locks,
            flags_for=flags_factory(FlagsConfig.from_settings(settings), engine),
            notifier=WebhookNotifier(),
            settings=settings,
            actor=cli_actor(),
        )
        if rollout is not None:
            return target_of(ports.store.get(rollout), routed=True)
        operator = Operator(ports)
        try:
            record = ports.store.get(DEFAULT_ROLLOUT)
        except RolloutNotFound:
            record = None
        plan = default_plan(settings)
        if record is not None and record.status.active:
            old = record.plan
            if (old.baseline, old.candidate) != (plan.baseline, plan.candidate):
                # The configured models changed: a new run, not a mix of both pairs.
                record = operator.abort(DEFAULT_ROLLOUT)
        if record is None or not record.status.active:
            record = operator.start(plan)
        if record.status is RolloutStatus.RUNNING:
            # Its traffic ignores the flag (a fixed --canary-percent): no controller may
            # step it as if it did.
            record = operator.pause(DEFAULT_ROLLOUT)
        return target_of(record, routed=False)
    finally:
        engine.dispose()
        locks.dispose()


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
    target: UpTarget,
    profiles_file: Path | None = None,
) -> dict[str, Any]:
    """Run simulator + worker + traffic for ``target``; return the final status data."""
    profiles = simulator_profiles(settings, profiles_file, (target.baseline, target.candidate))
    with run_simulator(profiles, port=sim_port) as sim:
        worker_env = {k: v for k, v in env.items() if k.startswith("SHADOWCANARY_")}
        # The worker replays against this simulator, at the prices set once.
        worker_env["SHADOWCANARY_MODELS"] = worker_models_json(
            settings, profiles, sim.base_url, sim.api_key
        )
        with contextlib.ExitStack() as stack:
            stack.enter_context(run_worker(worker_env, name="local"))
            tap = stack.enter_context(Tap(settings.tap, urls.broker_url))
            router = None
            if target.flag is not None:
                router = _router(stack, settings, urls, target)
            traffic = TrafficGenerator(
                settings, tap, sim, target, canary_percent=canary_percent, router=router
            )
            runner = threading.Thread(target=traffic.run, args=(rate, duration_s), daemon=True)
            runner.start()
            with Live(console=console, refresh_per_second=2, transient=False) as live:
                try:
                    while runner.is_alive():
                        status = collect_status(settings, urls, target.rollout)
                        live.update(_view(status, traffic, tap, "running"))
                        runner.join(timeout=1.0)
                except KeyboardInterrupt:
                    status = collect_status(settings, urls, target.rollout)
                    live.update(_view(status, traffic, tap, "stopping"))
                traffic.stop()
                tap.close()
                status = _wait_for_replays(settings, urls, live, traffic, tap, target.rollout)
    return status


def _router(
    stack: contextlib.ExitStack, settings: Settings, urls: ServiceUrls, target: UpTarget
) -> ModelRouter:
    """Routes each user as the rollout's flag says, re-read every second."""
    from flags.router import EmbeddedEvaluator, ModelRouter
    from shadowcanary.store.db import make_engine

    assert target.flag is not None
    engine = make_engine(urls.database_url, pool_size=1)
    stack.callback(engine.dispose)
    evaluator = stack.enter_context(EmbeddedEvaluator(engine, refresh_s=_FLAG_REFRESH_S))
    return ModelRouter(
        evaluator,
        target.flag,
        target.baseline,
        stickiness="userId",
        stickiness_salt=settings.stickiness_salt,
    )


def _wait_for_replays(
    settings: Settings,
    urls: ServiceUrls,
    live: Live,
    traffic: TrafficGenerator,
    tap: Tap,
    rollout: str,
) -> dict[str, Any]:
    client = redis.Redis.from_url(urls.redis_url, socket_timeout=2)
    deadline = time.monotonic() + _CATCH_UP_TIMEOUT_S
    try:
        while True:
            status = collect_status(settings, urls, rollout)
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
