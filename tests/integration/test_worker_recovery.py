"""A worker killed mid-task loses nothing and redelivery creates no second result."""

from __future__ import annotations

import time

import redis

from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.store.db import make_engine
from shadowcanary.testing.factories import make_event
from shadowcanary.testing.poll import wait_until
from tests.integration.pipeline import rows, scalar, send_ingest, sim_calls
from workers.app import recovery_bound_s, transport_options


def test_kill9_mid_replay_then_restart_gives_exactly_one_comparison_each(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """kill -9 while replays are in flight; after restart every event has exactly one comparison."""
    engine = make_engine(database_url)
    # Slow candidate so the worker certainly holds unacknowledged replay tasks when killed.
    sim.set_profile("gpt-5.5", median_ms=1500, p99_ms=2500)
    events = [make_event(model="gpt-5.2", rollout="kill-test") for _ in range(120)]
    send_ingest(redis_url, [e.model_dump(mode="json") for e in events])
    env = {
        **worker_env,
        "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0",
        "SHADOWCANARY_REPLAY__BATCH_SIZE": "16",
    }

    with run_worker(env, name="first") as first:
        wait_until(
            lambda: sim_calls(sim, "gpt-5.5") >= 20,
            timeout_s=30,
            what="candidate calls in flight",
        )
        first.kill9()
    done_before = scalar(engine, "select count(*) from comparisons")
    assert done_before < len(events), "the kill must interrupt work in progress"

    sim.set_profile("gpt-5.5", median_ms=5, p99_ms=20)
    with run_worker(env, name="second"):
        wait_until(
            lambda: (
                scalar(engine, "select count(*) from comparisons where kind = 'candidate'")
                >= len(events)
            ),
            timeout_s=60,
            what="every event compared after restart",
        )
    per_event = rows(engine, "select event_id, count(*) from comparisons group by event_id")
    assert {r[0] for r in per_event} == {e.event_id for e in events}
    assert all(r[1] == 1 for r in per_event)
    # The rollups count each comparison once too: redelivery had no second effect.
    assert scalar(engine, "select sum(n) from shadow_rollups where rollout = 'kill-test'") == len(
        events
    )
    assert scalar(
        engine, "select sum(requests) from live_rollups where rollout = 'kill-test'"
    ) == len(events)


def _restore_state(client: redis.Redis) -> str:
    """What kombu's restore sees: the unacked tasks, their age, and who holds its lock."""
    ages = [
        round(time.time() - score, 1)
        for _, score in client.zrange("unacked_index", 0, -1, withscores=True)
    ]
    return (
        f"unacked={client.hlen('unacked')} ages_s={ages} "
        f"restore_lock_ttl_ms={client.pttl('unacked_mutex')}"
    )


def _abandon_restore_lock(redis_url: str, visibility_timeout_s: int) -> None:
    """Take kombu's restore lock as a worker killed inside its restore scan leaves it."""
    expire = transport_options(visibility_timeout_s).get("unacked_mutex_expire", 300)
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.lock("unacked_mutex", timeout=expire).acquire(blocking=False)
    finally:
        client.close()


def test_kill9_with_unacked_tasks_another_worker_restores_them_within_the_visibility_timeout(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """A worker dies holding tasks and the restore lock; the other redelivers them in time."""
    engine = make_engine(database_url)
    visibility_timeout_s = int(worker_env["SHADOWCANARY_REPLAY__VISIBILITY_TIMEOUT_S"])
    env = {
        **worker_env,
        "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0",
        "SHADOWCANARY_REPLAY__BATCH_SIZE": "4",
    }
    events = [make_event(model="gpt-5.2", rollout="restore-test") for _ in range(80)]
    sim.set_profile("gpt-5.5", median_ms=4000, p99_ms=5000)
    client = redis.Redis.from_url(redis_url)
    try:
        with run_worker(env, name="first") as first:
            send_ingest(redis_url, [e.model_dump(mode="json") for e in events])
            held = wait_until(
                lambda: (n := int(client.hlen("unacked"))) >= 8 and n,
                timeout_s=30,
                what="replay tasks held unacknowledged by the first worker",
            )
            first.kill9()
        _abandon_restore_lock(redis_url, visibility_timeout_s)
        sim.set_profile("gpt-5.5", median_ms=5, p99_ms=20)
        with run_worker(env, name="second") as second:
            bound_s = recovery_bound_s(visibility_timeout_s) + 20
            try:
                wait_until(
                    lambda: (
                        scalar(engine, "select count(*) from comparisons where kind = 'candidate'")
                        == len(events)
                    ),
                    timeout_s=bound_s,
                    what=(
                        f"{held} tasks of the killed worker redelivered and every event compared "
                        f"within {bound_s} s (visibility timeout {visibility_timeout_s} s)"
                    ),
                )
            except TimeoutError as exc:
                raise AssertionError(
                    f"{exc}\n{_restore_state(client)}\n{second.output()[-3000:]}"
                ) from exc
    finally:
        sim.set_profile("gpt-5.5", median_ms=5, p99_ms=20)
        client.close()
