"""A controller started while its Postgres is down: it cannot alert, it counts, logs, holds.

Guarantee 2.8. The rollout's plan (and so its webhooks) lives in Postgres, so a
controller that never read it has nobody to alert. It must not crash, must log the
outage and count it in ``shadowcanary_controller_service_unavailable_total``, must
send no webhook and change no flag; once Postgres answers, its first tick acts.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from flags.embedded import EmbeddedFlags
from flags.unleash import UnleashFlags
from shadowcanary.controller.loop import EVERY_ROLLOUT, ControllerLoop, LoopConfig
from shadowcanary.controller.operator import Operator
from shadowcanary.controller.tick import TickOutcome
from shadowcanary.rollout_records import AuditAction
from shadowcanary.store.db import make_engine
from shadowcanary.store.locks import lock_engine
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.servers import PostgresServer, free_port
from shadowcanary.testing.unleash import UnleashHandle
from tests.faults.stack import ControllerProcess, controller_process
from tests.integration.controller_harness import FakeClock, ports_for, small_plan, webhook_sink

pytestmark = pytest.mark.integration

UNAVAILABLE = "shadowcanary_controller_service_unavailable"  # the parser drops _total


def _unavailable_count(metrics_port: int, rollout_label: str) -> float:
    """The controller's outage counter for Postgres, scraped from its /metrics endpoint."""
    try:
        body = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0  # not serving yet
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        if family.name == UNAVAILABLE
        for sample in family.samples
        if sample.name.endswith("_total")
        and sample.labels == {"rollout": rollout_label, "service": "postgres"}
    )


def _log_events(controller: ControllerProcess) -> list[dict[str, object]]:
    events = []
    for line in controller.output().splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


@pytest.mark.parametrize("which", ["--rollout", "--all"])
def test_controller_started_with_postgres_down_counts_logs_and_acts_on_nothing(
    which: str,
    own_postgres: PostgresServer,
    unleash: UnleashHandle,
    tmp_path: Path,
) -> None:
    """Blind start: alive, counted, logged, no webhook, flag untouched; acts once Postgres is up."""
    url = own_postgres.url
    engine = make_engine(url, pool_size=2)
    rollout = f"fault-blind-{uuid.uuid4().hex[:8]}"
    flag = f"{rollout}-flag"
    flags = UnleashFlags(unleash.url, unleash.admin_token, timeout_s=2)
    metrics_port = free_port()
    env = {
        "SHADOWCANARY_DATABASE_URL": url,
        "SHADOWCANARY_FLAGS": "unleash",
        "SHADOWCANARY_UNLEASH_URL": unleash.url,
        "SHADOWCANARY_UNLEASH_ADMIN_TOKEN": unleash.admin_token,
        "SHADOWCANARY_METRICS_PORT": str(metrics_port),
    }
    label = rollout if which == "--rollout" else EVERY_ROLLOUT
    clock = FakeClock(datetime.now(UTC))
    with webhook_sink() as sink:
        ports = ports_for(engine, url, flags, clock, actor="cli:sre")
        # No p99 trigger: a controller that can read the rollout takes the first step at once.
        plan = small_plan(rollout, flag, webhook=sink.url, triggers="  p99_latency: off")
        Operator(ports).start(plan)
        flag_before = flags.read(flag)
        operator_webhooks = len(sink.bodies)  # the operator's "started" message
        own_postgres.stop()
        with controller_process(
            env, rollout, tmp_path / "c.log", all_rollouts=which == "--all"
        ) as controller:
            # Several held ticks (backoff capped at 1 s): it keeps retrying, it is alive.
            wait_until(
                lambda: _unavailable_count(metrics_port, label) >= 3,
                timeout_s=30,
                interval_s=0.2,
                what="the outage counted three times",
            )
            alive_during = controller.proc.poll() is None
            events_during = _log_events(controller)
            webhooks_during = sink.bodies[operator_webhooks:]
            flag_during = flags.read(flag)

            own_postgres.start()  # returns once Postgres accepts connections
            store = ports.store
            advanced = wait_until(
                lambda: [
                    e
                    for e in store.history(rollout)
                    if e.action is AuditAction.ADVANCE
                    and e.actor.startswith("controller@")
                    and e.to_percent == 10
                ],
                timeout_s=30,
                what="the controller's first step once Postgres is back",
            )
            alive_after = controller.proc.poll() is None
            output = controller.output()
        flag_after = flags.read(flag)
        webhooks_after = sink.texts()[operator_webhooks:]

    assert alive_during and alive_after, output[-3000:]
    assert output.count('"event": "controller started"') == 1, "one start, no crash loop"
    assert "Traceback" not in output
    # Logged: the outage, naming Postgres, each held tick.
    held = [e for e in events_during if e.get("service") == "postgres"]
    assert len(held) >= 3, events_during
    assert all(e["level"] == "warning" and "unreachable" in str(e["event"]) for e in held)
    # Acted on nothing: no webhook reached the receiver, the Unleash flag did not move.
    assert webhooks_during == []
    assert flag_during == flag_before and flag_before.effective_percent == 0
    # Postgres back: the controller proceeds normally (one step to 10 %, and says so).
    assert len(advanced) == 1
    assert flag_after.effective_percent == 10
    assert any(f"ADVANCE {rollout}: 0 % -> 10 %" in text for text in webhooks_after), webhooks_after


