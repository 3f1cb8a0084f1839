"""End to end: tap -> Redis -> Celery worker -> simulator -> comparisons in Postgres."""

from __future__ import annotations

import json
import urllib.request

import openai
import redis

from shadowcanary.events import CapturedCall, ModelRequest
from shadowcanary.judge import compare, output_from_capture
from shadowcanary.judge.types import CallOutput
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.settings import TapSettings
from shadowcanary.store.db import make_engine
from shadowcanary.store.repository import Store
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.openai_wrapper import tap_openai
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.servers import free_port
from tests.integration.conftest import models_setting
from tests.integration.pipeline import rows, scalar

PII_PROMPTS = [
    "My email is jane.doe@example.com, can you update my account?",
    "Call me on +1 415 555 0134 about the refund.",
    "Charge card 4111 1111 1111 1111 for the upgrade please.",
    "Our key is sk-proj-abcdefghijklmnopqrstuvwxyz123456, is it leaked?",
]
COMPARISON_OF_EVENT = (
    "select exact_match, lexical_similarity from comparisons "
    "where event_id = :e and kind = 'candidate'"
)
PII_FRAGMENTS = [
    "jane.doe@example.com",
    "555 0134",
    "4111 1111 1111 1111",
    "sk-proj-abcdefghijklmnop",
]


def _tapped_calls(sim: SimHandle, tap: Tap, prompts: list[str], *, stream: bool) -> None:
    client = tap_openai(
        openai.OpenAI(base_url=sim.base_url, api_key="test", max_retries=0),
        tap,
        route="support",
        rollout="e2e",
    )
    for prompt in prompts:
        result = client.chat.completions.create(
            model="gpt-5.2",
            messages=[{"role": "user", "content": prompt}],
            stream=stream,
            user="u-1",
        )
        if stream:
            for _ in result:
                pass


def _candidate_output(sim: SimHandle, request: ModelRequest) -> CallOutput:
    """What the candidate says to this prompt, asked directly (the simulator is deterministic)."""
    completion = openai.OpenAI(base_url=sim.base_url, api_key="test").chat.completions.create(
        model="gpt-5.5", messages=[m.model_dump(exclude_none=True) for m in request.messages]
    )
    return CallOutput(
        model="gpt-5.5",
        text=completion.choices[0].message.content,
        finish_reason=completion.choices[0].finish_reason,
    )


