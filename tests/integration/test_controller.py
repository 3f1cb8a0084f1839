"""The controller against real Postgres with the embedded flag backend.

Time is the test's (``FakeClock``): ticks happen on exact minute boundaries and live
traffic goes straight into the store through ``Store.insert_captures`` (the worker's
own write path), so each scenario controls exactly what the judge sees. The full
tap -> Redis -> Celery -> Postgres path with a real Unleash server is in
test_rollout_e2e.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from flags.embedded import EmbeddedFlags
from runbooks.view import FlagAccess
from shadowcanary.cli.rollout import controller_app, rollout_app
from shadowcanary.controller.operator import Operator
from shadowcanary.controller.policy import TickMemory
from shadowcanary.controller.tick import TickOutcome, tick
from shadowcanary.judge.decide import DecisionInputs, DecisionKind
from shadowcanary.rollout_records import AuditAction, RolloutStatus
from shadowcanary.store.db import make_engine, migrate
from shadowcanary.store.locks import LockState, RolloutLock, lock_engine
from shadowcanary.store.repository import Store
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.servers import PostgresServer
from tests.integration.controller_harness import (
    FakeClock,
    WebhookSink,
    insert_minute,
    ports_for,
    small_plan,
    webhook_sink,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with webhook_sink() as sink:
        yield sink


@dataclasses.dataclass
class Rig:
    """One rollout under test: its ports, clock, flag backend, store and tick memory."""

    engine: Engine
    database_url: str
    clock: FakeClock
    flags: EmbeddedFlags
    store: Store
    memory: TickMemory

    def ports(self, actor: str | None = None):  # type: ignore[no-untyped-def]
        return ports_for(self.engine, self.database_url, self.flags, self.clock, actor=actor)

    def tick(self, name: str, minute: float, second: float = 0.0):  # type: ignore[no-untyped-def]
        self.clock.at(minute, second)
        return tick(self.ports(), name, self.memory)

    def operator(self) -> Operator:
        return Operator(self.ports(actor="cli:tester"))

    def percent(self, flag: str) -> int:
        return self.flags.read(flag).effective_percent


@pytest.fixture
def rig(engine: Engine, database_url: str) -> Rig:
    return Rig(
        engine, database_url, FakeClock(), EmbeddedFlags(engine), Store(engine), TickMemory()
    )


def started(rig: Rig, plan_name: str, flag: str, **plan_args: object) -> str:
    """Start a rollout at 00:05 with a healthy pre-canary minute and take the first step."""
    plan = small_plan(plan_name, flag, **plan_args)  # type: ignore[arg-type]
    rig.clock.at(0, 5)
    rig.operator().start(plan)
    insert_minute(rig.store, plan_name, 0, baseline=600)
    result = rig.tick(plan_name, 1)
    assert result.decision is not None and result.decision.kind is DecisionKind.ADVANCE
    return plan_name


def healthy_minute(rig: Rig, name: str, minute: int, percent: int, total: int = 1000) -> None:
    canary = total * percent // 100
    insert_minute(rig.store, name, minute, baseline=total - canary, candidate=canary)


def test_first_tick_waits_for_the_baseline_p99_then_takes_the_first_step(rig: Rig) -> None:
    """No canary before the p99 is frozen from pre-canary traffic; then the flag goes to 10 %."""
    plan = small_plan("first-step", "first-step-flag")
    rig.clock.at(0, 5)
    rig.operator().start(plan)
    waiting = rig.tick("first-step", 1)
    assert waiting.decision is not None and waiting.decision.kind is DecisionKind.HOLD
    assert "p99" in waiting.decision.reason and rig.percent("first-step-flag") == 0
    insert_minute(rig.store, "first-step", 1, baseline=600, latency_ms=700.0)
    moved = rig.tick("first-step", 2)
    assert moved.flag_changed and rig.percent("first-step-flag") == 10
    record = moved.record
    assert record is not None and record.step_index == 0
    assert record.baseline_p99_ms == pytest.approx(700.0, rel=0.02)
    actions = [e.action for e in rig.ports().store.history("first-step")]
    assert actions[:2] == [AuditAction.ADVANCE, AuditAction.ADVANCE]  # confirmation, intent


def test_the_pre_canary_hold_says_how_many_of_how_many_and_how_to_get_there(rig: Rig) -> None:
    """Waiting for baseline traffic, the HOLD counts seen/needed and names the way to feed it."""
    plan = small_plan("few-baseline", "few-baseline-flag")
    rig.clock.at(0, 5)
    rig.operator().start(plan)
    insert_minute(rig.store, "few-baseline", 1, baseline=120)
    waiting = rig.tick("few-baseline", 2)
    assert waiting.decision is not None and waiting.decision.kind is DecisionKind.HOLD
    reason = waiting.decision.reason
    assert "120 of 500 baseline requests seen" in reason
    assert "shadowcanary up --rollout few-baseline" in reason
    assert "p99_latency trigger off" in reason
    assert rig.percent("few-baseline-flag") == 0


def test_healthy_rollout_steps_to_complete_and_every_decision_replays(rig: Rig) -> None:
    """10 -> 30 -> 50 -> 100 -> COMPLETE; each audited decision recomputes identically."""
    name = started(rig, "healthy", "healthy-flag")
    seen = []
    for minute, percent in ((1, 10), (2, 30), (3, 50)):
        healthy_minute(rig, name, minute, percent)
        result = rig.tick(name, minute + 1)
        assert result.decision is not None, result
        assert result.decision.kind is DecisionKind.ADVANCE, result.decision.reason
        seen.append(rig.percent("healthy-flag"))
    assert seen == [30, 50, 100]
    done = rig.tick(name, 4, 30)
    assert done.decision is not None and done.decision.kind is DecisionKind.COMPLETE
    assert done.record is not None and done.record.status is RolloutStatus.COMPLETED
    assert rig.tick(name, 5).outcome is TickOutcome.IDLE
    replayed = 0
    for entry in rig.ports().store.history(name):
        if entry.inputs is None:
            continue
        inputs = DecisionInputs.from_json(json.dumps(entry.inputs))
        assert inputs.decide().to_dict() == entry.decision, entry.action
        replayed += 1
    assert replayed >= 4  # three advances and the completion


def test_error_regression_rolls_back_and_names_the_trigger(rig: Rig, sink: WebhookSink) -> None:
    """A canary failing 15 % against a clean baseline goes to 0 %; the audit row has the numbers."""
    name = started(rig, "regress", "regress-flag", webhook=sink.url)
    insert_minute(rig.store, name, 1, baseline=900, candidate=100, candidate_errors=15)
    result = rig.tick(name, 2)
    assert result.decision is not None and result.decision.kind is DecisionKind.ROLLBACK
    assert rig.percent("regress-flag") == 0
    assert result.record is not None and result.record.status is RolloutStatus.ROLLED_BACK
    entry = next(e for e in rig.ports().store.history(name) if e.action is AuditAction.ROLLBACK)
    assert entry.to_percent == 0 and "error_rate" in entry.reason and "15/100" in entry.reason
    trigger = next(t for t in (entry.decision or {})["triggers"] if t["name"] == "error_rate")
    assert trigger["verdict"] == "harm" and trigger["statistic"] >= trigger["threshold"]
    body = wait_until(
        lambda: next((b for b in sink.bodies if "ROLLBACK" in b["text"]), None),
        timeout_s=5,
        what="the rollback webhook",
    )
    blob = json.dumps(body)
    assert "error_rate" in blob and "10 % -> 0 %" in blob and body and "blocks" in body
    assert "secret-path" not in blob  # the webhook URL itself is a secret


def test_dry_run_trigger_records_harm_but_never_acts(rig: Rig) -> None:
    """An error_rate trigger in dry-run sees the regression, records it, and the flag stays."""
    name = started(rig, "dry", "dry-flag", triggers="  error_rate: {margin: 0.05, mode: dry-run}")
    insert_minute(rig.store, name, 1, baseline=900, candidate=100, candidate_errors=15)
    result = rig.tick(name, 2)
    assert result.decision is not None
    assert result.decision.kind is not DecisionKind.ROLLBACK
    assert "dry-run, not acted on: error_rate" in result.decision.reason
    assert rig.percent("dry-flag") in (10, 30)  # never 0
    recorded = [
        e
        for e in rig.ports().store.history(name)
        if e.decision and e.inputs and e.at == rig.clock.now
    ]
    assert recorded, "the decision with the dry-run harm is in the audit log"
    verdicts = {t["name"]: t["verdict"] for t in (recorded[0].decision or {})["triggers"]}
    assert verdicts["error_rate"] == "harm"


def test_a_step_past_its_deadline_escalates_once(rig: Rig, sink: WebhookSink) -> None:
    """No verdict by the deadline: HOLD, one ESCALATE entry and one page, not one per tick."""
    name = started(
        rig,
        "late-step",
        "late-step-flag",
        webhook=sink.url,
        extra="steps: [{percent: 10, min_duration: 10s, deadline: 30s}, 30, 50, 100]",
    )
    insert_minute(rig.store, name, 1, baseline=950, candidate=50)  # too few canary requests
    for minute in (2, 3, 4):
        result = rig.tick(name, minute)
        assert result.decision is not None and result.decision.kind is DecisionKind.HOLD
        assert result.decision.escalate and "deadline" in result.decision.reason
    escalations = [e for e in rig.ports().store.history(name) if e.action is AuditAction.ESCALATE]
    assert len(escalations) == 1 and escalations[0].inputs is not None
    pages = [t for t in sink.texts() if "needs a person #llm-oncall" in t]
    assert len(pages) == 1, sink.texts()
    assert rig.percent("late-step-flag") == 10


def test_manual_override_stops_the_controller_until_resume(rig: Rig, sink: WebhookSink) -> None:
    """Someone sets 40 % behind the controller's back: override recorded, no more acting."""
    name = started(rig, "override", "override-flag", webhook=sink.url)
    rig.flags.set_rollout("override-flag", 40)  # as an SRE would, outside the controller
    result = rig.tick(name, 1, 30)
    assert result.outcome is TickOutcome.OVERRIDE
    entry = rig.ports().store.history(name)[0]
    assert entry.action is AuditAction.MANUAL_OVERRIDE
    assert (entry.from_percent, entry.to_percent) == (10, 40)
    healthy_minute(rig, name, 1, 10)
    for minute in (2, 3):
        assert rig.tick(name, minute).outcome is TickOutcome.IDLE
    assert rig.percent("override-flag") == 40
    assert any("MANUAL OVERRIDE" in t for t in sink.texts())
    resumed = rig.operator().resume(name)
    # 40 % is not a step: resume goes down to the step below, never up.
    assert resumed.status is RolloutStatus.RUNNING and resumed.percent == 30
    assert rig.percent("override-flag") == 30
    assert rig.ports().store.history(name)[0].actor == "cli:tester"


