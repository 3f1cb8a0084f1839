"""Helpers for the controller tests: a settable clock, a webhook sink, plans, traffic.

Plain helpers (not fixtures), shared by test_controller.py and test_rollout_e2e.py.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import Engine

from flags.base import FlagBackend
from shadowcanary.controller.notify import WebhookNotifier
from shadowcanary.controller.tick import TickPorts
from shadowcanary.events import Arm, CallStatus
from shadowcanary.plan import RolloutPlan, parse_plan
from shadowcanary.settings import Settings, load_settings
from shadowcanary.store.inputs import AssessedCapture
from shadowcanary.store.locks import lock_engine
from shadowcanary.store.repository import Store
from shadowcanary.testing.factories import make_event, make_flags
from shadowcanary.wiring import build_ports

# Minute 0 of every test's fake timeline: a fixed past minute, so buckets are exact.
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    """The controller's clock, moved by the test (the judge reads time only from it)."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, minute: float, second: float = 0.0) -> datetime:
        self.now = T0 + timedelta(minutes=minute, seconds=second)
        return self.now


@dataclass
class WebhookSink:
    """A local HTTP server standing in for Slack: keeps every JSON body it receives."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def texts(self) -> list[str]:
        return [str(b.get("text", "")) for b in list(self.bodies)]


@contextmanager
def webhook_sink() -> Iterator[WebhookSink]:
    sink = WebhookSink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            sink.bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/secret-path"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


def small_plan(
    name: str,
    flag: str,
    *,
    webhook: str | None = None,
    triggers: str = "",
    min_canary: int = 100,
    extra: str = "",
    shadow: str = "off",
    watch: str = "off",
) -> RolloutPlan:
    """A plan sized for tests: 100 canary requests and 10 s per step, wide margins.

    No shadow gate and no watch unless asked for (``shadow`` / ``watch``: YAML).
    """
    hooks = f"notify: {{webhooks: [{json.dumps(webhook)}]}}" if webhook else ""
    text = f"""
name: {name}
flag: {flag}
baseline: gpt-5.2
candidate: gpt-5.5
unleash: {{environment: development}}
exposure: {{min_canary_requests: {min_canary}, min_events_per_arm: 25, min_duration: 10s,
            deadline: 1h}}
sample_ratio: {{grace: 0s}}
triggers:
  error_rate: {{margin: 0.05}}
  incomplete: {{margin: 0.05}}
  refusals: {{margin: 0.05}}
  invalid_json: {{margin: 0.05}}
  shadow_invalid_json: {{margin: 0.05}}
  # Wide: a loaded CI machine stalls single requests by hundreds of ms.
  p99_latency: {{margin_ms: 1000, quantile: 0.95}}
  quality: {{margin: 0.05}}
{triggers}
escalation: "#llm-oncall"
shadow: {shadow}
watch: {watch}
{hooks}
{extra}
"""
    return parse_plan(text, source=f"{name}.yaml")


def ports_for(
    engine: Engine,
    database_url: str,
    flags: FlagBackend,
    clock: FakeClock,
    *,
    actor: str | None = None,
    settings: Settings | None = None,
) -> TickPorts:
    """Ports as the controller wires them, with the test's clock and one flag backend.

    Without ``settings`` they are read from the environment once, as a process would.
    """
    return build_ports(
        engine=engine,
        lock_engine=lock_engine(database_url),
        flags_for=lambda _plan: flags,
        notifier=WebhookNotifier(timeout_s=2.0),
        settings=settings or load_settings(),
        clock=clock,
        actor=actor,
    )


def insert_minute(
    store: Store,
    rollout: str,
    minute: float,
    *,
    baseline: int,
    candidate: int = 0,
    candidate_errors: int = 0,
    latency_ms: float = 850.0,
) -> None:
    """Live traffic of one minute, straight into the store (the worker's own write path)."""
    start = T0 + timedelta(minutes=minute)
    total = baseline + candidate
    ok, failed = make_flags(), None
    # One validated event per kind, copied: validating thousands of events costs seconds.
    templates = {
        (arm, status): make_event(rollout=rollout, arm=arm, latency_ms=latency_ms, status=status)
        for arm in Arm
        for status in (CallStatus.OK, CallStatus.ERROR)
    }
    captures = []
    for i in range(total):
        arm = Arm.BASELINE if i < baseline else Arm.CANDIDATE
        is_error = arm is Arm.CANDIDATE and i - baseline < candidate_errors
        at = start + timedelta(seconds=1 + 58 * i / max(1, total))
        event = templates[(arm, CallStatus.ERROR if is_error else CallStatus.OK)].model_copy(
            update={
                "event_id": uuid.uuid4().hex,
                "started_at": at,
                "ended_at": at + timedelta(milliseconds=latency_ms),
            }
        )
        captures.append(
            AssessedCapture(event=event, flags=failed if is_error else ok, cost_usd=0.001)
        )
    store.insert_captures(captures, received_at=start + timedelta(seconds=59))
