"""User outcomes in a real Postgres: merged per event id, joined to captures, rolled up.

Reports go through ``OutcomeStore.record`` (what the worker's outcome task calls) and
captures through ``Store.insert_captures`` (the ingest task's write path), in the
orders the data path can produce: report before capture, long after it, twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import Engine

from shadowcanary.cli.status_view import collect_status, render_status
from shadowcanary.events import Arm
from shadowcanary.ingest.outcomes import OutcomeIngest
from shadowcanary.launcher.embedded_services import ServiceUrls
from shadowcanary.outcomes import OutcomeReport
from shadowcanary.settings import OutcomeSettings, Settings
from shadowcanary.store.db import make_engine
from shadowcanary.store.inputs import AssessedCapture
from shadowcanary.store.outcomes import OutcomeStore
from shadowcanary.store.repository import Store
from shadowcanary.testing.factories import make_event, make_flags
from tests.integration.pipeline import rows
from workers.outcome_tasks import OutcomeSweeper

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ROLLOUT = "outcome-rollout"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


def capture(
    store: Store, event_id: str, arm: Arm, *, minute: int = 0, tenant: str = "acme"
) -> None:
    at = T0 + timedelta(minutes=minute, seconds=10)
    event = make_event(event_id=event_id, arm=arm, rollout=ROLLOUT, started_at=at, tenant=tenant)
    store.insert_captures(
        [AssessedCapture(event=event, flags=make_flags(), cost_usd=0.001)], received_at=at
    )


def report(event_id: str, *, at: datetime = T0, **fields: Any) -> OutcomeReport:
    return OutcomeReport(event_id=event_id, reported_at=at, **fields)


def outcome_counts(engine: Engine, arm: Arm) -> dict[str, Any]:
    found = rows(
        engine,
        "SELECT minute, outcomes_reported, tasks_reported, tasks_abandoned, outcomes_negative,"
        " outcomes_escalated, outcome_value_n, outcome_value_sum FROM live_rollups"
        " WHERE rollout = :r AND arm = :a AND outcomes_reported > 0",
        r=ROLLOUT,
        a=arm.value,
    )
    assert len(found) <= 1, found
    if not found:
        return {}
    names = (
        "minute",
        "reported",
        "tasks",
        "abandoned",
        "negative",
        "escalated",
        "value_n",
        "value",
    )
    return dict(zip(names, found[0], strict=True))


def test_a_report_before_its_capture_is_joined_when_the_capture_arrives(engine: Engine) -> None:
    """Outcome first, capture later: pending, then counted once in the capture's minute."""
    store, outcomes = Store(engine), OutcomeStore(engine)
    first = outcomes.record([report("early-0001", task="abandoned")], received_at=T0)
    assert (first.new_ids, first.joined) == (1, 0)
    summary = outcomes.summary(
        since=T0 - timedelta(days=1), now=T0, unknown_after=timedelta(minutes=10)
    )
    assert (summary.pending, summary.unknown, summary.joined) == (1, 0, 0)
    capture(store, "early-0001", Arm.CANDIDATE, minute=3)
    assert outcome_counts(engine, Arm.CANDIDATE) == {}  # nothing joined until a sweep
    assert outcomes.join_pending(since=T0 - timedelta(days=1)) == 1
    assert outcomes.join_pending(since=T0 - timedelta(days=1)) == 0  # joined once, not again
    counts = outcome_counts(engine, Arm.CANDIDATE)
    assert counts["minute"] == T0 + timedelta(minutes=3)
    assert (counts["reported"], counts["tasks"], counts["abandoned"]) == (1, 1, 1)


def test_duplicate_reports_count_once_and_a_later_field_adds_only_itself(engine: Engine) -> None:
    """The same report three times (one batch, then again) counts once; a later thumbs down
    adds negative feedback to the same call without counting the call twice."""
    store, outcomes = Store(engine), OutcomeStore(engine)
    capture(store, "dup-00001", Arm.BASELINE)
    same = report("dup-00001", task="completed", value=12.5)
    outcomes.record([same, same], received_at=T0)
    outcomes.record([same], received_at=T0 + timedelta(seconds=5))
    counts = outcome_counts(engine, Arm.BASELINE)
    assert (counts["reported"], counts["tasks"], counts["abandoned"]) == (1, 1, 0)
    assert (counts["value_n"], counts["value"]) == (1, 12.5)
    # A conflicting task outcome is a duplicate of the field: the first one reported stays.
    outcomes.record(
        [report("dup-00001", task="abandoned", feedback="down", value=99.0)],
        received_at=T0 + timedelta(seconds=9),
    )
    counts = outcome_counts(engine, Arm.BASELINE)
    assert (counts["reported"], counts["tasks"], counts["abandoned"]) == (1, 1, 0)
    assert (counts["negative"], counts["value"]) == (1, 12.5)
    (reports,) = rows(engine, "SELECT reports FROM outcomes WHERE event_id = 'dup-00001'")
    assert reports == (4,)


def test_a_report_long_after_its_capture_lands_in_the_captures_minute(engine: Engine) -> None:
    """A report three days late counts in the minute the call was made, by its arm."""
    store, outcomes = Store(engine), OutcomeStore(engine)
    capture(store, "late-00001", Arm.CANDIDATE, minute=7)
    later = T0 + timedelta(days=3)
    result = outcomes.record([report("late-00001", at=later, escalated=True)], received_at=later)
    assert result.joined == 1
    counts = outcome_counts(engine, Arm.CANDIDATE)
    assert counts["minute"] == T0 + timedelta(minutes=7)
    assert (counts["reported"], counts["tasks"], counts["escalated"]) == (1, 0, 1)