def test_crash_between_flag_write_and_record_is_recovered_not_overridden(rig: Rig) -> None:
    """The flag reached the intended step but the process died before saving: finish the step."""
    name = started(rig, "crash", "crash-flag")
    healthy_minute(rig, name, 1, 10)

    class Killed(BaseException):
        """The process dies here (nothing below it runs)."""

    class DiesAfterWrite(EmbeddedFlags):
        def set_rollout(self, flag: str, percent: int):  # type: ignore[no-untyped-def]
            super().set_rollout(flag, percent)
            raise Killed

    dying = ports_for(rig.engine, rig.database_url, DiesAfterWrite(rig.engine), rig.clock)
    rig.clock.at(2)
    with pytest.raises(Killed):
        tick(dying, name, TickMemory())
    assert rig.percent("crash-flag") == 30
    assert rig.ports().store.get(name).percent == 10  # the record never saw it
    result = rig.tick(name, 2, 20)  # a fresh controller (new memory) after the restart
    assert result.outcome is TickOutcome.DECIDED
    record = rig.ports().store.get(name)
    assert (record.status, record.percent, record.step_index) == (RolloutStatus.RUNNING, 30, 1)
    actions = [e.action for e in rig.ports().store.history(name)]
    assert AuditAction.MANUAL_OVERRIDE not in actions
    recovered = next(e for e in rig.ports().store.history(name) if e.reason.startswith("recovered"))
    assert recovered.to_percent == 30 and recovered.at == rig.clock.now - timedelta(seconds=20)


