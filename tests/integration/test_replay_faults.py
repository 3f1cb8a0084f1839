"""Replays under provider faults: 429 storms, 5xx, and permanent rejections."""

from __future__ import annotations

import time

from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.store.db import make_engine
from shadowcanary.testing.factories import make_event
from shadowcanary.testing.poll import wait_until
from tests.integration.conftest import models_setting
from tests.integration.pipeline import rows, scalar, send_ingest, sim_calls

RPM = 1_200  # 20 requests/s shared by every worker


def test_429_storm_backs_off_shares_the_rate_limit_and_loses_nothing(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """Under 40 % 429s two workers back off, share the RPM limit, and replay every event."""
    engine = make_engine(database_url)
    sim.set_profile("gpt-5.5", rate_limit_rate=0.4, retry_after_s=0.05)
    calls_before = sim_calls(sim, "gpt-5.5")
    limited_before = sim_calls(sim, "gpt-5.5", 429)
    env = {
        **worker_env,
        "SHADOWCANARY_MODELS": models_setting(sim.base_url, requests_per_minute=RPM),
        "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0",
        "SHADOWCANARY_REPLAY__MAX_ATTEMPTS": "15",
        "SHADOWCANARY_REPLAY__BATCH_SIZE": "8",
    }
    events = [make_event(model="gpt-5.2", rollout="storm") for _ in range(60)]
    with run_worker(env, name="a"), run_worker(env, name="b"):
        started = time.monotonic()
        send_ingest(redis_url, [e.model_dump(mode="json") for e in events])
        wait_until(
            lambda: scalar(engine, "select count(*) from comparisons") == len(events),
            timeout_s=90,
            what="all events compared despite 429s",
        )
        elapsed = time.monotonic() - started
    sim.set_profile("gpt-5.5", rate_limit_rate=0.0)

    calls = sim_calls(sim, "gpt-5.5") - calls_before
    limited = sim_calls(sim, "gpt-5.5", 429) - limited_before
    assert limited > 8, "the storm must actually have happened"
    # The shared limiter held: calls over the run never beat RPM by more than one burst.
    assert calls <= RPM / 60 * elapsed + RPM / 60 + 5
    attempts = [r[0] for r in rows(engine, "select attempts from replays")]
    assert max(attempts) > 1, "some events needed a retry"
    assert scalar(engine, "select count(*) from dead_letters") == 0


def test_server_errors_exhaust_attempts_into_dead_letters_with_the_error(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """A candidate that always answers 500 dead-letters the event after N attempts."""
    engine = make_engine(database_url)
    sim.set_profile("gpt-5.5", error_rate=1.0)
    env = {
        **worker_env,
        "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0",
        "SHADOWCANARY_REPLAY__MAX_ATTEMPTS": "3",
    }
    events = [make_event(model="gpt-5.2") for _ in range(5)]
    try:
        with run_worker(env):
            send_ingest(redis_url, [e.model_dump(mode="json") for e in events])
            wait_until(
                lambda: (
                    scalar(engine, "select count(*) from dead_letters where stage = 'replay'") == 5
                ),
                timeout_s=60,
                what="dead letters after the last attempt",
            )
    finally:
        sim.set_profile("gpt-5.5", error_rate=0.0)
    letters = rows(engine, "select event_id, error_class, attempts, message from dead_letters")
    assert {r[0] for r in letters} == {e.event_id for e in events}
    assert all(r[1] == "UpstreamUnavailable" and r[2] == 3 and "500" in r[3] for r in letters)
    assert scalar(engine, "select count(*) from comparisons") == 0
