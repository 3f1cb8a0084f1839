"""Rollouts end to end on a real Unleash server, with real traffic and real outages.

What is real: the Unleash server (npm unleash-server) and its Admin API, UnleashClient
routing each user, the simulator answering as both models, the tap's OpenAI wrapper
and emitter, Redis, a Celery worker (ingest and shadow replays), Postgres.

What the test controls: time. The controller and the tap share a ``FakeClock``
(the tap's timestamp source is patched to it), so a "minute" of traffic takes a
second of wall time and ticks land on exact minute boundaries. The override and outage
tests care about holding, not about traffic, so they write captures straight into the
store (the worker's own write path) to control exactly what the judge sees.
The Postgres outage and a rollback issued while the flag backend is down are in
test_controller.py (a private Postgres; an Unleash client on a closed port).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import httpx
import openai
import pytest
from sqlalchemy import Engine

from flags.router import ModelRouter, UnleashClientEvaluator
from flags.unleash import UnleashFlags
from shadowcanary.controller.operator import Operator
from shadowcanary.controller.policy import TickMemory
from shadowcanary.controller.tick import TickOutcome, TickPorts, TickResult, tick
from shadowcanary.events import DEV_SALT, Arm, hash_stickiness_key
from shadowcanary.judge.decide import DecisionKind
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.rollout_records import AuditAction, RolloutStatus
from shadowcanary.settings import TapSettings
from shadowcanary.shadow_results import ReplayKind
from shadowcanary.store.db import make_engine
from shadowcanary.store.repository import Store
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.openai_wrapper import tap_openai
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.unleash import UnleashHandle
from tests.integration.controller_harness import (
    T0,
    FakeClock,
    WebhookSink,
    insert_minute,
    ports_for,
    small_plan,
    webhook_sink,
)

pytestmark = pytest.mark.integration

USERS = 4000  # distinct user ids; each minute's traffic cycles through them
PROBE_KEYS = [hash_stickiness_key(f"probe-{i}", DEV_SALT) for i in range(2000)]


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with webhook_sink() as sink:
        yield sink


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


def unleash_flags(unleash: UnleashHandle) -> UnleashFlags:
    return UnleashFlags(unleash.url, unleash.admin_token, environment="development", timeout_s=2)


@dataclass
class Traffic:
    """Live traffic through the real tap, routed per user by UnleashClient."""

    client: openai.OpenAI
    evaluator: UnleashClientEvaluator
    store: Store
    rollout: str
    flag: str
    clock: FakeClock
    sent: int = 0

    def minute(self, minute: int, calls: int) -> None:
        """``calls`` chat completions stamped inside ``minute``; waits until stored."""
        self.clock.at(minute, 2)

        def one(i: int) -> None:
            # A failed call is captured by the tap as such; the caller just moves on.
            with contextlib.suppress(openai.APIError):
                self.client.chat.completions.create(
                    model="gpt-5.2",
                    messages=[{"role": "user", "content": f"How do I reset password {i % 40}?"}],
                    user=f"user-{(self.sent + i) % USERS}",
                )

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(one, range(calls)))
        self.sent += calls
        wait_until(
            lambda: self.store.counts().captured_total >= self.sent,
            timeout_s=60,
            what=f"{self.sent} captures stored",
        )
        self._wait_for_replays()

    def _wait_for_replays(self) -> None:
        """Shadow replays of every captured baseline answer are recorded."""

        def done() -> bool:
            until = self.clock.now + timedelta(days=1)
            totals = self.store.live_totals(self.rollout, T0, until)
            shadow = self.store.shadow_totals(self.rollout, T0, until)
            ok_baseline = totals[Arm.BASELINE].requests - totals[Arm.BASELINE].failures
            # A failing candidate can exhaust an event's attempts: then it is a dead
            # letter, not a replay, and still accounted for.
            dead = self.store.counts().dead_lettered
            return shadow[ReplayKind.CANDIDATE].replays + dead >= ok_baseline

        wait_until(done, timeout_s=60, what="shadow replays recorded")

    def share_seen(self) -> float:
        """Share of probe users UnleashClient puts in the canary right now, in %."""
        hits = sum(self.evaluator.candidate_for(self.flag, key) is not None for key in PROBE_KEYS)
        return 100.0 * hits / len(PROBE_KEYS)

    def wait_for_share(self, percent: int) -> float:
        """Poll UnleashClient until it serves the candidate to ``percent`` ± 3 % of users."""
        wait_until(
            lambda: abs(self.share_seen() - percent) <= 3,
            timeout_s=15,
            what=f"UnleashClient to serve the candidate to ~{percent} %",
        )
        return self.share_seen()


@pytest.fixture
def live(
    unleash: UnleashHandle,
    sim: SimHandle,
    worker_env: dict[str, str],
    redis_url: str,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Traffic, FakeClock]]:
    """A worker, an UnleashClient, a tapped OpenAI client on the simulator, one fake clock."""
    clock = FakeClock()
    # The tap stamps each call with this clock, so buckets follow the test's minutes.
    monkeypatch.setattr("shadowcanary.tap.openai_wrapper.now_utc", clock)
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    tap_settings = TapSettings(flush_interval_s=0.02)
    with (
        # Fewer noise-floor replays than the data-path tests: enough pairs for the
        # quality trigger, half the replay load on a small CI machine.
        run_worker({**worker_env, "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0.15"}),
        UnleashClientEvaluator(
            unleash.api_url,
            unleash.backend_token,
            refresh_interval_s=1,
            send_metrics=False,
            cache_directory=tempfile.mkdtemp(prefix="sc-unleash-cache-"),
        ) as evaluator,
        Tap(tap_settings, redis_url) as tap,
    ):
        router = ModelRouter(evaluator, f"{name}-flag", "gpt-5.2", stickiness="userId")
        client = tap_openai(
            openai.OpenAI(base_url=sim.base_url, api_key=sim.api_key, max_retries=0),
            tap,
            route="support.chat",
            rollout=name,
            model_router=router,
        )
        yield Traffic(client, evaluator, Store(engine), name, f"{name}-flag", clock), clock
    sim.set_profile("gpt-5.5", error_rate=0.0)


def controller(
    clock: FakeClock, engine: Engine, database_url: str, unleash: UnleashHandle
) -> tuple[TickPorts, TickMemory, Operator]:
    flags = unleash_flags(unleash)
    ports = ports_for(engine, database_url, flags, clock)
    operator = Operator(ports_for(engine, database_url, flags, clock, actor="cli:sre"))
    return ports, TickMemory(), operator


def tick_at(
    ports: TickPorts, memory: TickMemory, clock: FakeClock, name: str, minute: int
) -> TickResult:
    clock.at(minute)
    return tick(ports, name, memory)


def test_healthy_candidate_goes_10_30_50_100_and_completes(
    live: tuple[Traffic, FakeClock],
    engine: Engine,
    database_url: str,
    unleash: UnleashHandle,
    sink: WebhookSink,
) -> None:
    """Live traffic, real Unleash: every step advances, UnleashClient sees each percentage."""
    traffic, clock = live
    ports, memory, operator = controller(clock, engine, database_url, unleash)
    clock.at(0, 1)
    operator.start(small_plan(traffic.rollout, traffic.flag, webhook=sink.url, min_canary=80))
    traffic.minute(0, 550)  # pre-canary: the baseline p99 is frozen from this
    seen = {}
    calls = {1: 1000, 2: 330, 3: 200}  # ~100 canary requests at 10, 30 and 50 %
    for minute in (1, 2, 3, 4):
        result = tick_at(ports, memory, clock, traffic.rollout, minute)
        assert result.decision is not None, result
        assert result.decision.kind is DecisionKind.ADVANCE, result.decision.reason
        percent = result.record.percent if result.record else -1
        seen[percent] = traffic.wait_for_share(percent)
        if minute in calls:
            traffic.minute(minute, calls[minute])
    assert sorted(seen) == [10, 30, 50, 100]
    done = tick_at(ports, memory, clock, traffic.rollout, 5)
    assert done.decision is not None and done.decision.kind is DecisionKind.COMPLETE
    assert done.record is not None and done.record.status is RolloutStatus.COMPLETED
    assert unleash_flags(unleash).read(traffic.flag).effective_percent == 100
    texts = sink.texts()
    assert any("COMPLETE" in t for t in texts) and sum("ADVANCE" in t for t in texts) == 4
    advances = [e for e in ports.store.history(traffic.rollout) if e.action is AuditAction.ADVANCE]
    assert [e.to_percent for e in advances if e.to_percent is not None][::-1] == [10, 30, 50, 100]


def test_error_rate_jump_mid_rollout_rolls_back_to_zero(
    live: tuple[Traffic, FakeClock],
    sim: SimHandle,
    engine: Engine,
    database_url: str,
    unleash: UnleashHandle,
    sink: WebhookSink,
) -> None:
    """At 30 % the candidate starts failing 15 % of calls: ROLLBACK to 0 %, with the numbers."""
    traffic, clock = live
    ports, memory, operator = controller(clock, engine, database_url, unleash)
    clock.at(0, 1)
    operator.start(small_plan(traffic.rollout, traffic.flag, webhook=sink.url, min_canary=80))
    traffic.minute(0, 550)
    tick_at(ports, memory, clock, traffic.rollout, 1)
    traffic.wait_for_share(10)
    traffic.minute(1, 1000)
    advanced = tick_at(ports, memory, clock, traffic.rollout, 2)
    assert advanced.record is not None and advanced.record.percent == 30
    traffic.wait_for_share(30)
    sim.set_profile("gpt-5.5", error_rate=0.2)  # the simulator's admin endpoint
    traffic.minute(2, 350)
    result = tick_at(ports, memory, clock, traffic.rollout, 3)
    assert result.decision is not None and result.decision.kind is DecisionKind.ROLLBACK
    assert unleash_flags(unleash).read(traffic.flag).effective_percent == 0
    traffic.wait_for_share(0)
    entry = next(
        e
        for e in ports.store.history(traffic.rollout)
        if e.action is AuditAction.ROLLBACK and e.to_percent == 0
    )
    assert entry.from_percent == 30 and entry.reason.startswith("error_rate: canary ")
    error_rate = next(t for t in (entry.decision or {})["triggers"] if t["name"] == "error_rate")
    # Judged on the 30 % step's own minutes (about 105 canary requests), not pooled with 10 %.
    assert error_rate["verdict"] == "harm" and 80 < error_rate["n_candidate"] < 150
    assert (
        error_rate["candidate_value"] > 0.05 and error_rate["statistic"] > error_rate["threshold"]
    )
    assert any("ROLLBACK" in t and "error_rate" in t for t in sink.texts())


def _sre_sets_rollout(unleash: UnleashHandle, flag: str, percent: int) -> None:
    """What the Unleash UI does when an SRE drags the rollout slider: a PATCH of the strategy."""
    base = f"{unleash.url}/api/admin/projects/default/features/{flag}/environments/development"
    headers = {"Authorization": unleash.admin_token}
    strategies = httpx.get(f"{base}/strategies", headers=headers, timeout=5).json()
    strategy_id = strategies[0]["id"]
    response = httpx.patch(
        f"{base}/strategies/{strategy_id}",
        headers=headers,
        json=[{"op": "replace", "path": "/parameters/rollout", "value": str(percent)}],
        timeout=5,
    )
    assert response.status_code == 200, response.text


def test_sre_change_in_unleash_is_a_manual_override_until_resume(
    engine: Engine, database_url: str, unleash: UnleashHandle, sink: WebhookSink
) -> None:
    """A slider change in Unleash stops the controller; `resume` hands the rollout back."""
    clock, name = FakeClock(), f"sre-{uuid.uuid4().hex[:8]}"
    flags = unleash_flags(unleash)
    ports, memory = ports_for(engine, database_url, flags, clock), TickMemory()
    operator = Operator(ports_for(engine, database_url, flags, clock, actor="cli:sre"))
    plan = small_plan(name, f"{name}-flag", webhook=sink.url, triggers="  p99_latency: off")
    clock.at(0, 1)
    operator.start(plan)
    assert tick_at(ports, memory, clock, name, 1).flag_changed  # to 10 %
    _sre_sets_rollout(unleash, plan.flag, 50)
    overridden = tick_at(ports, memory, clock, name, 2)
    assert overridden.outcome is TickOutcome.OVERRIDE
    entry = ports.store.history(name)[0]
    assert entry.action is AuditAction.MANUAL_OVERRIDE and entry.to_percent == 50
    insert_minute(Store(engine), name, 2, baseline=500, candidate=500)
    for minute in (3, 4):
        assert tick_at(ports, memory, clock, name, minute).outcome is TickOutcome.IDLE
    assert flags.read(plan.flag).effective_percent == 50  # the controller kept its hands off
    assert any("MANUAL OVERRIDE" in t for t in sink.texts())
    clock.at(4, 30)
    resumed = operator.resume(name)
    assert (resumed.status, resumed.percent, resumed.step_index) == (RolloutStatus.RUNNING, 50, 2)
    assert ports.store.history(name)[0].actor == "cli:sre"
    after = tick_at(ports, memory, clock, name, 5)
    assert after.outcome is TickOutcome.DECIDED  # acting again


def _person_sets_rollout(unleash: UnleashHandle, flag: str, percent: int) -> None:
    """What the UI does for a signed-in person (admin / unleash4all): the same PATCH."""
    base = f"{unleash.url}/api/admin/projects/default/features/{flag}/environments/development"
    with httpx.Client(timeout=5) as browser:
        login = browser.post(
            f"{unleash.url}/auth/simple/login",
            json={"username": "admin", "password": "unleash4all"},
        )
        assert login.status_code == 200, login.text
        strategy_id = browser.get(f"{base}/strategies").json()[0]["id"]
        response = browser.patch(
            f"{base}/strategies/{strategy_id}",
            json=[{"op": "replace", "path": "/parameters/rollout", "value": str(percent)}],
        )
        assert response.status_code == 200, response.text


def _own_admin_token(unleash: UnleashHandle, name: str) -> str:
    """A personal access token of an admin user ``name``: Unleash records our writes as it.

    (Unleash 7.5 OSS creates no admin API tokens through the API; a dedicated admin user's
    token is how a deployment gives shadowcanary an identity of its own.)
    """
    admin = {"Authorization": unleash.admin_token}
    password = "Shadow-Canary-7Pq2x!"  # OWASP rules: no three repeated characters
    created = httpx.post(
        f"{unleash.url}/api/admin/user-admin",
        headers=admin,
        json={"username": name, "rootRole": 1, "sendEmail": False},
        timeout=5,
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    changed = httpx.post(
        f"{unleash.url}/api/admin/user-admin/{user_id}/change-password",
        headers=admin,
        json={"password": password},
        timeout=5,
    )
    assert changed.status_code == 200, changed.text
    with httpx.Client(timeout=5) as browser:
        login = browser.post(
            f"{unleash.url}/auth/simple/login", json={"username": name, "password": password}
        )
        assert login.status_code == 200, login.text
        token = browser.post(
            f"{unleash.url}/api/admin/user/tokens",
            json={"description": "shadowcanary", "expiresAt": "2099-01-01T00:00:00Z"},
        )
        assert token.status_code == 201, token.text
        return str(token.json()["secret"])


def _override_tick(
    unleash: UnleashHandle,
    engine: Engine,
    database_url: str,
    flags: UnleashFlags,
    sink: WebhookSink,
) -> tuple[str, TickPorts]:
    """A rollout at 10 % (set by ``flags``), then the UI's admin moves it to 25 %."""
    clock, name = FakeClock(), f"who-{uuid.uuid4().hex[:8]}"
    ports, memory = ports_for(engine, database_url, flags, clock), TickMemory()
    operator = Operator(ports_for(engine, database_url, flags, clock, actor="cli:sre"))
    plan = small_plan(name, f"{name}-flag", webhook=sink.url, triggers="  p99_latency: off")
    clock.at(0, 1)
    operator.start(plan)
    assert tick_at(ports, memory, clock, name, 1).flag_changed  # to 10 %, by shadowcanary
    _person_sets_rollout(unleash, plan.flag, 25)
    assert tick_at(ports, memory, clock, name, 2).outcome is TickOutcome.OVERRIDE
    return name, ports


