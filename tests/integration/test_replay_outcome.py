"""Each event ends with exactly one outcome: a candidate comparison or a replay dead letter."""

from __future__ import annotations

from celery import Celery

from shadowcanary import constants
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.store.db import make_engine
from shadowcanary.testing.factories import make_event
from shadowcanary.testing.poll import wait_until
from tests.integration.pipeline import rows, scalar, send_ingest, sim_calls


def _send_replay(redis_url: str, event_ids: list[str]) -> None:
    """Publish a replay task for ``event_ids``, as a redelivered copy would arrive."""
    app = Celery("test-producer", broker=redis_url, set_as_current=False)
    with app.connection_for_write() as conn:
        app.send_task(
            constants.TASK_REPLAY, args=[event_ids], queue=constants.QUEUE_REPLAY, connection=conn
        )


def _replays_finished(output: str) -> int:
    return sum(
        f"{constants.TASK_REPLAY}[" in line and "succeeded" in line for line in output.splitlines()
    )


def test_a_failed_noise_floor_replay_does_not_dead_letter_a_compared_event(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """Baseline re-ask (noise floor) always 500s: events are compared, noise stored as failed."""
    engine = make_engine(database_url)
    env = {
        **worker_env,
        "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "1",
        "SHADOWCANARY_REPLAY__MAX_ATTEMPTS": "2",
    }
    events = [make_event(model="gpt-5.2", rollout="noise-fails") for _ in range(6)]
    sim.set_profile("gpt-5.2", error_rate=1.0)
    try:
        with run_worker(env):
            send_ingest(redis_url, [e.model_dump(mode="json") for e in events])
            wait_until(
                lambda: (
                    scalar(engine, "select count(*) from replays where kind = 'noise'")
                    + scalar(engine, "select count(*) from dead_letters")
                    >= len(events)
                ),
                timeout_s=60,
                what="every noise replay given up on",
            )
    finally:
        sim.set_profile("gpt-5.2", error_rate=0.0)
    letters = rows(engine, "select event_id, message from dead_letters")
    assert letters == [], f"{len(letters)} compared events dead-lettered, e.g. {letters[:3]}"
    compared = scalar(engine, "select count(*) from comparisons where kind = 'candidate'")
    assert compared == len(events), f"{compared} of {len(events)} events compared"
    noise = rows(engine, "select status, error_class, attempts from replays where kind = 'noise'")
    assert {tuple(r) for r in noise} == {("failed", "UpstreamUnavailable", 2)}, noise[:3]


def test_a_dead_lettered_event_is_settled_a_redelivered_replay_leaves_it_alone(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """After the dead letter, a redelivered replay task calls no model and compares nothing."""
    engine = make_engine(database_url)
    env = {
        **worker_env,
        "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0",
        "SHADOWCANARY_REPLAY__MAX_ATTEMPTS": "1",
    }
    events = [make_event(model="gpt-5.2", rollout="letter-settles") for _ in range(4)]
    ids = [e.event_id for e in events]
    sim.set_profile("gpt-5.5", error_rate=1.0)
    try:
        with run_worker(env) as worker:
            send_ingest(redis_url, [e.model_dump(mode="json") for e in events])
            wait_until(
                lambda: scalar(engine, "select count(*) from dead_letters") == len(events),
                timeout_s=60,
                what="every event dead-lettered",
            )
            sim.set_profile("gpt-5.5", error_rate=0.0)
            calls_before = sim_calls(sim, "gpt-5.5")
            done_before = _replays_finished(worker.output())
            _send_replay(redis_url, ids)
            wait_until(
                lambda: _replays_finished(worker.output()) > done_before,
                timeout_s=30,
                what="the second copy of the replay task finished",
            )
    finally:
        sim.set_profile("gpt-5.5", error_rate=0.0)
    assert sim_calls(sim, "gpt-5.5") == calls_before, "a settled event was replayed again"
    compared = rows(engine, "select event_id from comparisons")
    assert compared == [], f"{len(compared)} dead-lettered events compared too: {compared[:3]}"
    letters = scalar(engine, "select count(*) from dead_letters")
    assert letters == len(events), f"{letters} dead letters for {len(events)} events"
