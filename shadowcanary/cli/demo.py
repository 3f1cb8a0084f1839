"""``shadowcanary demo``: two rollouts side by side, live, on the embedded services.

Starts the model simulator (baseline, a healthy candidate, a candidate that will
regress), a Celery worker, the controller (in process: ``build_ports`` + ``tick``) and
a traffic generator whose calls go through the real tap, routed per user by each
rollout's flag (embedded backend, evaluated with Unleash's engine). Then, minute by
simulated minute: tick both rollouts, send that minute's traffic, wait until the
worker has stored it and replayed it.

Time is simulated: the controller and the tap share a clock that jumps one minute per
round, so a rollout whose steps need minutes of traffic runs in a second or two per
minute. Everything else is real: Redis, the worker, Postgres, the flag, the judge.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
from rich.console import Console

from flags.router import EmbeddedEvaluator, ModelRouter
from shadowcanary.cli.demo_plans import (
    JUDGE,
    Scenario,
    demo_plan,
    models_json,
    scenarios,
    sim_profiles,
)
from shadowcanary.cli.demo_view import DemoView, LaneView, print_judged_pair, print_where_to_look
from shadowcanary.controller.notify import WebhookNotifier
from shadowcanary.controller.operator import Operator
from shadowcanary.controller.policy import TickMemory
from shadowcanary.controller.tick import TickPorts, TickResult, tick
from shadowcanary.events import Arm
from shadowcanary.launcher.embedded_services import ServiceUrls
from shadowcanary.launcher.sim import SimHandle, run_simulator
from shadowcanary.launcher.traffic import TrafficMix
from shadowcanary.launcher.worker import run_worker
from shadowcanary.plan import RolloutPlan
from shadowcanary.rollout_records import RolloutStatus
from shadowcanary.settings import Settings
from shadowcanary.shadow_results import ReplayKind
from shadowcanary.store.db import make_engine
from shadowcanary.store.locks import lock_engine
from shadowcanary.store.repository import Store
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.openai_wrapper import tap_openai
from shadowcanary.wiring import build_ports

ROUTES = ("support", "coding", "extraction", "orders")
FINAL = frozenset({RolloutStatus.COMPLETED, RolloutStatus.ROLLED_BACK, RolloutStatus.ABORTED})
_CATCH_UP_TIMEOUT_S = 90.0


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """How big and how fast the demo is."""

    min_canary: int  # canary requests each step needs
    pace_s: float  # least wall time per simulated minute (readable live view)
    max_minutes: int = 16
    # Per rollout, minute 0: the baseline p99 is frozen from >= 500 pre-canary requests.
    precanary_calls: int = 550
    max_calls_per_minute: int = 1000  # per rollout

    @classmethod
    def for_mode(cls, *, fast: bool) -> DemoConfig:
        return cls(min_canary=60, pace_s=0.0) if fast else cls(min_canary=150, pace_s=1.5)

    def calls_for(self, percent: int) -> int:
        """Calls in one minute so the canary gets ~30 % more than a step needs."""
        if percent <= 0:
            return self.precanary_calls
        return min(self.max_calls_per_minute, math.ceil(self.min_canary * 1.3 * 100 / percent))


@dataclass(frozen=True, slots=True)
class DemoResult:
    """Each rollout's name, where it ended and where it should have ended."""

    statuses: Mapping[str, RolloutStatus]
    expected: Mapping[str, RolloutStatus]
    minutes: int
    wall_s: float

    def surprises(self) -> list[str]:
        """One line per rollout that did not end as its scenario says (empty: all did)."""
        return [
            f"{name} ended {self.statuses.get(name, 'unknown')}, expected {want}"
            for name, want in self.expected.items()
            if self.statuses.get(name) is not want
        ]