def test_unknown_event_ids_are_counted_not_lost(engine: Engine) -> None:
    """A report no capture matches is pending, then unknown after unknown_after, per rollout."""
    outcomes = OutcomeStore(engine)
    outcomes.record(
        [
            report("nobody-0001", task="completed", rollout=ROLLOUT),
            report("nobody-0002", retried=True),
        ],
        received_at=T0,
    )
    window = {"since": T0 - timedelta(days=1), "unknown_after": timedelta(minutes=10)}
    soon = outcomes.summary(now=T0 + timedelta(minutes=1), **window)
    assert (soon.pending, soon.unknown) == (2, 0)
    late = outcomes.summary(now=T0 + timedelta(minutes=11), **window)
    assert (late.pending, late.unknown, late.event_ids) == (0, 2, 2)
    mine = outcomes.summary(now=T0 + timedelta(minutes=11), rollout=ROLLOUT, **window)
    assert mine.unknown == 1  # the one that named the rollout
    # The workers' sweep counts them for its gauge and warning.
    sweeper = OutcomeSweeper(
        OutcomeSettings(unknown_after_s=600), outcomes, clock=lambda: T0 + timedelta(minutes=11)
    )
    assert sweeper.sweep_once() == (0, 2)
    # A capture that turns up after all is still joined, by the sweep.
    capture(Store(engine), "nobody-0001", Arm.BASELINE)
    assert sweeper.sweep_once() == (1, 1)
    after = outcomes.summary(now=T0 + timedelta(minutes=12), **window)
    assert (after.unknown, after.joined) == (1, 1)


def test_a_report_about_another_services_call_is_refused_and_counted(engine: Engine) -> None:
    """Filed through the gateway by service B about service A's call: refused, never counted."""
    store, outcomes = Store(engine), OutcomeStore(engine)
    capture(store, "theirs-0001", Arm.CANDIDATE, tenant="team-a")
    result = outcomes.record(
        [report("theirs-0001", task="abandoned", tenant="team-b")], received_at=T0
    )
    assert result.joined == 0
    assert outcome_counts(engine, Arm.CANDIDATE) == {}
    summary = outcomes.summary(
        since=T0 - timedelta(days=1), now=T0, unknown_after=timedelta(minutes=10)
    )
    assert summary.refused == 1
    # Its own service's report about it counts.
    capture(store, "mine-00001", Arm.CANDIDATE, tenant="team-b")
    assert outcomes.record([report("mine-00001", task="abandoned", tenant="team-b")],
                           received_at=T0).joined == 1  # fmt: skip


def test_retention_purges_old_reports_and_keeps_what_they_added(engine: Engine) -> None:
    """Reports received before the cutoff are deleted with the raw rows; rollups keep them."""
    store, outcomes = Store(engine), OutcomeStore(engine)
    capture(store, "kept-00001", Arm.CANDIDATE)
    outcomes.record([report("kept-00001", task="abandoned")], received_at=T0)
    outcomes.record([report("fresh-0001", task="completed")], received_at=T0 + timedelta(days=2))
    deleted = store.purge(T0 + timedelta(days=1))
    assert deleted["outcomes"] == 1
    assert [r[0] for r in rows(engine, "SELECT event_id FROM outcomes")] == ["fresh-0001"]
    assert outcome_counts(engine, Arm.CANDIDATE)["abandoned"] == 1


def test_shadowcanary_status_shows_unknown_outcome_reports(
    engine: Engine, database_url: str, redis_url: str
) -> None:
    """`shadowcanary status` has a section counting the last day's reports and unknown ids."""
    received = datetime.now(UTC) - timedelta(hours=1)
    OutcomeStore(engine).record([report("status-0001", task="completed")], received_at=received)
    settings = Settings(database_url=database_url, redis_url=redis_url)
    data = collect_status(settings, ServiceUrls.of(database_url, redis_url), None)
    assert data["outcomes"]["unknown"] == 1 and data["outcomes"]["event_ids"] == 1
    console = Console(width=120, record=True)
    console.print(render_status(data))
    text = console.export_text()
    assert "User outcome reports" in text and "unknown" in text


def test_bad_reports_from_the_queue_are_dead_lettered_and_the_rest_stored(
    engine: Engine,
) -> None:
    """The worker's outcome ingest: each bad report becomes a dead letter naming the field,
    the good ones of the same batch are stored."""
    ingest = OutcomeIngest(Store(engine), OutcomeStore(engine), clock=lambda: T0)
    result = ingest.ingest(
        [
            {"event_id": "queue-00001", "task": "completed", "reported_at": T0.isoformat()},
            {"event_id": "queue-00002", "task": "maybe", "reported_at": T0.isoformat()},
            {"event_id": "queue-00003", "value": 2**70, "reported_at": T0.isoformat()},
            "not a report",
        ]
    )
    assert (result.accepted, result.rejected) == (1, 3)
    letters = rows(engine, "SELECT stage, event_id, message FROM dead_letters ORDER BY id")
    assert [(stage, event_id) for stage, event_id, _ in letters] == [
        ("outcome", "queue-00002"),
        ("outcome", "queue-00003"),
        ("outcome", None),
    ]
    assert "task: Input should be 'completed' or 'abandoned'" in letters[0][2]
    assert [r[0] for r in rows(engine, "SELECT event_id FROM outcomes")] == ["queue-00001"]
