"""Responses API calls through the gateway: captured as sent, replayed by a real worker
against the candidate's Responses API (a previous_response_id continuation included),
compared and costed."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from shadowcanary.launcher.gateway import GatewayHandle, run_gateway
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.store.db import make_engine
from shadowcanary.testing.poll import wait_until
from tests.gateway.conftest import FLAG, ROLLOUT, gateway_models, set_flag, tapped_events
from tests.integration.pipeline import rows

pytestmark = pytest.mark.integration

TOOL: Any = {
    "type": "function",
    "name": "lookup_order",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string"}},
        "required": ["order_id"],
        "additionalProperties": False,
    },
}


def _calls(gateway: GatewayHandle) -> dict[str, str]:
    client = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)
    first: Any = client.responses.create(
        model="gpt-5.2",
        instructions="Reply briefly.",
        input="Where is my parcel?",
        reasoning={"effort": "minimal"},
        user="g-1",
    )
    client.responses.create(
        model="gpt-5.2",
        instructions="Reply briefly.",
        input="It was ordered on Monday.",
        previous_response_id=first.id,
        user="g-1",
    )
    events = list(
        client.responses.create(
            model="gpt-5.2",
            input=[{"role": "user", "content": "Status of order A-17?"}],
            tools=[TOOL],
            tool_choice="required",
            stream=True,
            user="g-2",
        )
    )
    assert events[-1].type == "response.completed"
    return {
        "first": "Where is my parcel?",
        "continued": "It was ordered on Monday.",
        "tool": "Status of order A-17?",
    }


def test_responses_through_the_gateway_are_replayed_against_the_candidates_responses_api(
    gateway: GatewayHandle,
    sim: SimHandle,
    redis_url: str,
    database_url: str,
    worker_env: dict[str, str],
) -> None:
    """The continuation is captured with its earlier turns and replayed in full: the
    baseline asked again answers exactly as it did live, for every call."""
    prompts = _calls(gateway)
    captured = wait_until(
        lambda: len(found := tapped_events(redis_url)) == 3 and found,
        timeout_s=15,
        what="three Responses captures in the ingest queue",
    )
    by_prompt = {e.request.messages[-1].text(): e for e in captured}
    continued = by_prompt[prompts["continued"]]
    assert continued.request.api == "responses"
    assert continued.request.parameters["previous_response_id"]
    assert continued.request.context_messages == 2
    assert continued.cached_tokens and continued.cached_tokens > 0
    assert by_prompt[prompts["first"]].request.parameters["reasoning"] == {"effort": "minimal"}
    assert by_prompt[prompts["first"]].reasoning_tokens == 16
    engine = make_engine(database_url, pool_size=1)
    env = {**worker_env, "SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE": "1.0"}
    with run_worker(env):
        found = wait_until(
            lambda: (
                (
                    got := rows(
                        engine,
                        "select c.event_id, c.kind, c.exact_match, r.status, r.cost_usd "
                        "from comparisons c join replays r using (event_id, kind)",
                    )
                )
                and len(got) == 6
                and got
            ),
            timeout_s=60,
            what="a candidate and a noise comparison of each call",
        )
    assert {r.status for r in found} == {"ok"}
    assert all(r.exact_match for r in found if r.kind == "noise")
    assert all(r.cost_usd is not None for r in found)
    tool_event = by_prompt[prompts["tool"]]
    (calls,) = rows(
        engine,
        "select output from replays where event_id = :e and kind = 'candidate'",
        e=tool_event.event_id,
    )[0]
    assert [c["name"] for c in calls["tool_calls"]] == ["lookup_order"]


@pytest.mark.parametrize("dialect", ["classic", "v1"])
def test_an_azure_openai_candidate_is_called_in_its_dialect(
    gateway_env: dict[str, str], sim: SimHandle, database_url: str, dialect: str
) -> None:
    """With both arms on Azure OpenAI (classic deployments or the v1 API), users in the
    canary get the candidate's chat and Responses answers through the gateway; on the v1
    API, endpoints passed through (moderations) reach the baseline's Azure resource."""
    root = sim.base_url.removesuffix("/v1")
    azure = (
        {"base_url": root, "provider": "azure", "api_version": "2024-10-21"}
        if dialect == "classic"
        else {"base_url": f"{root}/openai/v1", "provider": "azure"}
    )
    env = {
        **gateway_env,
        "SHADOWCANARY_MODELS": json.dumps(
            gateway_models(sim.base_url, **{"gpt-5.2": azure, "gpt-5.5": azure})
        ),
        "SHADOWCANARY_GATEWAY__ROUTES": json.dumps(
            {"default": {"rollout": ROLLOUT, "flag": FLAG.name, "fallback_to_baseline": False}}
        ),
    }
    set_flag(database_url, 100)
    direct = openai.OpenAI(base_url=sim.base_url, api_key="k", max_retries=0)
    messages: Any = [{"role": "user", "content": "Which plan suits a small team?"}]
    with run_gateway(env) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key=gw.api_key, max_retries=0)
        chat: Any = wait_until(
            lambda: (
                (
                    r := client.chat.completions.create(
                        model="gpt-5.2", messages=messages, user="z"
                    )
                ).model
                == "gpt-5.5"
                and r
            ),
            timeout_s=15,
            what="the flag at 100 % to reach the gateway",
        )
        answer: Any = client.responses.create(model="gpt-5.2", input="Hello Azure", user="z")
        if dialect == "v1":  # classic Azure has no moderations endpoint
            assert client.moderations.create(input="fine").results[0].flagged is False
    expected = direct.chat.completions.create(model="gpt-5.5", messages=messages)
    assert chat.choices[0].message.content == expected.choices[0].message.content
    assert answer.model == "gpt-5.5"
    assert (
        answer.output_text
        == direct.responses.create(model="gpt-5.5", input="Hello Azure").output_text
    )
