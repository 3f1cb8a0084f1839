"""The replay write path (one JSON document per statement) keeps every value exactly."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, event, text

from shadowcanary.events import ToolCall
from shadowcanary.judge.types import CallOutput
from shadowcanary.shadow_results import ReplayKind, ReplayRecord, ReplayStatus
from shadowcanary.store.db import make_engine
from shadowcanary.store.inputs import AssessedCapture
from shadowcanary.store.repository import Store
from shadowcanary.testing.factories import make_event, make_replay

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> Store:
    return Store(engine)


def _captured(store: Store, n: int) -> list[str]:
    events = [make_event(started_at=NOW - timedelta(minutes=5)) for _ in range(n)]
    store.insert_captures([AssessedCapture(e, None, None) for e in events], received_at=NOW)
    return [e.event_id for e in events]


def test_nul_and_unicode_in_a_replay_are_stored_not_fatal(store: Store, engine: Engine) -> None:
    """NUL (rejected by jsonb and text) becomes U+FFFD; other text, quotes and emoji survive."""
    good, evil, failed = _captured(store, 3)
    record = make_replay(evil)
    assert record.output is not None
    output = replace(
        record.output,
        text='binary\x00junk "quoted" \\ back\\u0000slash é 🚀',
        tool_calls=(ToolCall(id="c1", name="lookup", arguments='{"q": "a\\u0000b\x00"}'),),
    )
    records = [
        make_replay(good),
        replace(record, output=output),
        ReplayRecord(
            failed, ReplayKind.CANDIDATE, ReplayStatus.FAILED, None, None, 2, "X", "bad\x00byte"
        ),
    ]
    assert store.record_replays(records, recorded_at=NOW) == 3
    with engine.connect() as conn:
        stored = {
            event_id: output
            for event_id, output in conn.execute(
                text("SELECT event_id, output FROM replays WHERE output IS NOT NULL")
            )
        }
        message = conn.execute(
            text("SELECT error_message FROM replays WHERE event_id = :e"), {"e": failed}
        ).scalar_one()
    assert stored[evil]["text"] == 'binary\ufffdjunk "quoted" \\ back\\u0000slash é 🚀'
    assert stored[evil]["tool_calls"][0]["arguments"] == '{"q": "a\\u0000b\ufffd"}'
    assert message == "bad\ufffdbyte"


def test_replay_values_round_trip_exactly(store: Store, engine: Engine) -> None:
    """Timestamps keep microseconds and zone; floats, ints and None come back unchanged."""
    (event_id,) = _captured(store, 1)
    output = CallOutput(
        model="gpt-5.5",
        text="ok",
        finish_reason="stop",
        latency_ms=0.1 + 0.2,  # a float with no short decimal form
        ttft_ms=None,
        prompt_tokens=2_000_000_000,
        completion_tokens=0,
        cost_usd=1e-9,
    )
    record = replace(make_replay(event_id, attempts=3), output=output)
    assert store.record_replays([record], recorded_at=NOW) == 1
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT recorded_at, latency_ms, ttft_ms, prompt_tokens, completion_tokens,"
                " cost_usd, attempts, model FROM replays"
            )
        ).one()
        compared_at = conn.execute(text("SELECT recorded_at FROM comparisons")).scalar_one()
    assert tuple(row) == (NOW, 0.1 + 0.2, None, 2_000_000_000, 0, 1e-9, 3, "gpt-5.5")
    assert compared_at == NOW


def test_replay_work_is_captures_and_done_replays_in_one_statement(
    store: Store, engine: Engine
) -> None:
    """What a replay batch reads first equals get_captures + replays_done, in one query."""
    ids = _captured(store, 4)
    store.record_replays(
        [make_replay(ids[0]), make_replay(ids[0], ReplayKind.NOISE), make_replay(ids[1])],
        recorded_at=NOW,
    )
    asked = [*ids, "never-stored-0001"]
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        captures, done = store.replay_work(asked)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 1, statements
    assert captures == store.get_captures(asked)
    assert set(captures) == set(ids)
    assert (
        done
        == store.replays_done(ids)
        == {
            (ids[0], ReplayKind.CANDIDATE),
            (ids[0], ReplayKind.NOISE),
            (ids[1], ReplayKind.CANDIDATE),
        }
    )
    assert store.replay_work([]) == ({}, set())


def test_a_lone_surrogate_in_a_replay_is_stored_not_a_poison_batch(
    store: Store, engine: Engine
) -> None:
    """Text jsonb refuses (a lone UTF-16 surrogate) becomes U+FFFD; the batch is stored."""
    good, odd = _captured(store, 2)
    record = make_replay(odd)
    assert record.output is not None
    output = replace(record.output, text="half a pair \ud83d here\x00")
    assert (
        store.record_replays([make_replay(good), replace(record, output=output)], recorded_at=NOW)
        == 2
    )
    with engine.connect() as conn:
        stored, recorded_at = conn.execute(
            text("SELECT output->>'text', recorded_at FROM replays WHERE event_id = :e"),
            {"e": odd},
        ).one()
    assert stored == "half a pair \ufffd here\ufffd"
    assert recorded_at == NOW
