"""A rollout decided by the LLM judge: real Unleash, traffic, worker, simulator judge, controller.

A better-but-different candidate (answers the simulated judge prefers, worded far from
the baseline's) completes 10 -> 30 -> 50 -> 100 % with ``judge_score`` in act and the
similarity trigger in dry-run. With similarity alone in act, the same candidate is
rolled back, and the audit row says what happened: similarity found *change*, while the
judge (recorded in dry-run) found no harm.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from shadowcanary.judge.decide import DecisionKind
from shadowcanary.judge.triggers import Verdict
from shadowcanary.launcher.sim import SimHandle, run_simulator
from shadowcanary.plan import TriggerMode
from shadowcanary.rollout_records import RolloutStatus
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.unleash import UnleashHandle
from tests.integration import test_rollout_e2e as e2e
from tests.integration.conftest import FAST_PROFILES
from tests.integration.controller_harness import FakeClock, WebhookSink, small_plan
from tests.integration.test_rollout_e2e import Traffic, controller, tick_at

pytestmark = pytest.mark.integration

# test_rollout_e2e's fixtures (traffic through a real Unleash), used here by name.
live = e2e.live
engine = e2e.engine
sink = e2e.sink

BETTER_BUT_DIFFERENT: dict[str, Any] = {
    **FAST_PROFILES["gpt-5.5"],
    "divergence": 0.6,
    "quality": 1.0,
}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    """The simulator as baseline, a better-but-different candidate, and the judge."""
    profiles = {
        **FAST_PROFILES,
        "gpt-5.5": BETTER_BUT_DIFFERENT,
        "sim-judge": {"role": "judge", "median_ms": 3, "p99_ms": 10},
    }
    with run_simulator(profiles) as handle:
        yield handle


@pytest.fixture
def worker_env(database_url: str, redis_url: str, sim: SimHandle) -> dict[str, str]:
    models = {
        name: {"base_url": sim.base_url, "input_usd_per_mtok": i, "output_usd_per_mtok": o}
        for name, (i, o) in {
            "gpt-5.2": (1.75, 14.0),
            "gpt-5.5": (5.0, 30.0),
            "sim-judge": (0.25, 2.0),
        }.items()
    }
    return {
        "SHADOWCANARY_DATABASE_URL": database_url,
        "SHADOWCANARY_REDIS_URL": redis_url,
        "SHADOWCANARY_MODELS": json.dumps(models),
        "SHADOWCANARY_REPLAY__BACKOFF_BASE_S": "0.2",
        "SHADOWCANARY_REPLAY__BACKOFF_MAX_S": "1",
        "SHADOWCANARY_REPLAY__VISIBILITY_TIMEOUT_S": "8",
        "SHADOWCANARY_JUDGE__MODEL": "sim-judge",
        "SHADOWCANARY_JUDGE__SAMPLE_RATE": "0.5",
        "SHADOWCANARY_LOG_LEVEL": "info",
    }


def _fixtures(request: pytest.FixtureRequest) -> tuple[Traffic, FakeClock, Engine, WebhookSink]:
    """test_rollout_e2e's fixtures (traffic through real Unleash), by name."""
    traffic, clock = request.getfixturevalue("live")
    return traffic, clock, request.getfixturevalue("engine"), request.getfixturevalue("sink")


def _all_judged(db: Engine, rollout: str) -> None:
    """Every answered candidate replay sampled for the judge has its verdict."""

    def counts() -> tuple[int, int]:
        with db.connect() as conn:
            judged = conn.execute(
                text(
                    "select count(*) from judge_verdicts v join captures c using (event_id) "
                    "where c.rollout = :r and v.kind = 'candidate'"
                ),
                {"r": rollout},
            ).scalar_one()
            noise = conn.execute(
                text(
                    "select count(*) from judge_verdicts v join captures c using (event_id) "
                    "where c.rollout = :r and v.kind = 'noise'"
                ),
                {"r": rollout},
            ).scalar_one()
        return int(judged), int(noise)

    previous: list[tuple[int, int]] = []

    def settled() -> bool:
        # Verdicts stop arriving: two polls a second apart see the same counts.
        now = counts()
        done = bool(previous) and previous[-1] == now and now[0] > 0
        previous.append(now)
        return done

    wait_until(settled, timeout_s=90, interval_s=1.0, what="the judge's verdicts recorded")