class _StopAfter(threading.Event):
    """The loop's stop event: records each wait the loop asks for, stops after ``waits``."""

    def __init__(self, waits: int) -> None:
        super().__init__()
        self.waits = waits
        self.asked: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.asked.append(timeout)
        if len(self.asked) >= self.waits:
            self.set()
        return super().wait(timeout)


def _counted(rollout_label: str) -> float:
    labels = {"rollout": rollout_label, "service": "postgres"}
    return REGISTRY.get_sample_value(f"{UNAVAILABLE}_total", labels) or 0.0


def test_a_loop_that_never_read_its_rollouts_counts_the_outage_and_does_not_spin(
    own_postgres: PostgresServer,
) -> None:
    """Postgres lost after start, before any read (a standby's case): counted, logged, idle."""
    url = own_postgres.url
    engine = make_engine(url, pool_size=1)
    rollout = f"fault-blind-loop-{uuid.uuid4().hex[:8]}"
    flags = EmbeddedFlags(engine)
    with webhook_sink() as sink:
        ports = ports_for(engine, url, flags, FakeClock(datetime.now(UTC)))
        Operator(ports).start(small_plan(rollout, f"{rollout}-flag", webhook=sink.url))
        operator_webhooks = len(sink.bodies)
        own_postgres.stop()
        interval = LoopConfig(interval_s=0.2, max_backoff_s=1.0)
        one = ControllerLoop(ports, lock_engine(url), replace(interval, rollouts=(rollout,)))
        every = ControllerLoop(ports, lock_engine(url), interval)
        before_one, before_every = _counted(rollout), _counted(EVERY_ROLLOUT)
        with capture_logs() as logs:
            results = [r for _ in range(3) for r in one.run_once(force=True)]
            stop = _StopAfter(waits=3)
            every.run(stop)  # returns after three passes
        webhooks = sink.bodies[operator_webhooks:]
        own_postgres.start()

    # --rollout: each tick held on Postgres, with no record read and nothing changed.
    assert [(r.outcome, r.service, r.record) for r in results] == [
        (TickOutcome.UNAVAILABLE, "postgres", None)
    ] * 3
    assert _counted(rollout) - before_one == 3
    held = [e for e in logs if e.get("rollout") == rollout and e["log_level"] == "warning"]
    assert [e["event"] for e in held].count("tick held: dependency unreachable") == 3, logs
    # --all: the list of rollouts is unreadable; counted once a pass, an interval apart.
    assert _counted(EVERY_ROLLOUT) - before_every == 3
    assert all(wait is not None and wait >= interval.interval_s for wait in stop.asked), stop.asked
    assert any(e["event"].startswith("rollout list unreadable") for e in logs)
    assert webhooks == []  # nobody alerted: the webhooks live in the plan, in Postgres
