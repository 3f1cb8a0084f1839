"""User outcomes from services, end to end: the event id out, the outcome back in.

What is real: the gateway subprocess (routing by the embedded flag in Postgres, tapping
into Redis), the simulator as both models, a Celery worker (ingesting captures and
outcome reports, joining them in its sweep), Postgres, the controller's tick, the
tap's OpenAI wrapper in this process, and the official openai npm package in Node.
The controller's clock is the test's, set a few minutes past the traffic so the
minutes the calls were made in are closed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import Engine

from flags.embedded import EmbeddedFlags
from shadowcanary.controller.operator import Operator
from shadowcanary.controller.policy import TickMemory
from shadowcanary.controller.tick import tick
from shadowcanary.events import Arm
from shadowcanary.gateway.auth import hash_key
from shadowcanary.judge.decide import DecisionKind
from shadowcanary.launcher.gateway import GATEWAY_TEST_KEY, GatewayHandle, run_gateway
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.plan import parse_plan
from shadowcanary.settings import TapSettings
from shadowcanary.store.db import make_engine
from shadowcanary.store.outcomes import OutcomeStore
from shadowcanary.tap import last_event_id
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.openai_wrapper import tap_openai
from shadowcanary.testing.poll import wait_until
from tests.gateway.conftest import FLAG, ROLLOUT, base_env
from tests.integration.controller_harness import FakeClock, ports_for
from tests.integration.pipeline import scalar

pytestmark = pytest.mark.integration

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
OTHER_KEY = "other-service-key-4d1c"
EVENT_ID_HEADER = "x-shadowcanary-event-id"
PLAN = f"""
name: {ROLLOUT}
flag: {FLAG.name}
baseline: gpt-5.2
candidate: gpt-5.5
unleash: {{environment: development}}
steps: [50, 100]
shadow: off  # the outcome triggers judge the steps (test_rollout_phases.py: the gate)
watch: off
exposure: {{min_canary_requests: 100, min_events_per_arm: 25, min_duration: 10s, deadline: 1h}}
sample_ratio: {{grace: 0s}}
triggers:
  error_rate: {{margin: 0.05}}
  p99_latency: off
  completion_rate: act
"""


def abandoned(model: str, i: int) -> bool:
    """Users of the candidate's answers abandon 45 % of their tasks, the baseline's 10 %."""
    return i % 20 < 9 if model == "gpt-5.5" else i % 10 == 0


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


def keyed_env(redis_url: str, database_url: str, sim: SimHandle) -> dict[str, str]:
    """Two services: ours may report for the test rollout only, the other for another."""
    keys = {
        "test-service": {"sha256": hash_key(GATEWAY_TEST_KEY), "rollouts": [ROLLOUT]},
        "other-service": {"sha256": hash_key(OTHER_KEY), "rollouts": ["other-rollout"]},
    }
    return {
        **base_env(redis_url, database_url, sim),
        "SHADOWCANARY_GATEWAY__API_KEYS": json.dumps(keys),
    }


@pytest.fixture
def keyed_gateway(redis_url: str, database_url: str, sim: SimHandle) -> Iterator[GatewayHandle]:
    with run_gateway(keyed_env(redis_url, database_url, sim)) as handle:
        yield handle


def post_outcomes(gateway: GatewayHandle, body: Any, key: str = GATEWAY_TEST_KEY) -> httpx.Response:
    return httpx.post(
        f"{gateway.base_url}/tap/outcomes",
        content=body if isinstance(body, bytes) else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=10,
    )


def _node_ready() -> None:
    problem = None
    if shutil.which("node") is None:
        problem = "node is not installed (Node 20+)"
    elif not (NODE_DIR / "node_modules" / "openai").is_dir():
        problem = f"the openai npm package is not installed: npm ci --prefix {NODE_DIR}"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide it: {problem}")
        pytest.skip(problem)


def _node_service(gateway: GatewayHandle, calls: int) -> dict[str, Any]:
    env = {
        **os.environ,
        "BASE_URL": gateway.base_url,
        "API_KEY": gateway.api_key,
        "CALLS": str(calls),
        "USER_PREFIX": f"node-{uuid.uuid4().hex[:6]}",
    }
    done = subprocess.run(
        ["node", str(NODE_DIR / "gateway_outcomes.mjs")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _python_gateway_service(
    gateway: GatewayHandle, calls: int
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Calls through the gateway with the Python SDK; the outcome reports it will post."""
    client = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)
    prefix = uuid.uuid4().hex[:6]

    def one(i: int) -> tuple[str, str]:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-5.2",
            messages=[{"role": "user", "content": f"Can I return item {i}?"}],
            user=f"py-{prefix}-{i}",
        )
        return raw.headers[EVENT_ID_HEADER], raw.parse().model

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(calls)))
    models: dict[str, int] = {}
    reports = []
    for i, (event_id, model) in enumerate(answers):
        models[model] = models.get(model, 0) + 1
        task = "abandoned" if abandoned(model, i) else "completed"
        reports.append({"event_id": event_id, "task": task, "value": float(i % 7)})
    client.close()
    return reports, models


