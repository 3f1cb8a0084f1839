"""The Postgres store against a real PostgreSQL: idempotent writes, rollups, purge, concurrency."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, event, func, select, text

from shadowcanary.errors import ConfigError, ServiceUnavailable
from shadowcanary.events import Arm, CallStatus, CapturedCall
from shadowcanary.judge.types import OutputFlags
from shadowcanary.shadow_results import ReplayKind, ReplayStatus
from shadowcanary.store.db import database_ready, make_engine
from shadowcanary.store.inputs import AssessedCapture
from shadowcanary.store.models import Base
from shadowcanary.store.repository import Store
from shadowcanary.store.sketch import QuantileSketch
from shadowcanary.store.totals import LiveTotals, ShadowTotals
from shadowcanary.testing.factories import (
    make_dead_letter,
    make_event,
    make_flags,
    make_replay,
)
from shadowcanary.testing.servers import PostgresServer, free_port

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=8)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> Store:
    return Store(engine)


def assessed(
    event: CapturedCall, flags: OutputFlags | None = None, cost: float | None = None
) -> AssessedCapture:
    return AssessedCapture(event=event, flags=flags, cost_usd=cost)


def at(minute: int, second: float = 0.0) -> datetime:
    return T0 + timedelta(minutes=minute, seconds=second)


def batch(n: int, *, minute: int = 0, **overrides: Any) -> list[AssessedCapture]:
    return [
        assessed(make_event(started_at=at(minute, i % 60), **overrides), make_flags(), 0.001)
        for i in range(n)
    ]


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in Base.metadata.tables.items()
        }


def rollup_snapshot(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        live = conn.execute(text("SELECT * FROM live_rollups ORDER BY 1, 2, 3")).all()
        shadow = conn.execute(text("SELECT * FROM shadow_rollups ORDER BY 1, 2, 3")).all()
    return [tuple(r) for r in [*live, *shadow]]


def window(
    store: Store, rollout: str | None = "support-assistant-gpt-5.5"
) -> dict[Arm, LiveTotals]:
    return store.live_totals(rollout, T0 - timedelta(days=1), T0 + timedelta(days=1))


# -- captures --------------------------------------------------------------------------


def test_inserted_capture_reads_back_identical(store: Store) -> None:
    """A stored capture reads back as the same validated event."""
    original = make_event(started_at=at(0))
    assert store.insert_captures([assessed(original)], received_at=NOW) == [original.event_id]
    assert store.get_captures([original.event_id, "missing-id-1"]) == {original.event_id: original}


def count_statements(engine: Engine) -> tuple[list[str], Callable[[], None]]:
    statements: list[str] = []

    def listener(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    return statements, lambda: event.remove(engine, "before_cursor_execute", listener)


def test_writes_are_batched_not_per_row(store: Store, engine: Engine) -> None:
    """A 300-event batch and its replays cost a handful of statements, not one per row."""
    items = batch(150, minute=0) + batch(150, minute=1, arm=Arm.CANDIDATE)
    statements, stop = count_statements(engine)
    try:
        store.insert_captures(items, received_at=NOW)
        capture_statements = len(statements)
        ids = [c.event.event_id for c in items]
        store.record_replays(
            [make_replay(i) for i in ids] + [make_replay(i, ReplayKind.NOISE) for i in ids],
            recorded_at=NOW,
        )
    finally:
        stop()
    assert capture_statements <= 5, statements[:capture_statements]
    assert len(statements) - capture_statements <= 8, statements[capture_statements:]


def test_nul_characters_do_not_poison_a_batch(store: Store, engine: Engine) -> None:
    """Text with NUL (which Postgres rejects) is stored with U+FFFD instead of failing the batch."""
    response = {"text": "binary\x00junk", "finish_reason": "stop"}
    evil = make_event(started_at=at(0), response=response, error_class=None)
    assert store.insert_captures([assessed(evil)], received_at=NOW) == [evil.event_id]
    stored = store.get_captures([evil.event_id])[evil.event_id]
    assert stored.response is not None and stored.response.text == "binary\ufffdjunk"
    store.record_dead_letters(
        [make_dead_letter(message="bad\x00byte", payload={"raw": "a\x00b"})], recorded_at=NOW
    )
    with engine.connect() as conn:
        message, payload = conn.execute(text("SELECT message, payload FROM dead_letters")).one()
    assert (message, payload) == ("bad\ufffdbyte", {"raw": "a\ufffdb"})


def test_get_captures_is_one_query(store: Store, engine: Engine) -> None:
    """Reading many captures costs one SQL statement, not one per id."""
    items = batch(30)
    store.insert_captures(items, received_at=NOW)
    statements, stop = count_statements(engine)
    try:
        found = store.get_captures([c.event.event_id for c in items])
    finally:
        stop()
    assert len(found) == 30
    assert len(statements) == 1


def test_redelivered_batch_changes_nothing(store: Store, engine: Engine) -> None:
    """The same batch inserted twice leaves rows and rollups exactly as after the first."""
    items = batch(20) + batch(5, minute=1, arm=Arm.CANDIDATE)
    assert len(store.insert_captures(items, received_at=NOW)) == 25
    rows, rollups = table_counts(engine), rollup_snapshot(engine)
    assert store.insert_captures(items, received_at=NOW) == []
    assert table_counts(engine) == rows
    assert rollup_snapshot(engine) == rollups


def test_partly_new_batch_rolls_up_only_new_rows(store: Store) -> None:
    """A batch mixing stored and new events (and a duplicate id) counts each event once."""
    first = batch(10)
    store.insert_captures(first, received_at=NOW)
    fresh = batch(4)
    new_ids = store.insert_captures(first[:5] + fresh + fresh[:1], received_at=NOW)
    assert new_ids == [c.event.event_id for c in fresh]
    assert window(store)[Arm.BASELINE].requests == 14


def test_live_rollup_values(store: Store) -> None:
    """Counts, sums and sketch quantiles (within 1 %) match the events rolled up."""
    rng = np.random.default_rng(7)
    latencies = rng.lognormal(mean=6.5, sigma=0.6, size=400).round(1)
    items = [
        assessed(
            make_event(started_at=at(3, i % 60), latency_ms=float(lat), ttft_ms=float(lat) / 4),
            make_flags(truncated=i % 10 == 0, json_expected=i % 4 == 0, json_invalid=i % 20 == 0),
            0.002,
        )
        for i, lat in enumerate(latencies)
    ]
    failures = [
        assessed(make_event(started_at=at(3), status=CallStatus.TIMEOUT, latency_ms=30_000.0)),
        assessed(make_event(started_at=at(3), status=CallStatus.ERROR, latency_ms=120.0)),
        assessed(make_event(started_at=at(3), status=CallStatus.RATE_LIMITED, latency_ms=15.0)),
    ]
    store.insert_captures(items + failures, received_at=NOW)

    totals = window(store)[Arm.BASELINE]
    all_latencies = np.concatenate([latencies, [30_000.0, 120.0, 15.0]])
    assert (totals.buckets, totals.requests, totals.failures) == (1, 403, 3)
    assert (totals.timeouts, totals.errors, totals.rate_limited) == (1, 1, 1)
    assert (totals.assessed, totals.truncated, totals.json_expected, totals.json_invalid) == (
        400,
        40,
        100,
        20,
    )
    assert totals.latency_sum == pytest.approx(all_latencies.sum())
    assert totals.latency_sq_sum == pytest.approx((all_latencies**2).sum())
    assert (totals.ttft_n, totals.tokens_n, totals.cost_n) == (400, 400, 400)
    assert totals.completion_tokens_sum == 400 * 48
    assert totals.cost_per_request_usd == pytest.approx(0.002)
    assert totals.error_rate == pytest.approx(3 / 403)
    assert totals.latency_sketch.count == 403
    for q in (0.5, 0.9, 0.99):
        exact = float(np.quantile(all_latencies, q, method="lower"))
        assert totals.latency_quantile_ms(q) == pytest.approx(exact, rel=0.01)
    ttft_exact = float(np.quantile(latencies / 4, 0.5, method="lower"))
    assert totals.ttft_quantile_ms(0.5) == pytest.approx(ttft_exact, rel=0.01)


def test_live_totals_merges_minutes_and_respects_window(store: Store) -> None:
    """Buckets of several minutes and batches merge; minutes outside [since, until) are left out."""
    store.insert_captures(batch(10, minute=0, latency_ms=100.0), received_at=NOW)
    store.insert_captures(batch(20, minute=1, latency_ms=200.0), received_at=NOW)
    store.insert_captures(batch(5, minute=1, latency_ms=200.0), received_at=NOW)
    store.insert_captures(batch(7, minute=2, latency_ms=900.0), received_at=NOW)

    totals = store.live_totals("support-assistant-gpt-5.5", at(0), at(2))
    base = totals[Arm.BASELINE]
    assert (base.buckets, base.requests) == (2, 35)
    assert base.latency_sum == pytest.approx(10 * 100 + 25 * 200)
    assert base.latency_sketch.count == 35
    assert base.latency_quantile_ms(1.0) == pytest.approx(200, rel=0.01)
    assert totals[Arm.CANDIDATE].requests == 0
    assert store.live_totals("other-rollout", at(0), at(3))[Arm.BASELINE].requests == 0


def test_rollout_none_is_rolled_up_under_empty_key(store: Store, engine: Engine) -> None:
    """Traffic outside a rollout is NULL in captures, '' in rollups, and counted in the total."""
    store.insert_captures(batch(3, rollout=None) + batch(2), received_at=NOW)
    with engine.connect() as conn:
        nulls = conn.execute(text("SELECT count(*) FROM captures WHERE rollout IS NULL")).scalar()
    assert nulls == 3
    assert window(store, "")[Arm.BASELINE].requests == 3
    assert window(store, None)[Arm.BASELINE].requests == 5


# -- replays -----------------------------------------------------------------------------


def _captured(store: Store, n: int, minute: int = 0) -> list[str]:
    return store.insert_captures(batch(n, minute=minute), received_at=NOW)


def shadow(
    store: Store, rollout: str | None = "support-assistant-gpt-5.5"
) -> dict[ReplayKind, ShadowTotals]:
    return store.shadow_totals(rollout, T0 - timedelta(days=1), T0 + timedelta(days=1))


def test_record_replays_is_idempotent(store: Store, engine: Engine) -> None:
    """Recording the same replays twice stores and rolls them up once."""
    ids = _captured(store, 6)
    records = [make_replay(i, ReplayKind.CANDIDATE, lexical_similarity=0.8) for i in ids]
    assert store.record_replays(records, recorded_at=NOW) == 6
    snapshot = rollup_snapshot(engine)
    assert store.record_replays(records + records[:2], recorded_at=NOW) == 0
    assert rollup_snapshot(engine) == snapshot
    cand = shadow(store)[ReplayKind.CANDIDATE]
    assert (cand.replays, cand.n) == (6, 6)
    assert cand.lexical_mean == pytest.approx(0.8)
    assert store.replays_done([*ids[:2], "nope-0000"]) == {
        (ids[0], ReplayKind.CANDIDATE),
        (ids[1], ReplayKind.CANDIDATE),
    }


@pytest.mark.parametrize("order", ["candidate_first", "noise_first", "together"])
def test_paired_difference_added_once(store: Store, order: str) -> None:
    """D = candidate - noise similarity is added once, whichever replay arrives first."""
    (event_id,) = _captured(store, 1)
    cand = make_replay(event_id, ReplayKind.CANDIDATE, lexical_similarity=0.70)
    noise = make_replay(event_id, ReplayKind.NOISE, lexical_similarity=0.95)
    if order == "together":
        store.record_replays([cand, noise], recorded_at=NOW)
    else:
        first, second = (cand, noise) if order == "candidate_first" else (noise, cand)
        store.record_replays([first], recorded_at=NOW)
        assert shadow(store)[ReplayKind.CANDIDATE].paired_n == 0
        store.record_replays([second], recorded_at=NOW)
    store.record_replays([noise, cand], recorded_at=NOW)  # redelivery

    totals = shadow(store)
    assert totals[ReplayKind.CANDIDATE].paired_n == 1
    assert totals[ReplayKind.CANDIDATE].paired_diff_sum == pytest.approx(-0.25)
    assert totals[ReplayKind.NOISE].paired_n == 0


def test_failed_and_skipped_replays_are_counted_without_comparisons(store: Store) -> None:
    """Failed and budget-skipped replays are stored and counted, but never compared or paired."""
    ids = _captured(store, 4)
    store.record_replays(
        [
            make_replay(ids[0], status=ReplayStatus.FAILED, attempts=5),
            make_replay(ids[1], status=ReplayStatus.SKIPPED_BUDGET),
            make_replay(ids[2]),
            make_replay(ids[0], ReplayKind.NOISE),
        ],
        recorded_at=NOW,
    )
    cand = shadow(store)[ReplayKind.CANDIDATE]
    assert (cand.replays, cand.other_failed, cand.skipped_budget, cand.n) == (3, 1, 1, 1)
    assert cand.paired_n == 0
    assert cand.failure_rate == pytest.approx(0.5)
    counts = store.counts()
    assert (counts.replayed_ok, counts.replayed_failed, counts.replayed_skipped_budget) == (2, 1, 1)
    assert counts.compared == 2


def test_replays_of_unknown_captures_are_skipped(store: Store, engine: Engine) -> None:
    """A replay whose capture is not stored is skipped, the rest of the batch is kept."""
    (known,) = _captured(store, 1)
    new = store.record_replays(
        [make_replay(known), make_replay("never-captured-1")], recorded_at=NOW
    )
    assert new == 1
    assert table_counts(engine)["replays"] == 1


def test_comparison_row_keeps_every_field(store: Store, engine: Engine) -> None:
    """Comparison fields, both sides' flags and notes are stored as columns."""
    (event_id,) = _captured(store, 1)
    record = make_replay(
        event_id,
        lexical_similarity=0.42,
        tool_name_agreement=False,
        other_flags=make_flags(truncated=True, json_invalid=True),
        notes=("answer truncated", "tool name differs"),
    )
    store.record_replays([record], recorded_at=NOW)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM comparisons")).mappings().one()
        replay = conn.execute(text("SELECT * FROM replays")).mappings().one()
    assert row["lexical_similarity"] == 0.42
    assert (row["other_truncated"], row["other_json_invalid"], row["reference_truncated"]) == (
        True,
        True,
        False,
    )
    assert row["tool_name_agreement"] is False
    assert row["notes"] == ["answer truncated", "tool name differs"]
    assert row["rollout"] == "support-assistant-gpt-5.5"
    assert replay["output"]["finish_reason"] == "stop"
    assert replay["model"] == "gpt-5.5"
    cand = shadow(store)[ReplayKind.CANDIDATE]
    assert (cand.other_truncated, cand.other_json_invalid, cand.tool_name_disagree) == (1, 1, 1)