def test_the_person_who_changed_the_flag_is_named_from_unleashs_event_log(
    engine: Engine, database_url: str, unleash: UnleashHandle, sink: WebhookSink
) -> None:
    """With a token of its own, an override names the person (audit row and webhook)."""
    token = _own_admin_token(unleash, f"shadowcanary-{uuid.uuid4().hex[:6]}")
    with UnleashFlags(unleash.url, token, environment="development", timeout_s=2) as flags:
        name, ports = _override_tick(unleash, engine, database_url, flags, sink)
    override = ports.store.history(name)[0]
    assert override.action is AuditAction.MANUAL_OVERRIDE
    assert override.actor == "unleash:admin"
    assert "by admin (feature-strategy-update" in override.reason
    assert "same Unleash identity" not in override.reason
    wait_until(
        lambda: any("unleash:admin" in json.dumps(body) for body in sink.bodies),
        timeout_s=5,
        what="the person's name in the override webhook",
    )


def test_a_person_sharing_shadowcanarys_unleash_identity_is_said_to_be_ambiguous(
    engine: Engine, database_url: str, unleash: UnleashHandle, sink: WebhookSink
) -> None:
    """The init admin token is named like the UI's admin: the override says it cannot tell."""
    with unleash_flags(unleash) as flags:
        name, ports = _override_tick(unleash, engine, database_url, flags, sink)
    override = ports.store.history(name)[0]
    assert override.actor == "unleash:admin"
    assert "give shadowcanary an admin token of its own" in override.reason


