"""The official openai Python SDK through the gateway gets what it gets from the upstream."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from shadowcanary.launcher.gateway import GatewayHandle
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.store.db import make_engine
from shadowcanary.testing.poll import wait_until
from tests.gateway.conftest import ROLLOUT, set_flag
from tests.gateway.sameness import same
from tests.integration.pipeline import rows

pytestmark = pytest.mark.integration

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
RESPONSES_TOOL = {"type": "function", "name": "get_weather", **{
    k: v for k, v in WEATHER_TOOL["function"].items() if k != "name"
}}  # fmt: skip


def _clients(gateway: GatewayHandle, sim: SimHandle) -> tuple[openai.OpenAI, openai.OpenAI]:
    through = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)
    direct = openai.OpenAI(base_url=sim.base_url, api_key="direct-key", max_retries=0)
    return through, direct


def _both(gateway: GatewayHandle, sim: SimHandle, call: Any) -> tuple[Any, Any]:
    through, direct = _clients(gateway, sim)
    return call(through), call(direct)


def _dump(value: Any) -> Any:
    if isinstance(value, openai.Stream):
        return [event.model_dump(mode="json") for event in value]
    return value.model_dump(mode="json")


CASES = {
    "chat": lambda c: c.chat.completions.create(
        model="gpt-5.2",
        messages=[
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": "How do I reset my password?"},
        ],
        user="user-a",
        temperature=0.2,
    ),
    "chat_stream": lambda c: c.chat.completions.create(
        model="gpt-5.2",
        messages=[{"role": "user", "content": "Tell me about shipping times to Lyon."}],
        user="user-a",
        stream=True,
        stream_options={"include_usage": True},
    ),
    "tool_calls": lambda c: c.chat.completions.create(
        model="gpt-5.2",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="auto",
        user="user-a",
    ),
    "multimodal_json_extra": lambda c: c.chat.completions.create(
        model="gpt-5.2",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe this picture as JSON."},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            }
        ],
        response_format={"type": "json_object"},
        user="user-a",
        extra_body={"metadata_unknown_to_the_gateway": {"keep": [1, 2, 3]}},
    ),
    "responses": lambda c: c.responses.create(
        model="gpt-5.2",
        instructions="Be concise.",
        input="Summarise our refund policy.",
        user="user-a",
    ),
    "responses_tools_stream": lambda c: c.responses.create(
        model="gpt-5.2",
        input=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[RESPONSES_TOOL],
        user="user-a",
        stream=True,
    ),
    "embeddings": lambda c: c.embeddings.create(
        model="text-embedding-3-small", input=["first text", "second text"]
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_answers_through_the_gateway_equal_the_upstreams(
    gateway: GatewayHandle, sim: SimHandle, case: str
) -> None:
    """Same answer (ids and timestamps aside) through the gateway as straight from upstream."""
    through, direct = _both(gateway, sim, CASES[case])
    assert same(_dump(through), _dump(direct))


def test_errors_come_back_as_the_upstream_sent_them(gateway: GatewayHandle, sim: SimHandle) -> None:
    """An upstream 400 reaches the client with the same status and message."""

    def bad(client: openai.OpenAI) -> openai.APIStatusError:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(
                model="gpt-5.2", messages=[{"role": "wizard", "content": "hi"}]
            )
        return caught.value

    through, direct = _both(gateway, sim, bad)
    assert through.status_code == direct.status_code == 400
    assert through.body == direct.body


def test_users_in_the_canary_get_the_candidates_answer(
    gateway: GatewayHandle, sim: SimHandle, database_url: str
) -> None:
    """At 100 % the gateway serves the candidate: the same answer as asking it directly."""
    set_flag(database_url, 100)
    through, direct = _clients(gateway, sim)
    messages = [{"role": "user", "content": "Which plan suits a small team?"}]
    answer = wait_until(
        lambda: (
            (
                r := through.chat.completions.create(model="gpt-5.2", messages=messages, user="u-7")
            ).model
            == "gpt-5.5"
            and r
        ),
        timeout_s=15,
        what="the flag change to reach the gateway",
    )
    expected = direct.chat.completions.create(model="gpt-5.5", messages=messages, user="u-7")
    assert same(answer.model_dump(mode="json"), expected.model_dump(mode="json"))


def test_calls_land_in_the_store_with_arm_route_and_timing(
    gateway: GatewayHandle,
    sim: SimHandle,
    redis_url: str,
    database_url: str,
    worker_env: dict[str, str],
) -> None:
    """Every tapped call reaches Postgres through the real worker, labelled as served."""
    through, _ = _clients(gateway, sim)
    for name in ("chat", "chat_stream", "tool_calls", "responses", "responses_tools_stream"):
        _dump(CASES[name](through))
    engine = make_engine(database_url, pool_size=1)
    with run_worker(worker_env):
        captured = wait_until(
            lambda: (
                (
                    found := rows(
                        engine,
                        "select arm, route, tenant, rollout, status, ttft_ms, model, "
                        "completion_tokens, event from captures order by started_at",
                    )
                )
                and len(found) >= 5
                and found
            ),
            timeout_s=60,
            what="five captures in Postgres",
        )
    assert len(captured) == 5
    assert {(r.arm, r.route, r.tenant, r.rollout, r.status, r.model) for r in captured} == {
        ("baseline", "default", "test-service", ROLLOUT, "ok", "gpt-5.2")
    }
    streamed = [r for r in captured if r.ttft_ms is not None]
    assert len(streamed) == 2  # chat_stream and responses_tools_stream
    tool_events = [r for r in captured if r.event["response"]["tool_calls"]]
    assert {e.event["response"]["tool_calls"][0]["name"] for e in tool_events} == {"get_weather"}
    assert all(r.completion_tokens for r in captured)