# -- dead letters, purge ---------------------------------------------------------------------


def test_dead_letters_are_kept_with_payload(store: Store, engine: Engine) -> None:
    """Dead letters keep stage, error, attempts and the raw payload for a person to read."""
    store.record_dead_letters(
        [
            make_dead_letter(),
            make_dead_letter(stage="replay", event_id="evt-12345678", payload=None),
        ],
        recorded_at=NOW,
    )
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM dead_letters ORDER BY id")).mappings().all()
    assert [r["stage"] for r in rows] == ["ingest", "replay"]
    assert rows[0]["payload"] == {"event_id": "bad-event-0001", "latency_ms": -5}
    assert rows[1]["event_id"] == "evt-12345678"
    assert store.counts().dead_lettered == 2


def test_purge_deletes_old_raw_rows_and_keeps_rollups(store: Store, engine: Engine) -> None:
    """Purge removes raw rows older than the cutoff in batches, keeps recent rows and rollups."""
    old = store.insert_captures(batch(5, minute=0), received_at=NOW - timedelta(days=20))
    recent = store.insert_captures(batch(3, minute=1), received_at=NOW)
    store.record_replays([make_replay(i) for i in old + recent], recorded_at=NOW)
    store.record_replays([make_replay(i, ReplayKind.NOISE) for i in old], recorded_at=NOW)
    store.record_dead_letters([make_dead_letter()], recorded_at=NOW - timedelta(days=20))
    store.record_dead_letters([make_dead_letter()], recorded_at=NOW)
    rollups = rollup_snapshot(engine)

    deleted = store.purge(NOW - timedelta(days=14), batch_size=2)

    assert deleted == {
        "captures": 5,
        "replays": 10,
        "comparisons": 10,
        "dead_letters": 1,
        "live_rollups": 0,
        "shadow_rollups": 0,
        "outcomes": 0,
        "judge_verdicts": 0,
        "judge_rollups": 0,
    }
    assert set(store.get_captures(old + recent)) == set(recent)
    counts = table_counts(engine)
    assert (counts["replays"], counts["comparisons"], counts["dead_letters"]) == (3, 3, 1)
    assert rollup_snapshot(engine) == rollups
    assert store.purge(NOW - timedelta(days=14))["captures"] == 0


