"""The Responses API end to end: the official SDK through the tap, a real Celery worker
replaying against the candidate's Responses API (OpenAI or Azure dialect), comparisons
and costs (reasoning and cached tokens) in Postgres."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from shadowcanary.events import CapturedCall
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.settings import TapSettings
from shadowcanary.sim.prompt import REASONING_TOKENS
from shadowcanary.store.db import make_engine
from shadowcanary.store.repository import Store
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.openai_wrapper import tap_openai
from shadowcanary.testing.poll import wait_until
from tests.integration.pipeline import rows, scalar

pytestmark = pytest.mark.integration

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
PRICES = {
    "gpt-5.2": {"input": 1.75, "cached": 0.175, "output": 14.0},
    "gpt-5.5": {"input": 5.0, "cached": 0.5, "output": 30.0},
}


def _models(sim_url: str, /, **candidate: Any) -> str:
    def entry(name: str) -> dict[str, Any]:
        price = PRICES[name]
        return {
            "base_url": sim_url,
            "input_usd_per_mtok": price["input"],
            "cached_input_usd_per_mtok": price["cached"],
            "output_usd_per_mtok": price["output"],
        }

    return json.dumps({"gpt-5.2": entry("gpt-5.2"), "gpt-5.5": {**entry("gpt-5.5"), **candidate}})


def _cost(model: str, prompt: int, completion: int, cached: int) -> float:
    price = PRICES[model]
    return (
        (prompt - cached) * price["input"] + cached * price["cached"] + completion * price["output"]
    ) / 1e6


def _conversation(sim: SimHandle, tap: Tap) -> dict[str, str]:
    """Responses calls through a tapped client: plain, streamed with a function tool,
    continued with previous_response_id, async, and one continuing a response the tap
    never saw. Returns each call's first input text, by name."""
    client = tap_openai(
        openai.OpenAI(base_url=sim.base_url, api_key="k", max_retries=0),
        tap,
        route="support",
        rollout="resp",
    )
    first: Any = client.responses.create(
        model="gpt-5.2",
        instructions="Answer in one short paragraph.",
        input="Which plan suits a small accounting team?",
        reasoning={"effort": "low"},
        user="u-1",
    )
    client.responses.create(
        model="gpt-5.2",
        instructions="Answer in one short paragraph.",
        input="And what does it cost per seat?",
        previous_response_id=first.id,
        reasoning={"effort": "low"},
        user="u-1",
    )
    stream = client.responses.create(
        model="gpt-5.2",
        input=[{"role": "user", "content": "Weather in Oslo for the offsite?"}],
        tools=[WEATHER],
        tool_choice="required",
        stream=True,
        user="u-2",
    )
    assert [e.type for e in stream][-1] == "response.completed"

    async def async_call() -> None:
        aclient = tap_openai(
            openai.AsyncOpenAI(base_url=sim.base_url, api_key="k", max_retries=0), tap
        )
        await aclient.responses.create(
            model="gpt-5.2",
            input="Draft a JSON status for the migration.",
            text={"format": {"type": "json_object"}},
            user="u-3",
        )

    asyncio.run(async_call())
    untapped = openai.OpenAI(base_url=sim.base_url, api_key="k", max_retries=0)
    elsewhere: Any = untapped.responses.create(model="gpt-5.2", input="Hello from elsewhere.")
    client.responses.create(
        model="gpt-5.2", input="Continue, please.", previous_response_id=elsewhere.id
    )
    return {
        "first": "Which plan suits a small accounting team?",
        "continued": "And what does it cost per seat?",
        "tool": "Weather in Oslo for the offsite?",
        "async": "Draft a JSON status for the migration.",
        "orphan": "Continue, please.",
    }


def _by_prompt(store: Store, engine: Any) -> dict[str, CapturedCall]:
    events = store.get_captures([r[0] for r in rows(engine, "select event_id from captures")])
    return {event.request.messages[-1].text(): event for event in events.values()}