class DemoClock:
    """The simulated clock shared by the controller and the tap."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def at(self, minute: int, second: float = 0.0) -> datetime:
        self.now = self.start + timedelta(minutes=minute, seconds=second)
        return self.now


@contextlib.contextmanager
def _tap_stamps_with(clock: DemoClock) -> Iterator[None]:
    """The tap stamps calls with the simulated clock (it has no clock parameter)."""
    from shadowcanary.tap import openai_wrapper

    original = getattr(openai_wrapper, "now_utc")  # noqa: B009 - not exported, patched
    setattr(openai_wrapper, "now_utc", clock)  # noqa: B010
    try:
        yield
    finally:
        setattr(openai_wrapper, "now_utc", original)  # noqa: B010


@dataclass
class Lane:
    """One rollout: its plan, its tapped clients and what the demo has sent for it."""

    scenario: Scenario
    plan: RolloutPlan
    clients: dict[str, openai.OpenAI]
    memory: TickMemory = field(default_factory=TickMemory)
    view: LaneView = field(init=False)
    sent: int = 0
    regressed: bool = False

    def __post_init__(self) -> None:
        self.view = LaneView(self.scenario.name, self.scenario.candidate, self.scenario.story)


def run_demo(
    settings: Settings,
    urls: ServiceUrls,
    *,
    fast: bool,
    console: Console,
    run_id: str | None = None,
) -> DemoResult:
    """Run the two rollouts to their end (or ``max_minutes``); return where they ended."""
    config = DemoConfig.for_mode(fast=fast)
    run_id = run_id or uuid.uuid4().hex[:6]
    started = time.monotonic()
    # Simulated minutes start in the past, so the whole run's timeline is behind "now".
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    clock = DemoClock(start)
    engine = make_engine(urls.database_url, pool_size=4)
    view = DemoView(console, fast=fast)
    try:
        view.phase("starting the model simulator and the worker")
        with run_simulator(sim_profiles()) as sim:
            demo_settings = settings.model_copy(
                update={
                    "models": _models(settings, sim),
                    "judge": settings.judge.model_copy(update={"model": JUDGE}),
                }
            )
            worker_env = _worker_env(urls, sim)
            with (
                view.live(),
                run_worker(worker_env, name="demo"),
                EmbeddedEvaluator(engine, refresh_s=0.5) as evaluator,
                Tap(demo_settings.tap, urls.broker_url) as tap,
                _tap_stamps_with(clock),
            ):
                ports = _ports(engine, urls, clock, demo_settings)
                lanes = [
                    _lane(s, config, demo_settings, evaluator, tap, sim) for s in scenarios(run_id)
                ]
                store = Store(engine)
                view.watch([lane.view for lane in lanes], lambda: (store.counts(), tap.stats()))
                minutes = _run(config, clock, ports, lanes, evaluator, sim, store, view)
        statuses = {lane.scenario.name: lane.view.status for lane in lanes}
        expected = {lane.scenario.name: lane.scenario.expected for lane in lanes}
        result = DemoResult(statuses, expected, minutes, time.monotonic() - started)
        print_judged_pair(console, engine, lanes[0].scenario.name)
        print_where_to_look(console, demo_settings, engine, [lane.scenario.name for lane in lanes])
        return result
    finally:
        engine.dispose()


def _run(
    config: DemoConfig,
    clock: DemoClock,
    ports: TickPorts,
    lanes: list[Lane],
    evaluator: EmbeddedEvaluator,
    sim: SimHandle,
    store: Store,
    view: DemoView,
) -> int:
    operator = Operator(ports_with_actor(ports, "cli:demo"))
    clock.at(0, 1)
    for lane in lanes:
        operator.start(lane.plan)
        view.decision(
            lane.view,
            0,
            "START",
            f"rollout started ({lane.plan.baseline} -> {lane.plan.candidate})",
            0,
        )
    evaluator.refresh()
    view.phase("minute 0: pre-canary traffic (freezes the baseline's latency)")
    _send_minute(config, clock, 0, lanes, store, view, started_wall=time.monotonic())
    minute = 0
    for minute in range(1, config.max_minutes + 1):
        began = time.monotonic()
        clock.at(minute)
        for lane in lanes:
            if lane.view.status in FINAL:
                continue
            result = tick(ports, lane.scenario.name, lane.memory)
            _record(lane, result, minute, view)
            _maybe_regress(lane, sim, view, minute)
        evaluator.refresh()  # the services see the new percentages before the next calls
        if all(lane.view.status in FINAL for lane in lanes):
            break
        _send_minute(config, clock, minute, lanes, store, view, started_wall=began)
    return minute


def ports_with_actor(ports: TickPorts, actor: str) -> TickPorts:
    """The same ports, acting as ``actor`` (an operator command rather than the controller)."""
    from dataclasses import replace

    return replace(ports, actor=actor)


def _record(lane: Lane, result: TickResult, minute: int, view: DemoView) -> None:
    record, decision = result.record, result.decision
    if record is not None:
        lane.view.status = record.status
        lane.view.percent = record.percent
        lane.view.step = record.step_index
    if decision is None:
        lane.view.last = f"{result.outcome.value}: {result.detail}"[:160]
        return
    lane.view.triggers = {t.name: t for t in decision.triggers}
    view.decision(
        lane.view, minute, decision.kind.value.upper(), decision.reason, decision.to_percent
    )


def _maybe_regress(lane: Lane, sim: SimHandle, view: DemoView, minute: int) -> None:
    at = lane.scenario.regress_at_percent
    if at is None or lane.regressed or lane.view.percent < at or lane.view.status in FINAL:
        return
    from shadowcanary.cli.demo_plans import REGRESSED_ERROR_RATE

    sim.set_profile(lane.scenario.candidate, error_rate=REGRESSED_ERROR_RATE)
    lane.regressed = True
    view.event(
        lane.view,
        minute,
        f"{lane.scenario.candidate} now fails {REGRESSED_ERROR_RATE:.0%} of calls (HTTP 500)",
    )


def _send_minute(
    config: DemoConfig,
    clock: DemoClock,
    minute: int,
    lanes: list[Lane],
    store: Store,
    view: DemoView,
    *,
    started_wall: float,
) -> None:
    """One simulated minute of traffic for every running rollout; wait until it is stored."""
    clock.at(minute, 2)
    mix = TrafficMix(seed=minute, users=5000)
    work: list[tuple[Lane, Any]] = []
    for lane in lanes:
        if lane.view.status in FINAL:
            continue
        for _ in range(config.calls_for(lane.view.percent)):
            work.append((lane, mix.next_call()))

    def one(item: tuple[Lane, Any]) -> None:
        lane, call = item
        with contextlib.suppress(openai.APIError):  # the tap captured the failure
            lane.clients[call.route].chat.completions.create(
                model=lane.plan.baseline, user=call.user_id, **call.kwargs
            )

    # 16 callers: more only queue up inside the one-process simulator and inflate latency.
    with ThreadPoolExecutor(16, thread_name_prefix="demo-traffic") as pool:
        list(pool.map(one, work))
    for lane, _call in work:
        lane.sent += 1
    _wait_until_processed(lanes, store, clock, view)
    for lane in lanes:
        lane.view.arms = _arm_counts(store, lane, clock)
    view.minute_done(minute, time.monotonic() - started_wall)
    remaining = config.pace_s - (time.monotonic() - started_wall)
    if remaining > 0:
        threading.Event().wait(remaining)


def _wait_until_processed(
    lanes: list[Lane], store: Store, clock: DemoClock, view: DemoView
) -> None:
    """Poll until every call is stored and every baseline answer is replayed or dead-lettered."""
    deadline = time.monotonic() + _CATCH_UP_TIMEOUT_S
    until = clock.now + timedelta(days=1)
    while True:
        pending = 0
        for lane in lanes:
            totals = store.live_totals(lane.scenario.name, clock.start, until)
            stored = sum(t.requests for t in totals.values())
            shadow = store.shadow_totals(lane.scenario.name, clock.start, until)
            ok_baseline = totals[Arm.BASELINE].requests - totals[Arm.BASELINE].failures
            pending += max(0, lane.sent - stored)
            # A replay given up on (dead-lettered after its last attempt) is settled too.
            settled = shadow[ReplayKind.CANDIDATE].replays + store.dead_lettered_replays(
                lane.scenario.name
            )
            pending += max(0, ok_baseline - settled)
        if pending == 0:
            return
        if time.monotonic() > deadline:
            view.warn(f"{pending} captures or replays still pending; ticking with what is stored")
            return
        view.phase(f"waiting for the worker: {pending} captures/replays pending")
        time.sleep(0.1)


def _arm_counts(store: Store, lane: Lane, clock: DemoClock) -> dict[str, tuple[int, int]]:
    totals = store.live_totals(lane.scenario.name, clock.start, clock.now + timedelta(days=1))
    return {arm.value: (t.requests, t.failures) for arm, t in totals.items()}


def _models(settings: Settings, sim: SimHandle) -> dict[str, Any]:
    from shadowcanary.settings import ModelEndpoint

    models = dict(settings.models)
    for name, endpoint in _decode(models_json(sim.base_url)).items():
        models[name] = ModelEndpoint(**endpoint)
    return models


def _decode(text: str) -> dict[str, dict[str, Any]]:
    import json

    decoded: dict[str, dict[str, Any]] = json.loads(text)
    return decoded


def _worker_env(urls: ServiceUrls, sim: SimHandle) -> dict[str, str]:
    return {
        "SHADOWCANARY_DATABASE_URL": urls.database_url,
        "SHADOWCANARY_REDIS_URL": urls.redis_url,
        "SHADOWCANARY_MODELS": models_json(sim.base_url),
        # Enough noise-floor pairs for the quality trigger, at a third of the extra load.
        "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0.3",
        # The watch after 100 % keeps the baseline warm with half the candidate's calls.
        "SHADOWCANARY_REPLAY__ROLLBACK_TARGET_RATE": "0.5",
        # The LLM judge (the simulator's) on a fifth of the pairs, both orders each.
        "SHADOWCANARY_JUDGE__MODEL": JUDGE,
        "SHADOWCANARY_JUDGE__SAMPLE_RATE": "0.2",
        "SHADOWCANARY_REPLAY__BACKOFF_BASE_S": "0.2",
        "SHADOWCANARY_REPLAY__BACKOFF_MAX_S": "1",
        "SHADOWCANARY_LOG_LEVEL": "warning",
    }


def _ports(engine: Any, urls: ServiceUrls, clock: DemoClock, settings: Settings) -> TickPorts:
    from flags.embedded import EmbeddedFlags

    flags = EmbeddedFlags(engine)
    return build_ports(
        engine=engine,
        lock_engine=lock_engine(urls.database_url),
        flags_for=lambda _plan: flags,
        notifier=WebhookNotifier(timeout_s=2.0),
        settings=settings,
        clock=clock,
        actor=None,
    )


def _lane(
    scenario: Scenario,
    config: DemoConfig,
    settings: Settings,
    evaluator: EmbeddedEvaluator,
    tap: Tap,
    sim: SimHandle,
) -> Lane:
    plan = demo_plan(scenario, min_canary=config.min_canary)
    salt = settings.stickiness_salt.get_secret_value()
    router = ModelRouter(
        evaluator, plan.flag, plan.baseline, stickiness="userId", stickiness_salt=salt
    )
    clients = {
        route: tap_openai(
            openai.OpenAI(base_url=sim.base_url, api_key=sim.api_key, max_retries=0),
            tap,
            route=route,
            rollout=plan.name,
            stickiness_salt=salt,
            model_router=router,
        )
        for route in ROUTES
    }
    return Lane(scenario, plan, clients)
