"""The replay worker's aiohttp poster fails exactly like the SDK path, against real HTTP.

Each case calls the simulator twice, once through ``call_model`` with the SDK's
low-level post and once with ``ChatPoster``: the error class and message must be the
same, so a replay is retried, rejected or dead-lettered the same way on either path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from pydantic import SecretStr

from shadowcanary.errors import (
    ShadowCanaryError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from shadowcanary.judge.types import CallOutput
from shadowcanary.launcher.sim import SimHandle, run_simulator
from shadowcanary.replay.chat_post import ChatPoster
from shadowcanary.replay.openai_call import call_model
from shadowcanary.settings import ModelEndpoint
from shadowcanary.testing.factories import make_event
from shadowcanary.testing.servers import free_port

API_KEY = "sk-chat-post-test-0123456789abcdef"
PROFILES: dict[str, dict[str, Any]] = {
    "fast": {"median_ms": 1, "p99_ms": 3, "sampling_noise": 0.0},
    "limited": {"median_ms": 1, "p99_ms": 3, "rate_limit_rate": 1.0, "retry_after_s": 2.5},
    "broken": {"median_ms": 1, "p99_ms": 3, "error_rate": 1.0},
    "slow": {"median_ms": 3_000, "p99_ms": 4_000},
}


@pytest.fixture(scope="module")
def fault_sim() -> Iterator[SimHandle]:
    with run_simulator(PROFILES) as handle:
        yield handle


def _endpoints(base_url: str) -> dict[str, ModelEndpoint]:
    models = {
        name: ModelEndpoint(base_url=base_url, api_key=SecretStr(API_KEY), timeout_s=0.5)
        for name in PROFILES
    }
    # Not a model the simulator knows: it answers 404.
    models["unknown-model"] = ModelEndpoint(base_url=base_url, api_key=SecretStr(API_KEY))
    return models


async def _both_paths(base_url: str, model: str) -> list[CallOutput | ShadowCanaryError]:
    """The outcome of one call through the SDK path and one through the poster."""
    request = make_event().request
    client = openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=0, timeout=0.5)
    poster = ChatPoster(_endpoints(base_url), max_connections=8)
    outcomes: list[CallOutput | ShadowCanaryError] = []
    try:
        for use_poster in (False, True):
            try:
                outcomes.append(
                    await call_model(
                        client,
                        model=model,
                        upstream_model=model,
                        request=request,
                        stream=False,
                        cost_per_token=(1e-6, 2e-6),
                        poster=poster if use_poster else None,
                    )
                )
            except ShadowCanaryError as exc:
                outcomes.append(exc)
    finally:
        await client.close()
        await poster.close()
    return outcomes


def test_an_answer_is_the_same_on_both_paths(fault_sim: SimHandle) -> None:
    sdk, poster = asyncio.run(_both_paths(fault_sim.base_url, "fast"))
    assert isinstance(sdk, CallOutput) and isinstance(poster, CallOutput)
    assert poster.text == sdk.text and poster.text
    assert poster.finish_reason == sdk.finish_reason == "stop"
    assert poster.completion_tokens == sdk.completion_tokens
    assert poster.cost_usd == pytest.approx(sdk.cost_usd)


@pytest.mark.parametrize(
    ("model", "error"),
    [
        ("limited", UpstreamRateLimited),
        ("broken", UpstreamUnavailable),
        ("slow", UpstreamTimeout),
        ("unknown-model", UpstreamRejected),
    ],
)
def test_a_failure_is_the_same_error_on_both_paths(
    fault_sim: SimHandle, model: str, error: type[ShadowCanaryError]
) -> None:
    sdk, poster = asyncio.run(_both_paths(fault_sim.base_url, model))
    assert isinstance(sdk, error), sdk
    assert type(poster) is type(sdk)
    assert poster.message == sdk.message
    assert API_KEY not in poster.message
    if isinstance(poster, UpstreamRateLimited):
        assert poster.retry_after_s == pytest.approx(2.5)
    if isinstance(poster, UpstreamRejected):
        assert "HTTP 404" in poster.message


def test_a_closed_port_is_a_transient_connection_failure() -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    sdk, poster = asyncio.run(_both_paths(base_url, "fast"))
    assert isinstance(sdk, UpstreamUnavailable)
    assert isinstance(poster, UpstreamUnavailable)
    assert poster.message.startswith("fast: connection failed: ")