def test_responses_calls_are_captured_replayed_compared_and_costed(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """Tapped Responses calls are captured as sent, replayed through the candidate's
    Responses API (a previous_response_id with its captured turns, or recorded not
    replayable), compared and costed with reasoning and cached tokens."""
    engine = make_engine(database_url)
    store = Store(engine)
    sim.set_profile("gpt-5.5", divergence=0.0, reasoning_scale=3.0)
    env = {
        **worker_env,
        "SHADOWCANARY_MODELS": _models(sim.base_url),
        "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "1.0",
    }
    with run_worker(env), Tap(TapSettings(flush_interval_s=0.02), redis_url) as tap:
        prompts = _conversation(sim, tap)
        wait_until(
            lambda: scalar(engine, "select count(*) from replays") == 2 * len(prompts),
            timeout_s=60,
            what="a candidate and a noise replay of every Responses capture",
        )
    events = _by_prompt(store, engine)
    assert set(events) == set(prompts.values())
    first, continued = events[prompts["first"]], events[prompts["continued"]]

    # Captured as sent, with the turns behind previous_response_id.
    assert first.request.api == "responses"
    assert first.request.parameters["instructions"] == "Answer in one short paragraph."
    assert first.request.parameters["reasoning"] == {"effort": "low"}
    assert first.reasoning_tokens == REASONING_TOKENS["low"]
    assert continued.request.parameters["previous_response_id"]
    assert [m.role for m in continued.request.messages[: continued.request.context_messages]] == [
        "user",
        "assistant",
    ]
    assert continued.cached_tokens and continued.cached_tokens > 0
    tool_event = events[prompts["tool"]]
    assert tool_event.ttft_ms is not None
    assert [c.name for c in tool_event.response.tool_calls] == ["get_weather"]  # type: ignore[union-attr]
    assert events[prompts["async"]].request.parameters["text"] == {
        "format": {"type": "json_object"}
    }

    replays = {
        (r.event_id, r.kind): r
        for r in rows(
            engine,
            "select event_id, kind, status, output, prompt_tokens, completion_tokens, cost_usd, "
            "error_message from replays",
        )
    }
    # The baseline asked again answers exactly as live: the replay sent the same call,
    # the continued one with its whole conversation.
    for name in ("first", "continued", "tool", "async"):
        event = events[prompts[name]]
        assert replays[(event.event_id, "candidate")].status == "ok", name
        (exact,) = rows(
            engine,
            "select exact_match from comparisons where event_id = :e and kind = 'noise'",
            e=event.event_id,
        )[0]
        assert exact is True, name
    tool_replay = replays[(tool_event.event_id, "candidate")]
    assert [c["name"] for c in tool_replay.output["tool_calls"]] == ["get_weather"]
    (agree,) = rows(
        engine,
        "select tool_name_agreement from comparisons where event_id = :e and kind = 'candidate'",
        e=tool_event.event_id,
    )[0]
    assert agree is True

    # Costs: the candidate reasons 3x as much; cached input at its price.
    candidate = replays[(continued.event_id, "candidate")]
    assert candidate.output["reasoning_tokens"] == 3 * REASONING_TOKENS["low"]
    assert candidate.cost_usd == pytest.approx(
        _cost(
            "gpt-5.5",
            candidate.prompt_tokens,
            candidate.completion_tokens,
            candidate.output["cached_tokens"] or 0,
        )
    )
    live_cost = _cost(
        "gpt-5.2",
        continued.prompt_tokens or 0,
        continued.completion_tokens or 0,
        continued.cached_tokens or 0,
    )
    (cost_delta,) = rows(
        engine,
        "select cost_delta_usd from comparisons where event_id = :e and kind = 'candidate'",
        e=continued.event_id,
    )[0]
    assert cost_delta == pytest.approx(candidate.cost_usd - live_cost)

    orphan = events[prompts["orphan"]]
    for kind in ("candidate", "noise"):
        replay = replays[(orphan.event_id, kind)]
        assert replay.status == "not_replayable"
        assert "previous_response_id" in replay.error_message
    assert (
        scalar(engine, "select count(*) from comparisons where event_id = :e", e=orphan.event_id)
        == 0
    )


AZURE = {
    "classic": {"provider": "azure", "api_version": "2025-04-01-preview"},
    "v1": {"provider": "azure"},
}


@pytest.mark.parametrize(
    ("dialect", "stream"), [("classic", False), ("classic", True), ("v1", True)]
)
def test_replays_succeed_against_an_azure_openai_candidate(
    worker_env: dict[str, str],
    redis_url: str,
    database_url: str,
    sim: SimHandle,
    dialect: str,
    stream: bool,
) -> None:
    """A candidate configured as Azure OpenAI (classic deployment or v1 API) is replayed
    chat and Responses calls, streamed (SDK) and not (direct HTTP), and they succeed."""
    engine = make_engine(database_url)
    root = sim.base_url.removesuffix("/v1")
    base = root if dialect == "classic" else f"{root}/openai/v1"
    env = {
        **worker_env,
        "SHADOWCANARY_MODELS": _models(sim.base_url, base_url=base, **AZURE[dialect]),
        "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "0",
        "SHADOWCANARY_REPLAY__STREAM": "true" if stream else "false",
    }
    with run_worker(env), Tap(TapSettings(flush_interval_s=0.02), redis_url) as tap:
        client = tap_openai(
            openai.OpenAI(base_url=sim.base_url, api_key="k", max_retries=0), tap, rollout="az"
        )
        client.chat.completions.create(
            model="gpt-5.2", messages=[{"role": "user", "content": "Hi from chat"}], user="a"
        )
        client.responses.create(model="gpt-5.2", input="Hi from responses", user="a")
        found = wait_until(
            lambda: (
                (found := rows(engine, "select status, error_message from replays"))
                and len(found) == 2
                and found
            ),
            timeout_s=60,
            what="two candidate replays",
        )
    assert [(r.status, r.error_message) for r in found] == [("ok", None), ("ok", None)]
    assert scalar(engine, "select count(*) from comparisons where kind = 'candidate'") == 2
