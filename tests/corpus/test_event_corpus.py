"""The event corpus through ingest against a real Postgres, then through a real worker.

Every hostile item is dead-lettered with a message naming the problem, or stored as
data, byte for byte what was sent (NUL, which Postgres cannot store, as U+FFFD); the
good events of the same batch are stored whatever their neighbours are.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowcanary.ingest.service import IngestService
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.settings import load_settings
from shadowcanary.store.db import make_engine
from shadowcanary.store.repository import Store
from shadowcanary.testing.poll import wait_until
from tests.corpus.hostile_events import PROMPT_INJECTIONS, Item, corpus, good_event
from tests.integration.pipeline import rows, scalar, send_ingest

pytestmark = pytest.mark.integration

USER = 1  # index of the user message in the factory's events


def _batch() -> tuple[list[Item], list[dict[str, object]]]:
    items = corpus()
    goods = [good_event() for _ in range(3)]
    return items, goods


def _interleave(items: list[Item], goods: list[dict[str, object]]) -> list[object]:
    """Good events first, in the middle and last, hostile ones in between."""
    middle = len(items) // 2
    raw = [i.raw for i in items]
    return [goods[0], *raw[:middle], goods[1], *raw[middle:], goods[2]]


def _expected_text(sent: str) -> str:
    return sent.replace("\x00", "\ufffd")


def _check_outcome(engine, items: list[Item], goods: list[dict[str, object]]) -> None:
    letters = rows(engine, "select error_class, message, event_id from dead_letters")
    stored = {r[0]: r[1] for r in rows(engine, "select event_id, event from captures")}
    rejected = [i for i in items if i.rejected_with is not None]
    kept = [i for i in items if i.rejected_with is None]

    assert len(letters) == len(rejected), [r[1][:120] for r in letters]
    messages = [r[1] for r in letters]
    for item in rejected:
        fragments = item.rejected_with or ()
        matching = [m for m in messages if all(f in m for f in fragments)]
        assert matching, f"{item.name}: no dead letter mentions {fragments}:\n" + "\n".join(
            m[:200] for m in messages
        )
        assert item.event_id not in stored, f"{item.name} was stored"
    for item in kept:
        assert item.event_id in stored, f"{item.name} was not stored"
        sent = item.raw["request"]["messages"]
        got = stored[item.event_id]["request"]["messages"]
        for sent_message, got_message in zip(sent, got, strict=True):
            assert got_message["content"] == _expected_text(sent_message["content"]), item.name
    for good in goods:
        assert good["event_id"] in stored


def test_every_corpus_item_is_dead_lettered_or_stored_as_data(database_url: str) -> None:
    """Ingest of the whole corpus in one batch: no exception, each item where it belongs."""
    settings = load_settings({})
    engine = make_engine(database_url, pool_size=2)
    scheduled: list[str] = []
    try:
        items, goods = _batch()
        result = IngestService(settings, Store(engine), scheduled.extend).ingest(
            _interleave(items, goods)
        )
        assert result.rejected == sum(1 for i in items if i.rejected_with)
        assert result.accepted == len(goods) + sum(1 for i in items if i.rejected_with is None)
        _check_outcome(engine, items, goods)
        # Every accepted baseline call is scheduled for its shadow replay, hostile text or not.
        assert {g["event_id"] for g in goods} <= set(scheduled)
    finally:
        engine.dispose()


def test_a_real_worker_keeps_serving_through_the_corpus_and_replays_hostile_prompts_as_data(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """One Celery batch holding the corpus: the worker lives, good and as-data events replay."""
    engine = make_engine(database_url, pool_size=2)
    items, goods = _batch()
    kept = [i for i in items if i.rejected_with is None]
    try:
        with run_worker(worker_env) as worker:
            send_ingest(redis_url, _interleave(items, goods))
            expected = len(goods) + len(kept)
            wait_until(
                lambda: (
                    scalar(engine, "select count(*) from comparisons where kind = 'candidate'")
                    == expected
                ),
                timeout_s=60,
                what=f"{expected} candidate comparisons",
            )
            # The worker still serves: a later batch goes through as well.
            later = good_event()
            send_ingest(redis_url, [later])
            wait_until(
                lambda: (
                    scalar(
                        engine,
                        "select count(*) from comparisons where event_id = :id",
                        id=later["event_id"],
                    )
                    >= 1
                ),
                timeout_s=30,
                what="the batch after the corpus",
            )
            assert worker.proc.poll() is None
            logged = worker.output()
        # Info-level logs say what happened, never what was asked (prompts are data).
        assert "ingest" in logged
        for text in [*PROMPT_INJECTIONS, "before\x00after", "lorem ipsum lorem"]:
            assert text not in logged, f"prompt text in the worker's info log: {text[:40]!r}"
        _check_outcome(engine, items, goods)
        # Injected instructions were compared, not obeyed: every one got an ordinary replay.
        injected = [i.event_id for i in kept if i.name.startswith("prompt-injection")]
        statuses = rows(
            engine,
            "select status from replays where kind = 'candidate' and event_id = any(:ids)",
            ids=injected,
        )
        assert [s[0] for s in statuses] == ["ok"] * len(PROMPT_INJECTIONS)
        assert not Path("/tmp/sc-pwned").exists()
        assert scalar(engine, "select count(*) from pg_tables where tablename = 'captures'") == 1
    finally:
        engine.dispose()