def _python_tap_service(redis_url: str, sim: SimHandle, calls: int) -> int:
    """A Python service calling its models itself, tapped, reporting with tap.outcome."""
    tap = Tap(TapSettings(flush_interval_s=0.02), redis_url)
    clients = {
        arm: tap_openai(
            openai.OpenAI(base_url=sim.base_url, api_key="sim", max_retries=0),
            tap,
            route="tapped",
            rollout=ROLLOUT,
            arm=arm,
        )
        for arm in Arm
    }
    reported = 0
    try:
        for i in range(calls):
            arm = Arm.CANDIDATE if i % 2 else Arm.BASELINE
            model = "gpt-5.5" if arm is Arm.CANDIDATE else "gpt-5.2"
            clients[arm].chat.completions.create(
                model=model, messages=[{"role": "user", "content": f"Track parcel {i}"}]
            )
            event_id = last_event_id()
            assert event_id is not None
            task = "abandoned" if abandoned(model, i // 2) else "completed"
            reported += tap.outcome(event_id, task=task, feedback="down" if i % 5 == 0 else None)
            # The same report twice (a retried request handler): it must count once.
            tap.outcome(event_id, task=task)
        tap.close()
        stats = tap.outcome_stats()
        assert stats.published == 2 * calls and not sum(stats.dropped.values()), stats
    finally:
        for client in clients.values():
            client.close()
    return reported


def test_a_candidate_users_abandon_is_rolled_back_with_outcomes_from_every_path(
    redis_url: str,
    database_url: str,
    sim: SimHandle,
    worker_env: dict[str, str],
    engine: Engine,
) -> None:
    """Outcomes reported through the tap SDK, the gateway endpoint from Python and from the
    openai npm client (reading x-shadowcanary-event-id) reach Postgres once each, and
    completion_rate rolls back the candidate whose users abandon more."""
    _node_ready()
    clock = FakeClock(now=datetime.now(UTC))
    flags = EmbeddedFlags(engine)
    ports = ports_for(engine, database_url, flags, clock)
    Operator(ports).start(parse_plan(PLAN))
    memory = TickMemory()
    first = tick(ports, ROLLOUT, memory)  # p99 off: straight to the 50 % step
    assert first.decision is not None and first.decision.kind is DecisionKind.ADVANCE
    worker = {**worker_env, "SHADOWCANARY_OUTCOMES__SWEEP_INTERVAL_S": "0.5"}
    with run_worker(worker), run_gateway(keyed_env(redis_url, database_url, sim)) as gateway:
        reports, models = _python_gateway_service(gateway, 160)
        assert set(models) == {"gpt-5.2", "gpt-5.5"}, models  # the flag splits users
        answered = post_outcomes(gateway, {"outcomes": reports})
        assert answered.status_code == 200, answered.text
        assert answered.json() == {"accepted": 160, "rejected": []}
        # Delivered again (a client retry): merged, counted once.
        assert post_outcomes(gateway, reports).status_code == 200
        node = _node_service(gateway, 80)
        assert node["without_header"] == 0 and node["status"] == 200, node
        assert node["answer"]["accepted"] == 80 and set(node["models"]) == {"gpt-5.2", "gpt-5.5"}
        tapped = _python_tap_service(redis_url, sim, 120)
        assert tapped == 120
        expected = 160 + 80 + 120
        joined = wait_until(
            lambda: (
                (
                    n := scalar(
                        engine,
                        "SELECT coalesce(sum(tasks_reported), 0) FROM live_rollups"
                        " WHERE rollout = :r",
                        r=ROLLOUT,
                    )
                )
                >= expected
                and n
            ),
            timeout_s=90,
            what=f"{expected} task outcomes joined to their calls",
        )
        assert joined == expected  # duplicates counted once
        negative = scalar(
            engine,
            "SELECT sum(outcomes_negative) FROM live_rollups WHERE rollout = :r",
            r=ROLLOUT,
        )
        assert negative == 24  # the tap service's thumbs down: every fifth of 120 calls
    clock.now = datetime.now(UTC) + timedelta(minutes=2)
    result = tick(ports, ROLLOUT, memory)
    assert result.decision is not None
    assert result.decision.kind is DecisionKind.ROLLBACK, result.decision.reason
    assert "completion_rate" in result.decision.reason
    assert flags.read(FLAG.name).effective_percent == 0


def test_unknown_event_ids_are_accepted_and_counted(
    redis_url: str,
    database_url: str,
    sim: SimHandle,
    worker_env: dict[str, str],
    engine: Engine,
) -> None:
    """A report naming an id no call had is accepted, stored and counted as unknown."""
    with run_worker(worker_env), run_gateway(keyed_env(redis_url, database_url, sim)) as gateway:
        answer = post_outcomes(
            gateway, [{"event_id": "no-such-call-123", "task": "completed", "rollout": ROLLOUT}]
        )
        assert answer.status_code == 200, answer.text
        outcomes = OutcomeStore(engine)
        window = {"since": datetime.now(UTC) - timedelta(hours=1), "rollout": ROLLOUT}
        summary = wait_until(
            lambda: (
                (
                    s := outcomes.summary(
                        now=datetime.now(UTC), unknown_after=timedelta(0), **window
                    )
                ).unknown
                and s
            ),
            timeout_s=30,
            what="the unknown report stored",
        )
        assert (summary.unknown, summary.joined, summary.event_ids) == (1, 0, 1)


def test_bad_outcome_input_gets_a_clear_4xx(keyed_gateway: GatewayHandle) -> None:
    """Not a batch, broken reports, too many, not JSON, wrong method: 4xx saying what to fix;
    good reports next to bad ones are accepted (207)."""
    not_a_batch = post_outcomes(keyed_gateway, {"event_id": "abc12345"})
    assert not_a_batch.status_code == 400
    message = not_a_batch.json()["error"]["message"]
    assert 'JSON list of outcome reports or {"outcomes": [...]}' in message
    assert post_outcomes(keyed_gateway, b"{not json").status_code == 400
    mixed = post_outcomes(
        keyed_gateway,
        [
            {"event_id": "good-event-1", "task": "completed"},
            {"event_id": "good-event-2"},  # says nothing
            {"task": "abandoned"},  # no id
            {"event_id": "good-event-3", "task": "finished"},  # not an outcome
            {"event_id": "good-event-4", "feedback": "down", "tenant": "someone-else"},
            {"event_id": "good-event-5", "value": 1, "note": "x" * 5000},
            "not an object",
        ],
    )
    assert mixed.status_code == 207, mixed.text
    body = mixed.json()
    assert body["accepted"] == 1
    errors = {r["index"]: r["error"] for r in body["rejected"]}
    assert "says nothing: set at least one of task" in errors[1]
    assert "event_id: Field required" in errors[2]
    assert "task: Input should be 'completed' or 'abandoned'" in errors[3]
    assert "is not this key's service 'test-service'" in errors[4]
    assert "over the 4096-byte limit" in errors[5]
    assert errors[6] == "an outcome report must be a JSON object"
    none_good = post_outcomes(keyed_gateway, [{"event_id": "x"}])
    assert none_good.status_code == 422
    assert "event_id: String should have at least 8 characters" in none_good.text
    too_many = post_outcomes(keyed_gateway, [{"event_id": "e" * 8, "retried": True}] * 5001)
    assert too_many.status_code == 413 and "at most 5000 outcome reports" in too_many.text
    wrong_method = httpx.get(
        f"{keyed_gateway.base_url}/tap/outcomes",
        headers={"Authorization": f"Bearer {GATEWAY_TEST_KEY}"},
    )
    assert wrong_method.status_code == 405


def test_outcome_reports_need_a_key_bound_to_the_rollout(keyed_gateway: GatewayHandle) -> None:
    """No key or an unknown key: 401; a key not bound to the named rollout: 403, nothing taken."""
    report = [{"event_id": "some-call-1", "task": "abandoned", "rollout": ROLLOUT}]
    missing = httpx.post(f"{keyed_gateway.base_url}/tap/outcomes", json=report)
    assert missing.status_code == 401 and "Missing API key" in missing.text
    assert post_outcomes(keyed_gateway, report, key="not-a-key").status_code == 401
    foreign = post_outcomes(keyed_gateway, report, key=OTHER_KEY)
    assert foreign.status_code == 403, foreign.text
    assert f"may not report for rollout '{ROLLOUT}'" in foreign.text
    assert post_outcomes(keyed_gateway, report).status_code == 200


def test_every_proxied_answer_names_its_event_id(keyed_gateway: GatewayHandle) -> None:
    """Plain and streamed answers carry x-shadowcanary-event-id, a distinct id per call;
    embeddings (never captured) carry none."""
    client = openai.OpenAI(base_url=keyed_gateway.base_url, api_key=GATEWAY_TEST_KEY)
    plain = client.chat.completions.with_raw_response.create(
        model="gpt-5.2", messages=[{"role": "user", "content": "hi"}]
    )
    with client.chat.completions.with_streaming_response.create(
        model="gpt-5.2", messages=[{"role": "user", "content": "hi"}], stream=True
    ) as streamed:
        streamed_id = streamed.headers.get(EVENT_ID_HEADER)
        list(streamed.iter_lines())
    ids = {plain.headers.get(EVENT_ID_HEADER), streamed_id}
    assert None not in ids and len(ids) == 2
    # Embeddings are proxied, not captured: no id to report an outcome against.
    embedded = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="a sentence"
    )
    assert embedded.http_response.status_code == 200
    assert EVENT_ID_HEADER not in embedded.headers
    client.close()
