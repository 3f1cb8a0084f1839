"""The simulator's Responses API and Azure OpenAI dialects, through the official openai SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from shadowcanary.launcher.sim import SimHandle, run_simulator
from shadowcanary.sim.prompt import REASONING_TOKENS

FAST: dict[str, Any] = {"median_ms": 3, "p99_ms": 6}
PROFILES: dict[str, dict[str, Any]] = {
    "base": FAST,
    "thinker": {**FAST, "diverge_from": "base", "divergence": 0.2, "reasoning_scale": 2.0},
    "emb": {"median_ms": 1, "p99_ms": 2, "embedding_dimensions": 16},
}
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
TOOL: Any = {"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": True}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with run_simulator(PROFILES, seed=5) as handle:
        yield handle


@pytest.fixture
def client(sim: SimHandle) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sim.base_url, api_key="any-key", max_retries=0) as c:
        yield c


def test_reasoning_effort_spends_reasoning_tokens_reported_as_openai_does(
    client: openai.OpenAI,
) -> None:
    """A reasoning effort adds a reasoning item and reasoning tokens inside output_tokens."""
    plain: Any = client.responses.create(model="thinker", input="Plan the database migration.")
    thought: Any = client.responses.create(
        model="thinker", input="Plan the database migration.", reasoning={"effort": "medium"}
    )
    assert plain.output_text == thought.output_text
    assert plain.usage.output_tokens_details.reasoning_tokens == 0
    reasoning = thought.usage.output_tokens_details.reasoning_tokens
    assert reasoning == 2 * REASONING_TOKENS["medium"]
    assert thought.usage.output_tokens == plain.usage.output_tokens + reasoning
    assert [item.type for item in thought.output] == ["reasoning", "message"]
    assert thought.reasoning.effort == "medium"
    chat: Any = client.chat.completions.create(
        model="thinker",
        messages=[{"role": "user", "content": "Plan the database migration."}],
        reasoning_effort="high",
    )
    assert chat.usage.completion_tokens_details.reasoning_tokens == 2 * REASONING_TOKENS["high"]


def test_an_unknown_reasoning_effort_is_a_400_naming_the_parameter(client: openai.OpenAI) -> None:
    """reasoning.effort outside OpenAI's values is refused, naming the allowed ones."""
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="base", input="hi", reasoning={"effort": "extreme"})
    assert "reasoning.effort" in caught.value.message and "'medium'" in caught.value.message


def test_streamed_reasoning_and_function_call_parse_in_the_sdk(client: openai.OpenAI) -> None:
    """A streamed call with reasoning and a forced function tool: the SDK's stream helper
    assembles the same final response as the non-streamed call."""
    kwargs: Any = {
        "model": "thinker",
        "input": [{"role": "user", "content": "Weather in Oslo?"}],
        "tools": [TOOL],
        "tool_choice": "required",
        "reasoning": {"effort": "low"},
    }
    whole: Any = client.responses.create(**kwargs)
    with client.responses.stream(**kwargs) as stream:
        kinds = [event.type for event in stream]
        final: Any = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in kinds
    assert [i.type for i in final.output] == [i.type for i in whole.output]
    call = final.output[1]
    assert call.type == "function_call" and call.arguments == whole.output[1].arguments
    jsonschema.validate(json.loads(call.arguments), WEATHER)
    assert final.usage.output_tokens_details.reasoning_tokens == 2 * REASONING_TOKENS["low"]


def test_previous_response_id_continues_the_stored_conversation(client: openai.OpenAI) -> None:
    """A continued call answers as if the whole conversation were sent, with the stored
    turns counted as cached input; an unknown or unstored id is a 400."""
    first: Any = client.responses.create(
        model="base", instructions="Be brief.", input="Name a fjord in Norway."
    )
    follow: Any = client.responses.create(
        model="base",
        instructions="Be brief.",
        input="And one in Iceland?",
        previous_response_id=first.id,
    )
    assert follow.previous_response_id == first.id
    assert follow.usage.input_tokens_details.cached_tokens > 0
    replayed: Any = client.responses.create(
        model="base",
        instructions="Be brief.",
        input=[
            {"role": "user", "content": "Name a fjord in Norway."},
            {"role": "assistant", "content": first.output_text},
            {"role": "user", "content": "And one in Iceland?"},
        ],
    )
    assert replayed.output_text == follow.output_text
    assert replayed.usage.input_tokens == follow.usage.input_tokens
    assert replayed.usage.input_tokens_details.cached_tokens == 0
    unstored: Any = client.responses.create(model="base", input="Not kept.", store=False)
    for missing in ("resp_never_made", unstored.id):
        with pytest.raises(openai.BadRequestError) as caught:
            client.responses.create(model="base", input="More?", previous_response_id=missing)
        assert caught.value.code == "previous_response_not_found"


def test_azure_classic_deployment_paths_need_api_key_and_api_version(sim: SimHandle) -> None:
    """The AzureOpenAI SDK client (api-key header, deployment in the path, api-version)
    gets chat, embeddings and Responses answers; a Bearer-only or version-less call does not."""
    root = sim.base_url.removesuffix("/v1")
    azure = openai.AzureOpenAI(
        azure_endpoint=root, api_key="azure-key", api_version="2025-04-01-preview", max_retries=0
    )
    chat: Any = azure.chat.completions.create(
        model="base", messages=[{"role": "user", "content": "Hello from Azure"}]
    )
    direct: Any = openai.OpenAI(base_url=sim.base_url, api_key="k").chat.completions.create(
        model="base", messages=[{"role": "user", "content": "Hello from Azure"}]
    )
    assert chat.choices[0].message.content == direct.choices[0].message.content
    assert azure.embeddings.create(model="emb", input="x").data[0].embedding
    assert azure.responses.create(model="base", input="Hello from Azure").output_text
    url = f"{root}/openai/deployments/base/chat/completions"
    body = {"messages": [{"role": "user", "content": "hi"}]}
    bearer = httpx.post(
        url, params={"api-version": "2024-10-21"}, json=body, headers={"authorization": "Bearer k"}
    )
    assert bearer.status_code == 401 and "api-key" in bearer.json()["error"]["message"]
    versionless = httpx.post(url, json=body, headers={"api-key": "k"})
    assert (
        versionless.status_code == 404 and "api-version" in versionless.json()["error"]["message"]
    )


def test_azure_v1_api_is_the_openai_surface_under_openai_v1(sim: SimHandle) -> None:
    """The plain OpenAI client pointed at /openai/v1 gets chat and Responses answers."""
    root = sim.base_url.removesuffix("/v1")
    v1 = openai.OpenAI(base_url=f"{root}/openai/v1", api_key="azure-key", max_retries=0)
    answer: Any = v1.responses.create(model="base", input="Hello from Azure v1")
    assert answer.status == "completed" and answer.output_text
    chat: Any = v1.chat.completions.create(
        model="base", messages=[{"role": "user", "content": "Hello from Azure v1"}]
    )
    assert chat.choices[0].message.content
