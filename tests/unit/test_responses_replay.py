"""What a replay sends for a captured Responses call, and the Azure endpoint settings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shadowcanary.errors import ConfigError, NotReplayable
from shadowcanary.events import ChatMessage, ToolCall
from shadowcanary.model_api import auth_headers, operation_urls
from shadowcanary.replay.responses_body import replay_body
from shadowcanary.settings import ModelEndpoint, load_settings
from shadowcanary.tap.responses_capture import Conversations, responses_request
from shadowcanary.tap.responses_capture import responses_response as parse


def test_the_body_is_sent_as_captured_with_the_candidate_and_store_false() -> None:
    """Every captured parameter goes out unchanged, except model, store and streaming."""
    body = {
        "instructions": "Be brief.",
        "input": [{"role": "user", "content": "Hi"}],
        "reasoning": {"effort": "high"},
        "text": {"format": {"type": "json_object"}},
        "store": True,
        "background": True,
        "metadata": {"ticket": "T-1"},
    }
    sent = replay_body(responses_request(body), upstream_model="cand-deployment")
    expected = {k: v for k, v in body.items() if k != "background"}
    assert sent == {**expected, "model": "cand-deployment", "store": False}


def test_a_continued_call_is_replayed_with_the_turns_it_continued() -> None:
    """previous_response_id gives way to the captured turns, as input items, then the
    call's own input; instructions stay where they were sent."""
    context = [
        ChatMessage(role="user", content="Weather?"),
        ChatMessage(role="assistant", tool_calls=[ToolCall(id="c1", name="w", arguments="{}")]),
        ChatMessage(role="tool", content="20C", tool_call_id="c1"),
        ChatMessage(role="assistant", content="It is 20C."),
    ]
    request = responses_request(
        {"instructions": "Be brief.", "input": "Tomorrow?", "previous_response_id": "resp_1"},
        context,
    )
    assert request.context_messages == 4 and request.messages[4].role == "system"
    sent = replay_body(request, upstream_model="m")
    assert "previous_response_id" not in sent and sent["instructions"] == "Be brief."
    assert sent["input"] == [
        {"role": "user", "content": "Weather?"},
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "20C"},
        {"role": "assistant", "content": "It is 20C."},
        {"role": "user", "content": "Tomorrow?"},
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"input": "More?", "previous_response_id": "resp_x"}, "previous_response_id"),
        ({"input": "Find it", "tools": [{"type": "web_search"}]}, "web_search"),
        (
            {"input": "x", "tools": [{"type": "mcp", "server_url": "https://m"}]},
            "never executes tools",
        ),
        ({"input": "x", "conversation": "conv_1"}, "conversation"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "item_reference"),
    ],
)
def test_calls_that_cannot_be_sent_again_say_why(body: dict[str, Any], reason: str) -> None:
    """No turns behind previous_response_id, built-in tools, stored conversations or items."""
    with pytest.raises(NotReplayable) as caught:
        replay_body(responses_request(body), upstream_model="m")
    assert reason in caught.value.message and caught.value.hint


def test_conversations_remember_turns_without_instructions_and_skip_unstored() -> None:
    """The turns kept for a continuation: input and answer, not instructions; store=false
    responses are not kept (nothing can continue them)."""
    memory = Conversations(max_conversations=2)
    request = responses_request({"instructions": "Be brief.", "input": "Hi"})
    answer, _ = parse(
        {"status": "completed", "output": [{"type": "message", "content": [
            {"type": "output_text", "text": "Hello"}]}]}
    )  # fmt: skip
    memory.remember("resp_1", request, answer)
    assert [(m.role, m.content) for m in memory.context("resp_1") or ()] == [
        ("user", "Hi"),
        ("assistant", "Hello"),
    ]
    memory.remember("resp_2", responses_request({"input": "x", "store": False}), answer)
    assert memory.context("resp_2") is None
    memory.remember("resp_3", request, answer)
    memory.remember("resp_4", request, answer)
    assert memory.context("resp_1") is None  # bounded: the oldest went first
    by_size = Conversations(max_total_chars=20)
    for rid in ("a", "b", "c"):
        by_size.remember(rid, request, answer)  # 7 characters each ("Hi" + "Hello")
    assert [by_size.context(r) is not None for r in ("a", "b", "c")] == [False, True, True]


def test_azure_classic_and_v1_urls_and_headers() -> None:
    """Classic: deployment path with api-version and the api-key header; v1: OpenAI paths."""
    classic = ModelEndpoint(
        base_url="https://res.openai.azure.com",
        provider="azure",
        api_version="2024-10-21",
        upstream_model="my-deploy",
    )
    urls = operation_urls("gpt-5.5", classic)
    assert str(urls["/chat/completions"]) == (
        "https://res.openai.azure.com/openai/deployments/my-deploy/chat/completions"
        "?api-version=2024-10-21"
    )
    assert str(urls["/responses"]) == (
        "https://res.openai.azure.com/openai/responses?api-version=2024-10-21"
    )
    assert auth_headers(classic) == {"api-key": "sim-key"}
    v1 = ModelEndpoint(base_url="https://res.openai.azure.com/openai/v1/", provider="azure")
    assert str(operation_urls("m", v1)["/responses"]) == (
        "https://res.openai.azure.com/openai/v1/responses"
    )


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ({"api_version": "2024-10-21"}, '"provider": "azure"'),
        ({"provider": "azure", "base_url": "https://res.openai.azure.com"}, "/openai/v1"),
        (
            {
                "provider": "azure",
                "api_version": "2024-10-21",
                "base_url": "https://res.openai.azure.com/openai/v1",
            },
            "resource endpoint",
        ),
    ],
)
def test_incomplete_azure_settings_are_refused_with_the_fix(
    endpoint: dict[str, Any], message: str
) -> None:
    """An Azure endpoint configuration that cannot work names what to change."""
    models = {"gpt-5.2": {}, "gpt-5.5": endpoint}
    with pytest.raises(ConfigError) as caught:
        load_settings({"SHADOWCANARY_MODELS": json.dumps(models)})
    assert message in caught.value.message


def test_cached_input_and_reasoning_are_priced() -> None:
    """Cached input at its price, the rest at the input price, reasoning as output."""
    endpoint = ModelEndpoint(
        input_usd_per_mtok=5, cached_input_usd_per_mtok=0.5, output_usd_per_mtok=30
    )
    assert endpoint.cost_usd(1_000_000, 0, cached_tokens=400_000) == pytest.approx(3.2)
    assert endpoint.cost_usd(0, 1_000_000) == pytest.approx(30)
    unpriced = ModelEndpoint(input_usd_per_mtok=5)
    assert unpriced.cost_usd(1_000_000, 0, cached_tokens=400_000) == pytest.approx(5)