def test_operator_commands_are_audited_and_rollback_is_idempotent(rig: Rig) -> None:
    """Every command leaves an entry naming the actor; a second rollback changes nothing."""
    name = started(rig, "ops", "ops-flag")
    op = rig.operator()
    rig.clock.at(1, 10)
    assert op.pause(name).status is RolloutStatus.PAUSED
    assert rig.tick(name, 1, 20).outcome is TickOutcome.IDLE
    assert op.resume(name).status is RolloutStatus.RUNNING
    promoted = op.promote(name, 50)
    assert (promoted.percent, promoted.step_index) == (50, 2) and rig.percent("ops-flag") == 50
    first = op.rollback(name, "bad answers in support")
    assert first.status is RolloutStatus.ROLLED_BACK and rig.percent("ops-flag") == 0
    entries = len(rig.ports().store.history(name))
    again = op.rollback(name)
    assert (
        again.status is RolloutStatus.ROLLED_BACK
        and len(rig.ports().store.history(name)) == entries
    )
    rig.flags.set_rollout("ops-flag", 20)  # someone turns it back on: the controller keeps 0 %
    kept = rig.tick(name, 2)
    assert kept.flag_changed and rig.percent("ops-flag") == 0
    assert op.abort(name).status is RolloutStatus.ABORTED
    history = rig.ports().store.history(name)
    by_actor = {(e.action, e.actor) for e in history}
    for action in (AuditAction.PAUSE, AuditAction.RESUME, AuditAction.PROMOTE, AuditAction.ABORT):
        assert (action, "cli:tester") in by_actor
    assert any(e.action is AuditAction.ROLLBACK and "bad answers" in e.reason for e in history)


