"""Retention purge deletes what it should and nothing else.

Rows are placed just inside and just outside the window in every table the purge
touches (captures with their replays and comparisons, dead letters) and in every
table it must not touch (rollups, rollouts, the audit log, flags). Checked at the
store (to the microsecond), through ``shadowcanary purge`` and through the Celery
task the beat schedule runs daily.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import Engine, text

from flags.base import FlagSpec
from flags.embedded import EmbeddedFlags
from shadowcanary import constants
from shadowcanary.launcher.worker import REPO_ROOT, run_worker
from shadowcanary.plan import RolloutPlan
from shadowcanary.shadow_results import ReplayKind
from shadowcanary.store.db import make_engine
from shadowcanary.store.inputs import AssessedCapture
from shadowcanary.store.models import Base
from shadowcanary.store.purge import PURGED_TABLES
from shadowcanary.store.repository import Store
from shadowcanary.store.rollouts import RolloutStore
from shadowcanary.testing.factories import make_dead_letter, make_event, make_flags, make_replay
from shadowcanary.testing.poll import wait_until

pytestmark = pytest.mark.integration

TICK = timedelta(microseconds=1)
RAW_TABLES = {"captures", "replays", "comparisons", "dead_letters", "outcomes", "judge_verdicts"}
KEPT_TABLES = set(Base.metadata.tables) - RAW_TABLES


@dataclass(frozen=True)
class Placed:
    """Event ids and dead-letter markers on each side of the cutoff."""

    old_events: set[str]
    new_events: set[str]
    old_letters: set[str]
    new_letters: set[str]


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=2)
    yield engine
    engine.dispose()


def _place(engine: Engine, cutoff: datetime, margin: timedelta) -> Placed:
    """Captures, replays, comparisons and dead letters at cutoff - margin and cutoff (+ margin)."""
    store = Store(engine)
    controller = RolloutStore(engine)
    plan = RolloutPlan(
        name="purge-me-not", flag="purge-flag", baseline="gpt-5.2", candidate="gpt-5.5"
    )
    controller.create_rollout(plan, now=cutoff - timedelta(days=30), actor="test")
    EmbeddedFlags(engine).ensure_flag(
        FlagSpec(plan.flag, "default", "development", "userId", "gpt-5.2", "gpt-5.5")
    )
    sides: dict[str, tuple[set[str], set[str]]] = {}
    for side, received in (("old", cutoff - margin), ("new", cutoff), ("newer", cutoff + margin)):
        events = [make_event(started_at=received - timedelta(minutes=1)) for _ in range(3)]
        ids = set(
            store.insert_captures(
                [AssessedCapture(e, make_flags(), 0.001) for e in events], received_at=received
            )
        )
        # Replays recorded long after the capture still go with it.
        store.record_replays(
            [make_replay(i) for i in ids] + [make_replay(i, ReplayKind.NOISE) for i in ids],
            recorded_at=cutoff + timedelta(days=1),
        )
        marker = f"letter-{side}"
        store.record_dead_letters(
            [make_dead_letter(event_id=marker, message=marker)], recorded_at=received
        )
        sides[side] = (ids, {marker})
    return Placed(
        old_events=sides["old"][0],
        new_events=sides["new"][0] | sides["newer"][0],
        old_letters=sides["old"][1],
        new_letters=sides["new"][1] | sides["newer"][1],
    )


def _snapshot(engine: Engine, tables: set[str]) -> dict[str, list[Any]]:
    with engine.connect() as conn:
        return {
            table: sorted(str(r[0]) for r in conn.execute(text(f'select t::text from "{table}" t')))
            for table in sorted(tables)
        }


def _ids(engine: Engine, sql: str) -> set[str]:
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(text(sql))}


def _check(engine: Engine, placed: Placed, kept_before: dict[str, list[Any]]) -> None:
    assert _ids(engine, "select event_id from captures") == placed.new_events
    for table in ("replays", "comparisons"):
        assert _ids(engine, f"select distinct event_id from {table}") == placed.new_events, table
    assert _ids(engine, "select event_id from dead_letters") == placed.new_letters
    assert _snapshot(engine, KEPT_TABLES) == kept_before, "a table the purge must not touch changed"


def test_the_purge_table_list_covers_every_raw_table() -> None:
    """Every table is either purged as raw data or deliberately kept (a new table must choose)."""
    assert set(PURGED_TABLES) >= RAW_TABLES
    assert {
        "live_rollups",
        "shadow_rollups",
        "judge_rollups",
        "rollouts",
        "rollout_audit",
        "flags",
    } == KEPT_TABLES


def test_store_purge_keeps_the_row_at_the_cutoff_and_deletes_the_one_a_microsecond_older(
    engine: Engine,
) -> None:
    """Raw rows strictly older than the cutoff go (with their children); nothing else moves."""
    cutoff = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    placed = _place(engine, cutoff, TICK)
    kept_before = _snapshot(engine, KEPT_TABLES)
    assert kept_before["live_rollups"] and kept_before["rollout_audit"] and kept_before["flags"]

    deleted = Store(engine).purge(cutoff, batch_size=2)

    assert deleted["captures"] == len(placed.old_events)
    assert deleted["replays"] == deleted["comparisons"] == 2 * len(placed.old_events)
    assert deleted["dead_letters"] == 1
    assert deleted["live_rollups"] == deleted["shadow_rollups"] == 0
    _check(engine, placed, kept_before)
    assert Store(engine).purge(cutoff)["captures"] == 0  # idempotent


def test_the_purge_command_uses_the_retention_in_days(engine: Engine, database_url: str) -> None:
    """``shadowcanary purge --days 14`` against rows 14 days +- 2 minutes old."""
    cutoff = datetime.now(UTC) - timedelta(days=14)
    placed = _place(engine, cutoff, timedelta(minutes=2))
    kept_before = _snapshot(engine, KEPT_TABLES)
    result = _cli(database_url, "purge", "--days", "14")
    assert result.returncode == 0, result.stderr
    # The rows placed at exactly (now - 14 days) are a moment older than the command's cutoff.
    assert "'captures': 6," in result.stdout.replace("\n", "")
    _check_cli(engine, placed, kept_before)


def _check_cli(engine: Engine, placed: Placed, kept_before: dict[str, list[Any]]) -> None:
    # Rows exactly at (now - 14 days) at placement time are older than the command's cutoff
    # a moment later: only the "newer" side (2 minutes inside) is certain to stay.
    remaining = _ids(engine, "select event_id from captures")
    assert not remaining & placed.old_events
    assert remaining <= placed.new_events and len(remaining) == 3
    assert _snapshot(engine, KEPT_TABLES) == kept_before


@pytest.mark.parametrize("days", ["0", "-3"])
def test_the_purge_command_refuses_a_retention_under_a_day(
    engine: Engine, database_url: str, days: str
) -> None:
    """--days 0 or negative would delete today's data: a usage error, nothing deleted."""
    now = datetime.now(UTC)
    store = Store(engine)
    ids = store.insert_captures(
        [AssessedCapture(make_event(), make_flags(), None)], received_at=now
    )
    result = _cli(database_url, "purge", "--days", days)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--days" in result.stderr
    assert _ids(engine, "select event_id from captures") == set(ids)