def test_tapped_calls_are_replayed_and_compared_with_the_right_values(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """Tapped calls land in Postgres with comparisons equal to a direct computation."""
    engine = make_engine(database_url)
    store = Store(engine)
    sim.set_profile("gpt-5.5", divergence=0.0)
    identical = [f"Identical question number {i} about invoices" for i in range(6)]
    divergent = [
        f"Divergent question number {i} about shipping and returns policy" for i in range(6)
    ]
    # Streamed replays here (the other data-path tests use the default, non-streamed).
    env = {**worker_env, "SHADOWCANARY_REPLAY__STREAM": "true"}
    with run_worker(env), Tap(TapSettings(), redis_url) as tap:
        _tapped_calls(sim, tap, identical, stream=False)
        wait_until(
            lambda: scalar(engine, "select count(*) from comparisons where kind='candidate'") == 6,
            timeout_s=30,
            what="identical-phase comparisons",
        )
        sim.set_profile("gpt-5.5", divergence=0.6)  # a regression injected mid-run
        _tapped_calls(sim, tap, divergent, stream=True)
        wait_until(
            lambda: scalar(engine, "select count(*) from comparisons where kind='candidate'") == 12,
            timeout_s=30,
            what="divergent-phase comparisons",
        )

    by_prompt = {}
    captures = store.get_captures([r[0] for r in rows(engine, "select event_id from captures")])
    for event in captures.values():
        by_prompt[event.request.messages[0].content] = event
    assert set(by_prompt) == set(identical) | set(divergent)
    for prompt in identical:
        (exact, lexical) = rows(
            engine,
            COMPARISON_OF_EVENT,
            e=by_prompt[prompt].event_id,
        )[0]
        assert exact is True and lexical == 1.0
    for prompt in divergent:
        event: CapturedCall = by_prompt[prompt]
        expected = compare(
            output_from_capture(event, None), _candidate_output(sim, event.request), event.request
        )
        (exact, lexical) = rows(
            engine,
            COMPARISON_OF_EVENT,
            e=event.event_id,
        )[0]
        assert exact is False
        assert abs(lexical - expected.lexical_similarity) < 1e-9
        assert lexical < 0.9
    # Streamed live calls carry a time to first token; the rollups saw every live call.
    assert scalar(engine, "select count(*) from captures where ttft_ms is not null") == 6
    assert scalar(engine, "select sum(requests) from live_rollups where rollout='e2e'") == 12
    # Streamed replays measure the candidate's TTFT, so the comparison has a TTFT delta.
    assert scalar(engine, "select count(*) from replays where ttft_ms is null") == 0
    ttft_deltas = (
        "select count(*) from comparisons where kind='candidate' and ttft_delta_ms is not null"
    )
    assert scalar(engine, ttft_deltas) == 6  # the streamed live calls


def test_pii_never_reaches_redis_or_postgres_unredacted(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """Emails, phones, cards and keys are redacted before Redis, so never stored raw."""
    engine = make_engine(database_url)
    client = redis.Redis.from_url(redis_url)
    seen_in_redis: list[bytes] = []
    with Tap(TapSettings(), redis_url) as tap:
        _tapped_calls(sim, tap, PII_PROMPTS, stream=False)
        tap.close()
        seen_in_redis.extend(client.lrange("shadowcanary.ingest", 0, -1))
    assert seen_in_redis, "the batch must be waiting in Redis"
    with run_worker(worker_env):
        wait_until(
            lambda: scalar(engine, "select count(*) from comparisons where kind='candidate'") == 4,
            timeout_s=30,
            what="replays of the PII prompts",
        )
    # Every stored value as full JSON text (a Row's repr would elide long values).
    stored = " ".join(
        json.dumps(dict(r._mapping), default=str)
        for table in ("captures", "replays", "comparisons", "dead_letters")
        for r in rows(engine, f"select * from {table}")
    )
    for fragment in PII_FRAGMENTS:
        assert all(fragment.encode() not in raw for raw in seen_in_redis), fragment
        assert fragment not in stored, fragment
    assert "[EMAIL]" in stored and "[CARD]" in stored


def test_worker_exposes_metrics_and_computes_embedding_similarity(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """With an embeddings model, comparisons carry a cosine; /metrics counts replays."""
    engine = make_engine(database_url)
    port = free_port()
    models = json.loads(models_setting(sim.base_url))
    models["text-embedding-3-small"] = {"base_url": sim.base_url}
    env = {
        **worker_env,
        "SHADOWCANARY_MODELS": json.dumps(models),
        "SHADOWCANARY_EMBEDDINGS_MODEL": "text-embedding-3-small",
        "SHADOWCANARY_METRICS_PORT": str(port),
        "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0",
    }
    sim.set_profile("gpt-5.5", divergence=0.3)
    with run_worker(env), Tap(TapSettings(), redis_url) as tap:
        _tapped_calls(
            sim, tap, [f"Embedding question {i} on refunds" for i in range(5)], stream=False
        )
        wait_until(
            lambda: scalar(engine, "select count(*) from comparisons") == 5,
            timeout_s=30,
            what="comparisons",
        )
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    sims = [r[0] for r in rows(engine, "select embedding_similarity from comparisons")]
    assert all(s is not None and 0.0 < s < 1.0 for s in sims), sims
    assert 'shadowcanary_worker_replays_total{kind="candidate",status="ok"} 5.0' in body
    assert "shadowcanary_worker_replay_seconds_count" in body
    assert "shadowcanary_worker_replays_in_flight" in body
