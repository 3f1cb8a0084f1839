"""Adaptive replay sampling on the real data path: the rate the controller publishes in
Redis is the share of a rollout's baseline answers the workers replay."""

from __future__ import annotations

import uuid

import openai
import pytest
import redis

from shadowcanary.constants import replay_rate_key
from shadowcanary.ingest.service import in_replay_sample
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.limits.replay_rate import RATE_TTL_S, ReplayRates
from shadowcanary.settings import TapSettings
from shadowcanary.store.db import make_engine
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.openai_wrapper import tap_openai
from shadowcanary.testing.poll import wait_until
from tests.integration.pipeline import rows, scalar

pytestmark = pytest.mark.integration


def test_the_workers_replay_the_published_share_of_baseline_answers(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """At a published 0.2, exactly the events the deterministic sample picks are replayed."""
    rollout = f"sampled-{uuid.uuid4().hex[:8]}"
    rates = ReplayRates.from_url(redis_url)
    rates.publish(rollout, 0.2)
    engine = make_engine(database_url)
    calls = 150
    with run_worker(worker_env), Tap(TapSettings(flush_interval_s=0.02), redis_url) as tap:
        client = tap_openai(
            openai.OpenAI(base_url=sim.base_url, api_key="test", max_retries=0),
            tap,
            route="support",
            rollout=rollout,
        )
        for i in range(calls):
            client.chat.completions.create(
                model="gpt-5.2", messages=[{"role": "user", "content": f"q {i}"}], user=f"u{i}"
            )
        count = "select count(*) from captures where rollout = :r"
        wait_until(lambda: scalar(engine, count, r=rollout) == calls, timeout_s=60, what="captures")
        ids_sql = "select event_id from captures where rollout = :r"
        ids = [r[0] for r in rows(engine, ids_sql, r=rollout)]
        sampled = {i for i in ids if in_replay_sample(i, 0.2)}
        replayed_sql = (
            "select r.event_id from replays r join captures c using (event_id) "
            "where c.rollout = :r and r.kind = 'candidate'"
        )

        def replayed() -> set[str]:
            return {r[0] for r in rows(engine, replayed_sql, r=rollout)}

        wait_until(lambda: replayed() >= sampled, timeout_s=60, what="sampled replays")
    assert replayed() == sampled
    assert 0.1 * calls < len(sampled) < 0.3 * calls
    engine.dispose()


def test_replay_rates_round_trip_and_fail_open(redis_url: str) -> None:
    """A published rate reads back and expires; unknown or garbage keys mean 'replay all'."""
    rates, raw = ReplayRates.from_url(redis_url), redis.Redis.from_url(redis_url)
    name = f"r-{uuid.uuid4().hex[:8]}"
    rates.publish(name, 0.1)
    assert rates.rates([name, "never-published"]) == {name: 0.1}
    assert 0 < int(raw.ttl(replay_rate_key(name))) <= RATE_TTL_S  # the controller must renew it
    raw.set(replay_rate_key(name), "garbage")
    assert rates.rates([name]) == {}
    down = ReplayRates.from_url("redis://127.0.0.1:1/0")
    assert down.rates([name]) == {}  # unreachable: every answer is replayed
    down.publish(name, 0.5)  # and publishing never raises
    rates.close()
    raw.close()