def test_advisory_lock_has_one_holder_and_frees_on_connection_loss(database_url: str) -> None:
    """Only one RolloutLock is held; killing the holder's session hands it to the standby."""
    engine = lock_engine(database_url)
    first, second = RolloutLock(engine, "locked"), RolloutLock(engine, "locked")
    other = RolloutLock(engine, "another-rollout")
    try:
        assert first.try_acquire() is LockState.HELD
        assert second.try_acquire() is LockState.TAKEN
        assert other.try_acquire() is LockState.HELD
        assert first.still_held()
        admin = make_engine(database_url, pool_size=1)
        with admin.begin() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = :key"
                ),
                {"key": first.key},
            )
        admin.dispose()
        assert not first.still_held()
        assert second.try_acquire() is LockState.HELD
        assert first.try_acquire() is LockState.TAKEN
    finally:
        for lock in (first, second, other):
            lock.release()
        engine.dispose()


def test_loop_with_all_drives_every_rollout_that_needs_a_controller(rig: Rig) -> None:
    """--all: running and rolled-back rollouts are ticked (and locked); finished ones let go."""
    from shadowcanary.controller.loop import ControllerLoop, LoopConfig

    for name in ("all-a", "all-b", "all-c"):
        rig.clock.at(0, 5)
        rig.operator().start(small_plan(name, f"{name}-flag", triggers="  p99_latency: off"))
    rig.operator().abort("all-c")
    loop = ControllerLoop(rig.ports(), lock_engine(rig.database_url), LoopConfig(interval_s=60))
    try:
        rig.clock.at(1)
        results = {r.rollout: r for r in loop.run_once(force=True)}
        assert sorted(results) == ["all-a", "all-b"]
        assert all(r.flag_changed for r in results.values())  # both took their first step
        assert loop.holds("all-a") and not loop.holds("all-c")
        assert loop.run_once() == []  # nothing due before the interval
        rig.operator().rollback("all-b")
        rig.flags.set_rollout("all-b-flag", 25)
        results = {r.rollout: r for r in loop.run_once(force=True)}
        assert results["all-b"].flag_changed and rig.percent("all-b-flag") == 0
    finally:
        loop.release()
    assert not loop.holds("all-a")