def test_a_better_but_different_candidate_completes_with_the_judge_in_act(
    request: pytest.FixtureRequest, database_url: str, unleash: UnleashHandle
) -> None:
    """judge_score in act, similarity in dry-run: 10 -> 30 -> 50 -> 100 % and complete."""
    traffic, clock, db, hooks = _fixtures(request)
    ports, memory, operator = controller(clock, db, database_url, unleash)
    clock.at(0, 1)
    plan = small_plan(
        traffic.rollout,
        traffic.flag,
        webhook=hooks.url,
        min_canary=80,
        triggers="  judge_score: act\n",
    )
    plan = plan.model_copy(
        update={
            "triggers": plan.triggers.model_copy(
                update={
                    "quality": plan.triggers.quality.model_copy(
                        update={"mode": TriggerMode.DRY_RUN}
                    )
                }
            )
        }
    )
    operator.start(plan)
    traffic.minute(0, 550)  # pre-canary: baseline p99 frozen, the judge's shadow pairs
    _all_judged(db, traffic.rollout)
    calls = {1: 1000, 2: 330, 3: 200}
    seen = []
    for minute in (1, 2, 3, 4):
        result = tick_at(ports, memory, clock, traffic.rollout, minute)
        assert result.decision is not None, result
        assert result.decision.kind is DecisionKind.ADVANCE, result.decision.reason
        if minute > 1:  # the first tick only moves the pre-canary flag to 10 %
            verdicts = {r.name: r for r in result.decision.triggers}
            assert verdicts["judge_score"].verdict is Verdict.CERTIFIED, verdicts
            assert verdicts["quality"].mode is TriggerMode.DRY_RUN
        seen.append(result.record.percent if result.record else -1)
        traffic.wait_for_share(seen[-1])
        if minute in calls:
            traffic.minute(minute, calls[minute])
            _all_judged(db, traffic.rollout)
    assert seen == [10, 30, 50, 100]
    done = tick_at(ports, memory, clock, traffic.rollout, 5)
    assert done.decision is not None and done.decision.kind is DecisionKind.COMPLETE
    assert done.record is not None and done.record.status is RolloutStatus.COMPLETED


def test_with_similarity_alone_in_act_the_same_candidate_is_rolled_back_for_change(
    request: pytest.FixtureRequest, database_url: str, unleash: UnleashHandle
) -> None:
    """Similarity in act rolls the better candidate back; the audit shows the judge saw no harm."""
    traffic, clock, db, hooks = _fixtures(request)
    ports, memory, operator = controller(clock, db, database_url, unleash)
    clock.at(0, 1)
    plan = small_plan(
        traffic.rollout,
        traffic.flag,
        webhook=hooks.url,
        min_canary=80,
        triggers="  judge_score: dry-run\n",
    )
    operator.start(plan)
    traffic.minute(0, 550)
    _all_judged(db, traffic.rollout)
    first = tick_at(ports, memory, clock, traffic.rollout, 1)
    assert first.decision is not None
    traffic.wait_for_share(10)
    traffic.minute(1, 1000)
    _all_judged(db, traffic.rollout)
    result = tick_at(ports, memory, clock, traffic.rollout, 2)
    decision = result.decision
    assert decision is not None and decision.kind is DecisionKind.ROLLBACK, decision
    assert decision.reason.startswith("quality:")
    judge = next(r for r in decision.triggers if r.name == "judge_score")
    assert judge.verdict is Verdict.CERTIFIED, judge.detail  # no harm: the candidate wins
    assert judge.candidate_value is not None and judge.candidate_value < 0  # net wins
