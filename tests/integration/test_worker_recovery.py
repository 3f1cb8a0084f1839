"""A worker killed mid-task loses nothing and redelivery creates no second result."""

from __future__ import annotations

from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.store.db import make_engine
from shadowcanary.testing.factories import make_event
from shadowcanary.testing.poll import wait_until
from tests.integration.pipeline import rows, scalar, send_ingest, sim_calls


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