def _controller_process(database_url: str, rollout: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWCANARY_")}
    env.update({"SHADOWCANARY_DATABASE_URL": database_url, "SHADOWCANARY_LOG_LEVEL": "info"})
    code = "from shadowcanary.cli.rollout import controller_app; controller_app()"
    args = ["run", "--rollout", rollout, "--interval", "200ms", "--max-backoff", "1s"]
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code, *args],
            env=env,
            cwd=Path(__file__).resolve().parents[2],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_two_controllers_only_one_acts_and_the_standby_takes_over(
    rig: Rig, database_url: str, tmp_path: Path
) -> None:
    """Two `controller run` processes: one holds the lock and acts; SIGKILL it, the other acts."""
    plan = small_plan("pair", "pair-flag", triggers="  p99_latency: off")
    rig.clock.now = datetime.now(UTC)  # the controller processes run on the real clock
    rig.operator().start(plan)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [_controller_process(database_url, "pair", log) for log in logs]
    try:

        def holder() -> int | None:
            held = [
                i for i, log in enumerate(logs) if "controller lock acquired" in log.read_text()
            ]
            return held[0] if len(held) == 1 else None

        first = wait_until(lambda: (h := holder()) is not None and h + 1, timeout_s=30) - 1
        wait_until(lambda: rig.percent("pair-flag") == 10, timeout_s=10, what="first step")
        actors = {e.actor for e in rig.ports().store.history("pair") if e.actor != "cli:tester"}
        assert actors and all(a.endswith(f":{procs[first].pid}") for a in actors), actors
        standby = 1 - first
        assert "controller lock acquired" not in logs[standby].read_text()
        procs[first].send_signal(signal.SIGKILL)
        procs[first].wait(timeout=10)
        wait_until(
            lambda: "controller lock acquired" in logs[standby].read_text(),
            timeout_s=15,
            what="the standby taking over",
        )
        # The new holder acts: its first tick records the rollout's state under its name.
        wait_until(
            lambda: any(
                e.actor.endswith(f":{procs[standby].pid}")
                for e in rig.ports().store.history("pair")
            ),
            timeout_s=15,
            what="an audit entry by the standby",
        )
        procs[standby].send_signal(signal.SIGTERM)
        assert procs[standby].wait(timeout=15) == 0
        assert "controller stopped" in logs[standby].read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def test_postgres_down_holds_alerts_and_resumes(sink: WebhookSink) -> None:
    """Postgres stops mid-rollout: ticks hold (no flag change), alert once, and resume after."""
    # Under /tmp, not tmp_path: the postgres OS user must traverse the directory.
    directory = Path(tempfile.mkdtemp(prefix="sc-pg-controller-"))
    server = PostgresServer(directory).start()
    url = server.url
    try:
        migrate(url)
        engine = make_engine(url, pool_size=2)
        rig = Rig(engine, url, FakeClock(), EmbeddedFlags(engine), Store(engine), TickMemory())
        name = started(rig, "pgdown", "pgdown-flag", webhook=sink.url)
        healthy_minute(rig, name, 1, 10)
        with engine.connect() as conn:  # the test server runs without fsync: flush first
            conn.execute(text("CHECKPOINT"))
        server.stop()
        for second in (0, 10, 20):
            result = rig.tick(name, 2, second)
            assert result.outcome is TickOutcome.UNAVAILABLE and result.service == "postgres"
        alerts = [t for t in sink.texts() if "Postgres" in t and "HOLD" in t]
        assert len(alerts) == 1, sink.texts()
        server.start()
        back = rig.tick(name, 2, 30)
        assert back.decision is not None and back.decision.kind is DecisionKind.ADVANCE
        assert rig.percent("pgdown-flag") == 30
        history = rig.ports().store.history(name)
        assert any(e.action is AuditAction.ALERT and "reachable again" in e.reason for e in history)
        engine.dispose()
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_cli_exit_codes_and_json(rig: Rig, database_url: str, tmp_path: Path) -> None:
    """0 on success, 1 with an error line and hint on failure, 2 on usage; --json parses."""
    runner = CliRunner()
    env = {"SHADOWCANARY_DATABASE_URL": database_url, "SHADOWCANARY_LOG_LEVEL": "warning"}
    plan_file = tmp_path / "cli.yaml"
    plan_file.write_text(
        "name: cli-rollout\nflag: cli-flag\nbaseline: gpt-5.2\ncandidate: gpt-5.5\n"
    )
    ok = runner.invoke(rollout_app, ["start", str(plan_file)], env=env)
    assert ok.exit_code == 0, ok.output
    again = runner.invoke(rollout_app, ["start", str(plan_file)], env=env)
    assert again.exit_code == 1 and "error:" in again.output and "hint:" in again.output
    assert (
        runner.invoke(rollout_app, ["promote", "cli-rollout", "--to", "0"], env=env).exit_code == 2
    )
    assert runner.invoke(controller_app, ["run"], env=env).exit_code == 2
    missing = runner.invoke(rollout_app, ["pause", "no-such-rollout"], env=env)
    assert missing.exit_code == 1 and "no rollout named" in missing.output
    status = runner.invoke(rollout_app, ["status", "--json"], env=env)
    assert status.exit_code == 0
    rows = json.loads(status.output)
    assert rows[0]["name"] == "cli-rollout" and rows[0]["status"] == "running"
    assert runner.invoke(rollout_app, ["rollback", "cli-rollout"], env=env).exit_code == 0
    history = runner.invoke(rollout_app, ["history", "cli-rollout", "--json"], env=env)
    entries = json.loads(history.output)
    assert [e["action"] for e in entries][:2] == ["rollback", "start"]
    assert entries[0]["actor"].startswith("cli:")
    table = runner.invoke(rollout_app, ["status", "cli-rollout"], env=env)
    assert table.exit_code == 0 and "rolled_back" in table.output


