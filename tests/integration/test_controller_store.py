"""RolloutStore against a real PostgreSQL: rollouts, optimistic concurrency, audit log."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from shadowcanary.errors import PermanentError, ServiceUnavailable
from shadowcanary.plan import RolloutPlan, parse_plan
from shadowcanary.rollout_records import (
    AuditAction,
    AuditEntry,
    RolloutRecord,
    RolloutStatus,
)
from shadowcanary.store.db import make_engine
from shadowcanary.store.rollouts import (
    RolloutExists,
    RolloutNotFound,
    RolloutStore,
    StaleRollout,
)
from shadowcanary.testing.servers import free_port

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)

FULL_PLAN = """
name: checkout-gpt55
flag: checkout-model
baseline: gpt-5.2
candidate: gpt-5.5
unleash: {project: payments, environment: staging}
steps: [5, {percent: 25, min_canary_requests: 3000, deadline: 6h}, 60, 100]
exposure: {min_duration: 15m, deadline: 1d}
alpha: 0.02
triggers:
  error_rate: {margin: 0.02}
  cost: act
  refusals: off
  judge_score: {margin: 0.15}
  p99_latency: {margin_ms: 350, quantile: 0.995}
stale_after: 90s
stickiness: conversationId
notify: {webhooks: ["https://hooks.example.com/T000/B000/xyz"]}
escalation: "#payments-oncall"
"""


def plan(name: str = "checkout-gpt55") -> RolloutPlan:
    return RolloutPlan(name=name, flag="checkout-model", baseline="gpt-5.2", candidate="gpt-5.5")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> RolloutStore:
    return RolloutStore(engine)


def entry(
    rollout: str,
    action: AuditAction,
    at: datetime,
    to_percent: int | None = None,
    from_percent: int | None = None,
    actor: str = "controller",
) -> AuditEntry:
    return AuditEntry(
        id=None,
        at=at,
        rollout=rollout,
        actor=actor,
        action=action,
        from_percent=from_percent,
        to_percent=to_percent,
        reason=f"{action.value} in a test",
        decision=None,
        inputs=None,
    )


def advance(
    store: RolloutStore, record: RolloutRecord, percent: int, at: datetime
) -> RolloutRecord:
    step = record.plan.step_percents.index(percent)
    moved = dataclasses.replace(
        record, step_index=step, percent=percent, step_started_at=at, updated_at=at
    )
    return store.save(
        moved, entry(record.name, AuditAction.ADVANCE, at, percent, from_percent=record.percent)
    )


def test_create_then_get_returns_the_rollout_with_its_plan(store: RolloutStore) -> None:
    """A created rollout starts at step -1, 0 %, version 1, and reads back equal."""
    full = parse_plan(FULL_PLAN)
    created = store.create_rollout(full, now=T0, actor="cli:alice")
    assert created.status is RolloutStatus.RUNNING
    assert (created.step_index, created.percent, created.version) == (-1, 0, 1)
    assert created.started_at == created.step_started_at == created.updated_at == T0
    assert created.baseline_p99_ms is None
    fetched = store.get("checkout-gpt55")
    assert fetched == created
    assert fetched.plan == full  # every non-default field survived the JSONB round trip
    assert fetched.plan.exposure_at(1).deadline == timedelta(hours=6)


def test_create_writes_a_start_entry(store: RolloutStore) -> None:
    """Creating a rollout writes one START audit entry with the actor and the flag at 0 %."""
    store.create_rollout(plan(), now=T0, actor="cli:alice")
    (start,) = store.history("checkout-gpt55")
    assert start.action is AuditAction.START
    assert (start.actor, start.at, start.to_percent) == ("cli:alice", T0, 0)
    assert start.id is not None
    assert "gpt-5.2 -> gpt-5.5" in start.reason


def test_an_active_rollout_name_cannot_be_created_twice(store: RolloutStore) -> None:
    """A second create of a running rollout fails with RolloutExists and changes nothing."""
    store.create_rollout(plan(), now=T0, actor="cli:alice")
    with pytest.raises(RolloutExists, match="already running") as caught:
        store.create_rollout(plan(), now=T0 + timedelta(hours=1), actor="cli:bob")
    assert caught.value.hint is not None and "abort" in caught.value.hint
    assert store.get("checkout-gpt55").started_at == T0
    assert len(store.history("checkout-gpt55")) == 1


def test_concurrent_creates_of_one_name_let_exactly_one_win(store: RolloutStore) -> None:
    """Eight threads creating the same rollout at once: one succeeds, seven get RolloutExists."""
    results: list[object] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        try:
            results.append(store.create_rollout(plan(), now=T0, actor="controller"))
        except RolloutExists as exc:
            results.append(exc)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sum(isinstance(r, RolloutRecord) for r in results) == 1
    assert sum(isinstance(r, RolloutExists) for r in results) == 7
    assert len(store.history("checkout-gpt55")) == 1


def test_a_finished_rollout_name_can_be_started_again(store: RolloutStore) -> None:
    """After a rollback the name is reused: the row restarts, its version keeps counting up."""
    first = store.create_rollout(plan(), now=T0, actor="cli:alice")
    first = advance(store, first, 10, T0 + timedelta(minutes=1))
    rolled_back = dataclasses.replace(
        first, status=RolloutStatus.ROLLED_BACK, percent=0, updated_at=T0 + timedelta(minutes=2)
    )
    rolled_back = store.save(
        rolled_back,
        entry(first.name, AuditAction.ROLLBACK, T0 + timedelta(minutes=2), 0, from_percent=10),
    )
    later = T0 + timedelta(days=1)
    again = store.create_rollout(plan(), now=later, actor="cli:bob")
    assert again.version == rolled_back.version + 1
    assert (again.status, again.step_index, again.started_at) == (RolloutStatus.RUNNING, -1, later)
    actions = [e.action for e in store.history(again.name)]
    assert actions == [
        AuditAction.START,
        AuditAction.ROLLBACK,
        AuditAction.ADVANCE,
        AuditAction.START,
    ]
    assert store.percent_timeline(again.name) == [(later, 0)]  # only the current run


def test_list_returns_every_rollout_by_name(store: RolloutStore) -> None:
    """list() returns all rollouts, active or not, ordered by name."""
    for name in ("zeta", "alpha", "mid"):
        store.create_rollout(plan(name), now=T0, actor="controller")
    assert [r.name for r in store.list()] == ["alpha", "mid", "zeta"]


def test_unknown_rollout_error_lists_the_known_ones(store: RolloutStore) -> None:
    """get/history/percent_timeline of an unknown name raise RolloutNotFound naming what exists."""
    with pytest.raises(RolloutNotFound) as empty:
        store.get("nope")
    assert empty.value.hint is not None and "rollout start" in empty.value.hint
    store.create_rollout(plan("checkout-gpt55"), now=T0, actor="controller")
    for call in (store.get, store.history, store.percent_timeline):
        with pytest.raises(RolloutNotFound, match="'checkout-gtp55'") as caught:
            call("checkout-gtp55")
        assert isinstance(caught.value, PermanentError)
        assert "checkout-gpt55 (running)" in str(caught.value)


def test_save_bumps_the_version_and_stores_every_field(store: RolloutStore) -> None:
    """save() writes the record and returns it one version up; get() sees the same."""
    record = store.create_rollout(plan(), now=T0, actor="controller")
    changed = dataclasses.replace(
        record,
        status=RolloutStatus.PAUSED,
        step_index=2,
        percent=50,
        step_started_at=T0 + timedelta(hours=3),
        updated_at=T0 + timedelta(hours=4),
        baseline_p99_ms=812.5,
        plan=parse_plan(FULL_PLAN.replace("checkout-gpt55", "checkout-gpt55", 1)),
    )
    saved = store.save(changed)
    assert saved == dataclasses.replace(changed, version=2)
    assert store.get(record.name) == saved


def test_a_stale_save_loses_and_writes_no_audit(store: RolloutStore) -> None:
    """Two writers read version 1; the second save raises StaleRollout and its audit is dropped."""
    record = store.create_rollout(plan(), now=T0, actor="controller")
    paused = dataclasses.replace(record, status=RolloutStatus.PAUSED)
    store.save(paused, entry(record.name, AuditAction.PAUSE, T0 + timedelta(seconds=5)))
    moved = dataclasses.replace(record, step_index=0, percent=10)
    with pytest.raises(StaleRollout) as caught:
        store.save(moved, entry(record.name, AuditAction.ADVANCE, T0 + timedelta(seconds=6), 10))
    assert (caught.value.expected, caught.value.current) == (1, 2)
    stored = store.get(record.name)
    assert (stored.status, stored.percent, stored.version) == (RolloutStatus.PAUSED, 0, 2)
    assert [e.action for e in store.history(record.name)] == [
        AuditAction.PAUSE,
        AuditAction.START,
    ]


def test_concurrent_saves_of_one_version_let_exactly_one_win(store: RolloutStore) -> None:
    """Six threads saving the same read version: one succeeds, the others are stale."""
    record = store.create_rollout(plan(), now=T0, actor="controller")
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def save(i: int) -> None:
        barrier.wait()
        try:
            store.save(
                dataclasses.replace(record, percent=i),
                entry(record.name, AuditAction.ALERT, T0 + timedelta(seconds=i)),
            )
            outcomes.append("saved")
        except StaleRollout:
            outcomes.append("stale")

    threads = [threading.Thread(target=save, args=(i,)) for i in range(1, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["saved"] + ["stale"] * 5
    assert store.get(record.name).version == 2
    assert len(store.history(record.name)) == 2  # START + the winner's entry


def test_save_of_a_missing_rollout_is_not_found(store: RolloutStore) -> None:
    """Saving a record whose rollout was never created raises RolloutNotFound."""
    ghost = RolloutRecord(
        name="ghost",
        plan=plan("ghost"),
        status=RolloutStatus.RUNNING,
        step_index=-1,
        percent=0,
        started_at=T0,
        step_started_at=T0,
        updated_at=T0,
        baseline_p99_ms=None,
        version=1,
    )
    with pytest.raises(RolloutNotFound):
        store.save(ghost)


def test_history_is_newest_first_and_limited(store: RolloutStore) -> None:
    """history() orders by time (then insertion) newest first and honours limit."""
    store.create_rollout(plan(), now=T0, actor="controller")
    name = "checkout-gpt55"
    later = T0 + timedelta(minutes=5)
    store.append_audit(entry(name, AuditAction.HOLD, later))
    store.append_audit(entry(name, AuditAction.ESCALATE, later))  # same instant: id breaks tie
    store.append_audit(entry(name, AuditAction.ALERT, T0 + timedelta(minutes=1)))  # late writer
    actions = [e.action for e in store.history(name)]
    assert actions == [
        AuditAction.ESCALATE,
        AuditAction.HOLD,
        AuditAction.ALERT,
        AuditAction.START,
    ]
    assert [e.action for e in store.history(name, limit=2)] == actions[:2]


def test_audit_entry_round_trips_decision_and_inputs(store: RolloutStore) -> None:
    """append_audit returns the entry with an id; history returns it field for field."""
    store.create_rollout(plan(), now=T0, actor="controller")
    written = AuditEntry(
        id=None,
        at=T0 + timedelta(minutes=3),
        rollout="checkout-gpt55",
        actor="cli:bob",
        action=AuditAction.MANUAL_OVERRIDE,
        from_percent=30,
        to_percent=25,
        reason="flag rollout is 25 % in Unleash; the controller set 30 %",
        decision={"kind": "hold", "statistic": 0.1, "tiny": 5e-324, "nested": [1, "NaN"]},
        inputs={"now": "2026-03-02T09:03:30+00:00", "evidence": {"buckets": []}},
    )
    stored = store.append_audit(written)
    assert stored.id is not None
    assert stored == dataclasses.replace(written, id=stored.id)
    assert store.history("checkout-gpt55")[0] == stored


def test_jsonb_keeps_the_value_of_huge_floats(store: RolloutStore) -> None:
    """JSONB stores numbers as numeric: 1.5e300 reads back as an int of exactly that value."""
    store.create_rollout(plan(), now=T0, actor="controller")
    written = entry("checkout-gpt55", AuditAction.HOLD, T0)
    store.append_audit(dataclasses.replace(written, decision={"statistic": 1.5e300}))
    (back, _) = store.history("checkout-gpt55")
    assert back.decision is not None
    assert float(back.decision["statistic"]) == 1.5e300  # what from_jsonable does for floats


def test_audit_for_an_unknown_rollout_is_refused(store: RolloutStore) -> None:
    """An audit entry must name an existing rollout (foreign key): RolloutNotFound."""
    with pytest.raises(RolloutNotFound, match="'nobody'"):
        store.append_audit(entry("nobody", AuditAction.ALERT, T0))


def test_the_database_refuses_to_change_audit_rows(store: RolloutStore, engine: Engine) -> None:
    """UPDATE, DELETE and TRUNCATE of rollout_audit fail even for a direct SQL client."""
    store.create_rollout(plan(), now=T0, actor="controller")
    for statement in (
        "UPDATE rollout_audit SET reason = 'edited'",
        "DELETE FROM rollout_audit",
        "TRUNCATE rollout_audit",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    assert store.history("checkout-gpt55")[0].reason.startswith("rollout started")


def test_percent_timeline_follows_entries_that_set_the_flag(store: RolloutStore) -> None:
    """The timeline has START 0 %, each change (advances, overrides, rollback), merged repeats."""
    record = store.create_rollout(plan(), now=T0, actor="controller")
    t = [T0 + timedelta(minutes=m) for m in range(8)]
    record = advance(store, record, 10, t[1])
    store.append_audit(entry(record.name, AuditAction.HOLD, t[2]))  # no percent: not a point
    record = advance(store, record, 30, t[3])
    store.append_audit(entry(record.name, AuditAction.RESUME, t[4], 30))  # same %: merged
    store.append_audit(entry(record.name, AuditAction.MANUAL_OVERRIDE, t[5], 25, 30))
    store.append_audit(entry(record.name, AuditAction.ROLLBACK, t[6], 0, 25))
    assert store.percent_timeline(record.name) == [
        (T0, 0),
        (t[1], 10),
        (t[3], 30),
        (t[5], 25),
        (t[6], 0),
    ]


def test_judge_state_carries_the_controller_view(store: RolloutStore) -> None:
    """judge_state() maps percent, times, p99 and paused/overridden into a RolloutState."""
    record = store.create_rollout(plan(), now=T0, actor="controller")
    record = advance(store, record, 30, T0 + timedelta(minutes=9))
    paused = dataclasses.replace(record, status=RolloutStatus.PAUSED, baseline_p99_ms=900.0)
    seen = T0 + timedelta(minutes=10)
    state = paused.judge_state(seen)
    assert (state.step_index, state.step_percent) == (1, 30)
    assert (state.rollout_started_at, state.step_started_at) == (T0, T0 + timedelta(minutes=9))
    assert (state.baseline_p99_ms, state.last_data_at) == (900.0, seen)
    assert state.paused and not state.overridden
    overridden = dataclasses.replace(record, status=RolloutStatus.OVERRIDDEN).judge_state(None)
    assert overridden.overridden and not overridden.paused


def test_naive_datetimes_are_refused(store: RolloutStore) -> None:
    """A naive timestamp would be read in the server's time zone: refused with ValueError."""
    with pytest.raises(ValueError, match="timezone-aware"):
        store.create_rollout(plan(), now=datetime(2026, 3, 2, 9), actor="controller")


def test_unreachable_postgres_is_service_unavailable() -> None:
    """With nothing listening, every call raises ServiceUnavailable (the controller holds)."""
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/none", pool_size=1)
    try:
        with pytest.raises(ServiceUnavailable, match="Postgres failed"):
            RolloutStore(engine).get("checkout-gpt55")
        with pytest.raises(ServiceUnavailable):
            RolloutStore(engine).create_rollout(plan(), now=T0, actor="controller")
    finally:
        engine.dispose()
