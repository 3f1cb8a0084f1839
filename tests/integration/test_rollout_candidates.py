"""Each rollout's prompts are replayed against that rollout's candidate, not a global one."""

from __future__ import annotations

import json

from shadowcanary.events import now_utc
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.plan import parse_plan
from shadowcanary.store.db import make_engine
from shadowcanary.store.rollouts import RolloutStore
from shadowcanary.testing.factories import make_event
from shadowcanary.testing.poll import wait_until
from tests.integration.conftest import models_setting
from tests.integration.pipeline import rows, scalar, send_ingest


def _plan(name: str, candidate: str) -> str:
    return f"name: {name}\nflag: {name}-flag\nbaseline: gpt-5.2\ncandidate: {candidate}\n"


def test_replays_follow_the_candidate_named_by_each_rollout_plan(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """Search uses gpt-5.5-b, chat the default; a candidate with no endpoint fails clearly."""
    engine = make_engine(database_url)
    sim.set_profile("gpt-5.5-b", median_ms=5, p99_ms=20, diverge_from="gpt-5.2", divergence=0.2)
    controller = RolloutStore(engine)
    controller.create_rollout(parse_plan(_plan("search", "gpt-5.5-b")), now=now_utc(), actor="t")
    controller.create_rollout(parse_plan(_plan("ghost", "gpt-9")), now=now_utc(), actor="t")
    models = json.loads(models_setting(sim.base_url))
    models["gpt-5.5-b"] = {"base_url": sim.base_url}
    env = {
        **worker_env,
        "SHADOWCANARY_MODELS": json.dumps(models),
        "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0",
    }
    search = [make_event(model="gpt-5.2", rollout="search") for _ in range(4)]
    other = [make_event(model="gpt-5.2", rollout=None) for _ in range(3)]
    ghost = [make_event(model="gpt-5.2", rollout="ghost") for _ in range(2)]
    with run_worker(env):
        send_ingest(redis_url, [e.model_dump(mode="json") for e in search + other + ghost])
        wait_until(
            lambda: scalar(engine, "select count(*) from replays") == 9,
            timeout_s=30,
            what="all replays recorded",
        )
    by_event = {
        r[0]: (r[1], r[2], r[3])
        for r in rows(engine, "select event_id, model, status, error_message from replays")
    }
    assert {by_event[e.event_id][:2] for e in search} == {("gpt-5.5-b", "ok")}
    assert {by_event[e.event_id][:2] for e in other} == {("gpt-5.5", "ok")}
    for event in ghost:
        _model, status, message = by_event[event.event_id]
        assert status == "failed" and "gpt-9" in message and "not configured" in message