def test_purge_drops_rollups_only_past_their_horizon(store: Store) -> None:
    """Rollup minutes older than rollups_older_than go; newer minutes stay."""
    store.insert_captures(batch(2, minute=0) + batch(2, minute=5), received_at=NOW)
    deleted = store.purge(T0 - timedelta(days=1), rollups_older_than=at(5))
    assert deleted["live_rollups"] == 1
    assert window(store)[Arm.BASELINE].requests == 2


# -- concurrency ----------------------------------------------------------------------------


def run_threads(n: int, target: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a writer thread hung"
    assert not errors, errors


def test_concurrent_capture_writers_sum_exactly(database_url: str) -> None:
    """Four writers (own engines, like worker processes) on the same minutes sum exactly."""
    shared = batch(10, minute=0, latency_ms=50.0)  # delivered to every writer

    def writer(i: int) -> None:
        engine = make_engine(database_url, pool_size=1)
        store = Store(engine)
        try:
            for b in range(8):
                items = batch(25, minute=b % 2, latency_ms=float(100 + i))
                random.shuffle(items)
                store.insert_captures(items + shared, received_at=NOW)
        finally:
            engine.dispose()

    run_threads(4, writer)
    engine = make_engine(database_url, pool_size=1)
    try:
        totals = window(Store(engine))[Arm.BASELINE]
    finally:
        engine.dispose()
    assert totals.requests == 4 * 8 * 25 + 10
    assert totals.latency_sum == 8 * 25 * (100 + 101 + 102 + 103) + 10 * 50
    assert totals.latency_sketch.count == totals.requests
    assert totals.ttft_sketch.count == totals.requests


def test_concurrent_candidate_and_noise_writers_pair_each_event_once(
    store: Store, database_url: str
) -> None:
    """Candidate and noise replays of the same events recorded in parallel pair each event once."""
    ids = _captured(store, 120)

    def writer(i: int) -> None:
        kind = ReplayKind.CANDIDATE if i % 2 == 0 else ReplayKind.NOISE
        similarity = 0.6 if kind is ReplayKind.CANDIDATE else 0.9
        mine = ids[:]
        random.Random(i).shuffle(mine)
        engine = make_engine(database_url, pool_size=1)
        try:
            writer_store = Store(engine)
            for start in range(0, len(mine), 15):
                chunk = mine[start : start + 15]
                records = [make_replay(e, kind, lexical_similarity=similarity) for e in chunk]
                writer_store.record_replays(records, recorded_at=NOW)
        finally:
            engine.dispose()

    run_threads(4, writer)
    totals = shadow(store)
    assert totals[ReplayKind.CANDIDATE].n == 120
    assert totals[ReplayKind.NOISE].n == 120
    assert totals[ReplayKind.CANDIDATE].paired_n == 120
    assert totals[ReplayKind.CANDIDATE].paired_diff_mean == pytest.approx(-0.3)


# -- figures ---------------------------------------------------------------------------------


def test_counts_and_headline(store: Store) -> None:
    """counts() and headline() give captures per arm, replays, similarity vs noise, arm health."""
    base = [
        assessed(make_event(started_at=at(0, i), latency_ms=float(100 + i)), make_flags(), 0.001)
        for i in range(50)
    ]
    cand = [
        assessed(
            make_event(started_at=at(0, i), arm=Arm.CANDIDATE, latency_ms=float(300 + i)),
            make_flags(),
            0.003,
        )
        for i in range(20)
    ]
    cand.append(assessed(make_event(started_at=at(0), arm=Arm.CANDIDATE, status=CallStatus.ERROR)))
    ids = store.insert_captures(base + cand, received_at=NOW)
    base_ids = [c.event.event_id for c in base]
    store.record_replays(
        [make_replay(e, lexical_similarity=0.7) for e in base_ids[:10]]
        + [make_replay(e, ReplayKind.NOISE, lexical_similarity=0.9) for e in base_ids[:4]],
        recorded_at=NOW,
    )
    store.record_dead_letters([make_dead_letter()], recorded_at=NOW)

    counts = store.counts()
    assert len(ids) == 71
    assert counts.captured == {Arm.BASELINE: 50, Arm.CANDIDATE: 21}
    assert (counts.replayed_ok, counts.compared, counts.dead_lettered) == (14, 14, 1)

    headline = store.headline("support-assistant-gpt-5.5")
    assert headline.candidate_lexical_mean == pytest.approx(0.7)
    assert headline.noise_lexical_mean == pytest.approx(0.9)
    assert headline.paired_n == 4
    assert headline.paired_diff_mean == pytest.approx(-0.2)
    assert headline.compared == {
        ReplayKind.CANDIDATE: 10,
        ReplayKind.NOISE: 4,
        ReplayKind.ROLLBACK_TARGET: 0,
    }
    b, c = headline.arms[Arm.BASELINE], headline.arms[Arm.CANDIDATE]
    assert (b.requests, b.error_rate) == (50, 0.0)
    assert c.error_rate == pytest.approx(1 / 21)
    assert b.p50_latency_ms == pytest.approx(124, rel=0.01)
    assert b.p99_latency_ms == pytest.approx(148, rel=0.01)
    assert b.cost_per_request_usd == pytest.approx(0.001)
    assert c.cost_per_request_usd == pytest.approx(0.003)
    assert store.headline("no-such-rollout").arms[Arm.BASELINE].requests == 0


# -- connecting ------------------------------------------------------------------------------


def test_make_engine_accepts_common_url_forms(
    postgres_server: PostgresServer, database_url: str
) -> None:
    """postgresql://, other drivers and unix-socket URIs all connect through psycopg 3."""
    name = database_url.rsplit("/", 1)[1]
    port = postgres_server.port
    urls = [
        f"postgresql://postgres@127.0.0.1:{port}/{name}",
        f"postgres://postgres@127.0.0.1:{port}/{name}",
        f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{name}",
        f"postgresql://postgres:@/{name}?host={postgres_server.directory}&port={port}",
    ]
    for url in urls:
        engine = make_engine(url, pool_size=1)
        try:
            assert engine.dialect.driver == "psycopg"
            assert database_ready(engine), url
        finally:
            engine.dispose()


def test_naive_timestamps_are_refused(store: Store) -> None:
    """A naive datetime is refused instead of being read in the server's time zone."""
    with pytest.raises(ValueError, match="received_at must be timezone-aware"):
        store.insert_captures(batch(1), received_at=datetime(2026, 3, 2, 9, 0))
    with pytest.raises(ValueError, match="since"):
        store.live_totals(None, datetime(2026, 3, 2), NOW)


def test_make_engine_rejects_other_databases() -> None:
    """A non-Postgres URL is a ConfigError that says what to set."""
    with pytest.raises(ConfigError, match="PostgreSQL only"):
        make_engine("sqlite:///tmp/x.db")


def test_database_ready_is_false_when_unmigrated_or_down(empty_database_url: str) -> None:
    """database_ready is False on an unmigrated database and on a closed port."""
    unmigrated = make_engine(empty_database_url, pool_size=1)
    down = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", pool_size=1)
    try:
        assert database_ready(unmigrated) is False
        assert database_ready(down) is False
    finally:
        unmigrated.dispose()
        down.dispose()


def test_unreachable_database_raises_service_unavailable() -> None:
    """Writes to an unreachable Postgres raise ServiceUnavailable (transient: retry)."""
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", pool_size=1)
    try:
        with pytest.raises(ServiceUnavailable, match="inserting captures"):
            Store(engine).insert_captures(batch(1), received_at=NOW)
    finally:
        engine.dispose()


def test_sketch_matches_ddsketch_and_merges_losslessly() -> None:
    """Stored sketches give DDSketch's quantiles, survive JSON, and merge like one sketch."""
    from ddsketch import DDSketch

    rng = np.random.default_rng(3)
    left, right = rng.exponential(400, 300), rng.exponential(900, 200)
    reference = DDSketch(0.01)
    for value in [*left, *right]:
        reference.add(float(value))
    merged = QuantileSketch.from_json(QuantileSketch.of(left).to_json()).merge(
        QuantileSketch.of(right)
    )
    assert merged == QuantileSketch.of([*left, *right])
    for q in (0.0, 0.5, 0.95, 0.99, 1.0):
        assert merged.quantile(q) == pytest.approx(reference.get_quantile_value(q))
    assert QuantileSketch().quantile(0.5) is None


def test_dead_lettered_replays_are_counted_per_rollout_once_per_event(store: Store) -> None:
    """A replay given up on counts for its capture's rollout, once however often it was lettered."""
    mine = make_event(started_at=at(0), rollout="lettered")
    other = make_event(started_at=at(0), rollout="elsewhere")
    store.insert_captures([assessed(mine), assessed(other)], received_at=NOW)
    replay_letter = {"stage": "replay", "error_class": "UpstreamUnavailable", "payload": None}
    store.record_dead_letters(
        [
            make_dead_letter(event_id=mine.event_id, **replay_letter),
            make_dead_letter(event_id=mine.event_id, attempts=5, **replay_letter),
            make_dead_letter(event_id=other.event_id, stage="ingest"),
        ],
        recorded_at=NOW,
    )
    assert store.dead_lettered_replays("lettered") == 1
    assert store.dead_lettered_replays("elsewhere") == 0  # an ingest letter is not a replay's
    assert store.dead_lettered_replays("unknown") == 0