def test_rollback_with_the_flag_backend_down_is_recorded_and_enforced(rig: Rig) -> None:
    """The command fails loudly (exit 1 path) but the rollback stands; the next tick sets 0 %."""
    name = started(rig, "late", "late-flag")
    from flags.unleash import UnleashFlags
    from shadowcanary.errors import ServiceUnavailable
    from shadowcanary.testing.servers import free_port

    dead = UnleashFlags(f"http://127.0.0.1:{free_port()}", "admin-token", timeout_s=0.5)
    op = Operator(ports_for(rig.engine, rig.database_url, dead, rig.clock, actor="cli:tester"))
    rig.clock.at(1, 10)
    with pytest.raises(ServiceUnavailable):
        op.rollback(name)
    record = rig.ports().store.get(name)
    assert record.status is RolloutStatus.ROLLED_BACK and rig.percent("late-flag") == 10
    entry = rig.ports().store.history(name)[0]
    assert entry.to_percent is None and "retries every tick" in entry.reason
    enforced = rig.tick(name, 1, 20)
    assert enforced.flag_changed and rig.percent("late-flag") == 0


def test_each_advance_places_the_tail_threshold_at_the_baseline_as_it_is_now(rig: Rig) -> None:
    """Both arms slowed down during 10 %: the 30 % step compares them at the new baseline p99."""
    name = started(rig, "replace-p99", "replace-p99-flag")
    frozen = rig.ports().store.get(name).baseline_p99_ms
    assert frozen == pytest.approx(850.0, rel=0.02)
    insert_minute(rig.store, name, 1, baseline=900, candidate=100, latency_ms=1700.0)
    moved = rig.tick(name, 2)
    assert moved.decision is not None and moved.decision.kind is DecisionKind.ADVANCE
    assert moved.record is not None and moved.record.percent == 30
    assert moved.record.baseline_p99_ms == pytest.approx(1700.0, rel=0.02)
    advance = rig.ports().store.history(name)[0]
    assert "tail threshold placed at baseline p99 1" in advance.reason, advance.reason


def test_promote_out_of_the_pre_canary_phase_freezes_the_baseline_p99(rig: Rig) -> None:
    """A promote before the first step freezes the p99 as the first tick would, so p99 judges."""
    plan = small_plan("promote-early", "promote-early-flag")
    rig.clock.at(0, 5)
    rig.operator().start(plan)
    insert_minute(rig.store, "promote-early", 0, baseline=600, latency_ms=700.0)
    rig.clock.at(1)
    promoted = rig.operator().promote("promote-early", 30)
    assert (promoted.percent, rig.percent("promote-early-flag")) == (30, 30)
    assert promoted.baseline_p99_ms == pytest.approx(700.0, rel=0.02)
    entry = rig.ports().store.history("promote-early")[0]
    assert entry.action is AuditAction.PROMOTE and "baseline p99 frozen at" in entry.reason
    # The tail trigger has a threshold to judge against, not "not yet".
    healthy_minute(rig, "promote-early", 1, 30)
    decided = rig.tick("promote-early", 2)
    assert decided.decision is not None
    tail = next(t for t in decided.decision.triggers if t.name == "p99_latency")
    assert "no baseline p99 frozen yet" not in tail.detail, tail.detail


def test_promote_without_enough_baseline_traffic_says_the_p99_cannot_judge(rig: Rig) -> None:
    """Too little pre-canary traffic: the promote goes and says so; a later tick freezes it."""
    plan = small_plan("promote-blind", "promote-blind-flag")
    rig.clock.at(0, 5)
    rig.operator().start(plan)
    insert_minute(rig.store, "promote-blind", 0, baseline=20)
    rig.clock.at(1)
    promoted = rig.operator().promote("promote-blind", 10)
    assert (promoted.percent, promoted.baseline_p99_ms) == (10, None)
    entry = rig.ports().store.history("promote-blind")[0]
    assert "p99 is NOT frozen" in entry.reason and "cannot" in entry.reason
    # Once the baseline arm has served enough, a tick freezes it and the tail judges.
    insert_minute(rig.store, "promote-blind", 1, baseline=600, candidate=60, latency_ms=700.0)
    decided = rig.tick("promote-blind", 2)
    assert decided.record is not None
    assert decided.record.baseline_p99_ms == pytest.approx(700.0, rel=0.02)
    history = rig.ports().store.history("promote-blind")
    frozen = next(e for e in history if "not frozen before the canary" in e.reason)
    assert "frozen at" in frozen.reason and "judges from now on" in frozen.reason
    assert decided.decision is not None
    tail = next(t for t in decided.decision.triggers if t.name == "p99_latency")
    assert "no baseline p99 frozen yet" not in tail.detail, tail.detail