def test_unleash_down_holds_alerts_and_resumes(
    engine: Engine, database_url: str, unleash: UnleashHandle, sink: WebhookSink
) -> None:
    """With Unleash stopped ticks HOLD and alert once; a due ADVANCE waits until it is back."""
    clock, name = FakeClock(), f"down-{uuid.uuid4().hex[:8]}"
    flags = unleash_flags(unleash)
    ports, memory = ports_for(engine, database_url, flags, clock), TickMemory()
    operator = Operator(ports_for(engine, database_url, flags, clock, actor="cli:sre"))
    store = Store(engine)
    clock.at(0, 1)
    operator.start(small_plan(name, f"{name}-flag", webhook=sink.url))
    insert_minute(store, name, 0, baseline=600)
    tick_at(ports, memory, clock, name, 1)
    insert_minute(store, name, 1, baseline=900, candidate=100)  # enough to ADVANCE
    unleash.stop()
    try:
        for second in (0, 20, 40):
            clock.at(2, second)
            held = tick(ports, name, memory)
            assert held.outcome is TickOutcome.UNAVAILABLE and held.service == "flags"
        alerts = [e for e in ports.store.history(name) if e.action is AuditAction.ALERT]
        assert len(alerts) == 1 and "unreachable" in alerts[0].reason
        assert sum("unreachable" in t for t in sink.texts()) == 1
        history = ports.store.history(name)
        assert not any(e.action is AuditAction.ADVANCE and e.to_percent == 30 for e in history)
    finally:
        unleash.start()
    back = tick_at(ports, memory, clock, name, 3)
    assert back.decision is not None and back.decision.kind is DecisionKind.ADVANCE
    assert flags.read(f"{name}-flag").effective_percent == 30
    reasons = [e.reason for e in ports.store.history(name) if e.action is AuditAction.ALERT]
    assert any("reachable again" in r for r in reasons)
