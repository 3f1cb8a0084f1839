"""Adaptive replay sampling on the real data path: the rate the controller publishes in
Redis is the share of a rollout's baseline answers the workers replay."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import openai
import pytest
import redis
from sqlalchemy import Engine

from flags.embedded import EmbeddedFlags
from shadowcanary.constants import replay_rate_key
from shadowcanary.controller.operator import Operator
from shadowcanary.controller.policy import TickMemory
from shadowcanary.controller.tick import tick
from shadowcanary.ingest.service import in_replay_sample
from shadowcanary.judge.decide import DecisionKind
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.limits.replay_rate import RATE_TTL_S, ReplayRates
from shadowcanary.settings import TapSettings
from shadowcanary.shadow_results import ReplayKind
from shadowcanary.store.db import make_engine
from shadowcanary.store.repository import Store
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.openai_wrapper import tap_openai
from shadowcanary.testing.factories import make_replay
from shadowcanary.testing.poll import wait_until
from tests.integration.controller_harness import T0, FakeClock, insert_minute, ports_for, small_plan
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


def _shadow_pairs(
    store: Store, engine: Engine, rollout: str, minute: int, candidate: float
) -> None:
    """A minute of baseline calls, each replayed to the candidate and to the baseline again."""
    insert_minute(store, rollout, minute, baseline=200)
    ids_sql = (
        "select event_id from captures where rollout = :r and started_at >= :s and started_at < :e"
    )
    start = T0 + timedelta(minutes=minute)
    ids = [r[0] for r in rows(engine, ids_sql, r=rollout, s=start, e=start + timedelta(minutes=1))]
    records = [make_replay(i, ReplayKind.CANDIDATE, lexical_similarity=candidate) for i in ids]
    records += [make_replay(i, ReplayKind.NOISE, lexical_similarity=0.9) for i in ids]
    store.record_replays(records, recorded_at=start + timedelta(seconds=59))


def test_the_controller_publishes_the_rate_the_shadow_evidence_allows(
    database_url: str, redis_url: str
) -> None:
    """Certified at the gate: the maintenance rate in Redis; a quality drop: every answer again."""
    engine = make_engine(database_url, pool_size=2)
    store, clock, rates = Store(engine), FakeClock(), ReplayRates.from_url(redis_url)
    name = f"rate-{uuid.uuid4().hex[:8]}"
    plan = small_plan(
        name,
        f"{name}-flag",
        triggers="  p99_latency: off\n  shadow_invalid_json: off",
        shadow="{min_comparisons: 60, min_duration: 30m, deadline: 2h}",
        extra="replay_sampling: {maintenance_rate: 0.1, step_warmup: 0s}",
    )
    flags = EmbeddedFlags(engine)
    ports = replace(
        ports_for(engine, database_url, flags, clock), publish_replay_rate=rates.publish
    )
    clock.at(0, 5)
    Operator(ports_for(engine, database_url, flags, clock, actor="cli:t")).start(plan)
    memory = TickMemory()

    _shadow_pairs(store, engine, name, 0, candidate=0.9)  # D = 0: at the noise floor
    clock.at(1)
    held = tick(ports, name, memory)
    assert held.decision is not None and held.decision.kind is DecisionKind.HOLD
    assert "quality certified" in held.decision.reason, held.decision.reason
    assert rates.rates([name]) == {name: 0.1}

    _shadow_pairs(store, engine, name, 1, candidate=0.4)  # D = -0.5: the statistic moves
    clock.at(2)
    moved = tick(ports, name, memory)
    assert moved.decision is not None and moved.decision.kind is not DecisionKind.ADVANCE
    assert rates.rates([name]) == {name: 1.0}
    rates.close()
    engine.dispose()