def test_changes_while_overridden_are_recorded_never_acted_on(rig: Rig, sink: WebhookSink) -> None:
    """A second change in the UI after an override is audited, sent and kept in the record."""
    name = started(rig, "observe", "observe-flag", webhook=sink.url)
    rig.flags.set_rollout("observe-flag", 25)  # a person, in the UI
    assert rig.tick(name, 1, 20).outcome is TickOutcome.OVERRIDE
    rig.flags.set_rollout("observe-flag", 40)  # and again
    seen = rig.tick(name, 1, 40)
    assert seen.outcome is TickOutcome.OVERRIDE and not seen.flag_changed
    assert rig.percent("observe-flag") == 40  # observed, never acted on
    record = rig.ports().store.get(name)
    assert (record.status, record.percent) == (RolloutStatus.OVERRIDDEN, 40)
    newest = rig.ports().store.history(name)[0]
    assert newest.action is AuditAction.MANUAL_OVERRIDE
    assert (newest.from_percent, newest.to_percent) == (25, 40)
    wait_until(
        lambda: any("40" in t and "OVERRIDE" in t for t in sink.texts()),
        timeout_s=5,
        what="the second change's webhook",
    )
    entries = len(rig.ports().store.history(name))
    assert rig.tick(name, 2).outcome is TickOutcome.IDLE  # unchanged: nothing new recorded
    assert len(rig.ports().store.history(name)) == entries
    rig.clock.at(2, 30)
    rig.operator().resume(name)
    resume = rig.ports().store.history(name)[0]
    assert resume.action is AuditAction.RESUME and resume.from_percent == 40


def test_changes_while_paused_are_recorded_and_the_pause_stays(rig: Rig) -> None:
    """A paused rollout still records what happens to its flag, and stays paused."""
    name = started(rig, "observe-paused", "observe-paused-flag")
    rig.clock.at(1, 10)
    rig.operator().pause(name)
    rig.flags.set_rollout("observe-paused-flag", 30)
    assert rig.tick(name, 1, 20).outcome is TickOutcome.OVERRIDE
    record = rig.ports().store.get(name)
    assert (record.status, record.percent) == (RolloutStatus.PAUSED, 30)
    assert rig.percent("observe-paused-flag") == 30


def _runbook(rig: Rig, name: str) -> str:
    from runbooks.generator import read_inputs, render_runbook

    record = rig.ports().store.get(name)
    return render_runbook(read_inputs(rig.ports().store, record, None, FlagAccess()))


def test_status_and_runbook_say_overridden_with_the_flags_real_percent(rig: Rig) -> None:
    """While overridden, status and runbook lead with the override and the flag's real %."""
    from shadowcanary.controller.views import status_data

    name = started(rig, "told", "told-flag")
    rig.tick(name, 1, 10)  # a HOLD: too little data yet
    rig.flags.set_rollout("told-flag", 25)
    rig.tick(name, 1, 20)
    rig.flags.set_rollout("told-flag", 40)
    rig.tick(name, 1, 40)
    [row] = status_data(rig.ports().store, [rig.ports().store.get(name)])
    assert row["percent"] == 40
    assert row["last_change"]["action"] == "manual_override"
    assert "25 % to 40 %" in row["last_change"]["reason"]
    text = _runbook(rig, name)
    assert "It now serves 40 % of users" in text
    assert "Last change: 25 % -> 40 %" in text
    assert "**Since then:** manual override (25 % -> 40 %)" in text
    assert "not now (40 %)" in text