def test_the_daily_purge_task_on_a_real_worker(
    engine: Engine, worker_env: dict[str, str], redis_url: str
) -> None:
    """The beat's purge task, run by a worker, applies SHADOWCANARY_RETENTION_DAYS."""
    cutoff = datetime.now(UTC) - timedelta(days=3)
    placed = _place(engine, cutoff, timedelta(minutes=2))
    kept_before = _snapshot(engine, KEPT_TABLES)
    with run_worker({**worker_env, "SHADOWCANARY_RETENTION_DAYS": "3"}):
        app = Celery("test-beat", broker=redis_url, set_as_current=False)
        app.send_task(constants.TASK_PURGE, queue=constants.QUEUE_INGEST)
        wait_until(
            lambda: not _ids(engine, "select event_id from captures") & placed.old_events,
            timeout_s=30,
            what="the purge task",
        )
    _check_cli(engine, placed, kept_before)
    assert _ids(engine, "select event_id from dead_letters") >= {"letter-newer"}
    assert not _ids(engine, "select event_id from dead_letters") & placed.old_letters


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shadowcanary.cli.main", *args],
        env={
            "PATH": "/usr/bin:/bin",
            "SHADOWCANARY_DATABASE_URL": database_url,
            "SHADOWCANARY_REDIS_URL": "redis://127.0.0.1:9/0",
            "COLUMNS": "200",
        },
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