def test_runbook_after_an_operator_rollback_gives_the_operators_reason(rig: Rig) -> None:
    """The rolled-back runbook's "Why" is the operator's --reason, not the last HOLD's."""
    name = started(rig, "why", "why-flag")
    rig.tick(name, 1, 10)  # a HOLD: too little data yet
    rig.clock.at(1, 30)
    rig.operator().rollback(name, "support tickets about tone")
    text = _runbook(rig, name)
    why = next(line for line in text.splitlines() if line.startswith("Why:"))
    assert "support tickets about tone" in why and "cli:tester" in why


def test_resume_above_the_judged_step_says_which_steps_lack_evidence(rig: Rig) -> None:
    """From the 10 % step overridden to 50 %, resume continues at 50 % and names 10 and 30 %."""
    name = started(rig, "jump", "jump-flag")
    rig.flags.set_rollout("jump-flag", 50)
    rig.tick(name, 1, 20)
    rig.clock.at(1, 30)
    resumed = rig.operator().resume(name)
    assert (resumed.percent, resumed.step_index) == (50, 2)
    entry = rig.ports().store.history(name)[0]
    assert entry.action is AuditAction.RESUME
    assert "WITHOUT the evidence of 10 %, 30 %" in entry.reason
    text = _runbook(rig, name)
    assert "does not go back for\nthe evidence of steps" in text


def test_resume_at_the_recorded_step_claims_nothing_skipped(rig: Rig) -> None:
    """A pause and resume at the same step passes no step, and says nothing of the kind."""
    name = started(rig, "nojump", "nojump-flag")
    rig.clock.at(1, 10)
    rig.operator().pause(name)
    rig.operator().resume(name)
    assert "WITHOUT" not in rig.ports().store.history(name)[0].reason


def _two_runs(rig: Rig) -> tuple[str, int, int]:
    """Rollout "again" started, rolled back, started again: (name, first run, second run)."""
    name = started(rig, "again", "again-flag")
    rig.clock.at(1, 30)
    rig.operator().rollback(name, "first try went badly")
    rig.clock.at(2)
    rig.operator().abort(name)
    rig.clock.at(3)
    rig.operator().start(small_plan("again", "again-flag"))
    first, second = [e.id for e in rig.ports().store.runs(name)]
    assert first is not None and second is not None
    return name, first, second


def test_history_shows_the_current_run_and_older_runs_on_request(
    rig: Rig, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rollout history` shows only the current run by default; --run and --all-runs the rest."""
    from shadowcanary.cli import support as cli_support

    monkeypatch.setattr(cli_support.console, "width", 200)
    name, first, second = _two_runs(rig)
    env = {"SHADOWCANARY_DATABASE_URL": database_url, "SHADOWCANARY_LOG_LEVEL": "warning"}
    runner = CliRunner()

    def entries(*args: str) -> list[dict[str, object]]:
        result = runner.invoke(rollout_app, ["history", name, "--json", *args], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    current = entries()
    assert {e["run"] for e in current} == {second}
    assert [e["action"] for e in current] == ["start"]
    older = entries("--run", str(first))
    assert {e["run"] for e in older} == {first}
    assert "first try went badly" in json.dumps(older)
    assert len(entries("--all-runs")) == len(current) + len(older)
    table = runner.invoke(rollout_app, ["history", name], env=env)
    assert f"run {second}" in table.output and f"--run {first}" in table.output
    wrong = runner.invoke(rollout_app, ["history", name, "--run", "999999"], env=env)
    assert wrong.exit_code == 2 and f"its runs: {first}, {second}" in wrong.output


def test_history_and_triggers_fit_80_columns(
    rig: Rig, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 80 columns no line is wider than the terminal and timestamps are whole."""
    from shadowcanary.cli import support as cli_support

    monkeypatch.setattr(cli_support.console, "width", 80)
    name = started(rig, "narrow", "narrow-flag")
    healthy_minute(rig, name, 1, 10)
    decided = rig.tick(name, 2)
    assert decided.decision is not None and decided.decision.triggers
    env = {"SHADOWCANARY_DATABASE_URL": database_url, "SHADOWCANARY_LOG_LEVEL": "warning"}
    runner = CliRunner()
    history = runner.invoke(rollout_app, ["history", name], env=env)
    status = runner.invoke(rollout_app, ["status", name], env=env)
    for result in (history, status):
        assert result.exit_code == 0, result.output
        assert max(len(line) for line in result.output.splitlines()) <= 80
        assert "…" not in result.output
    assert rig.clock.now.strftime("%Y-%m-%d %H:%M:%S") in history.output
    assert "Trigger error_rate (last decision)" in status.output
