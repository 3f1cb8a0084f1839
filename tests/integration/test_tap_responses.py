"""The tap on ``responses.create`` (sync, async, streamed) and on chat streams without usage,
against the simulator over real HTTP and a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import redis

from shadowcanary import constants
from shadowcanary.events import CallStatus, CapturedCall, parse_event
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.settings import TapSettings
from shadowcanary.tap import openai_wrapper
from shadowcanary.tap.emitter import DropReason, Tap
from shadowcanary.tap.openai_wrapper import tap_openai
from shadowcanary.tap.publisher import decode_ingest_message

pytestmark = pytest.mark.integration

ASK = [{"role": "user", "content": "Summarise the quarterly incident review."}]


@pytest.fixture
def tap(redis_url: str) -> Iterator[Tap]:
    with Tap(TapSettings(flush_interval_s=0.01), redis_url) as tap:
        yield tap


def landed(tap: Tap, redis_url: str) -> list[CapturedCall]:
    """Close the tap (flushing it) and return the events that reached Redis."""
    tap.close()
    client = redis.Redis.from_url(redis_url)
    raw = client.lrange(constants.QUEUE_INGEST, 0, -1)
    client.close()
    return [parse_event(e) for r in raw for e in decode_ingest_message(r)]


def _client(sim: SimHandle, tap: Tap) -> openai.OpenAI:
    return tap_openai(openai.OpenAI(base_url=sim.base_url, api_key="k", max_retries=0), tap)


def test_chat_streams_without_usage_get_an_estimate_marked_as_one(
    sim: SimHandle, tap: Tap, redis_url: str
) -> None:
    """Without include_usage the tokens are estimated (and say so); with it, they are the
    provider's."""
    client = _client(sim, tap)
    for _chunk in client.chat.completions.create(model="gpt-5.2", messages=ASK, stream=True):
        pass
    counted: Any = None
    for chunk in client.chat.completions.create(
        model="gpt-5.2", messages=ASK, stream=True, stream_options={"include_usage": True}
    ):
        counted = chunk.usage or counted
    events = landed(tap, redis_url)
    assert sorted(e.tokens_estimated for e in events) == [False, True]
    exact, estimated = sorted(events, key=lambda e: e.tokens_estimated)
    assert (exact.prompt_tokens, exact.completion_tokens) == (
        counted.prompt_tokens,
        counted.completion_tokens,
    )
    # The same 4-characters-a-token rule as the provider's here: close, never zero.
    assert estimated.completion_tokens == exact.completion_tokens
    assert estimated.prompt_tokens and abs(estimated.prompt_tokens - exact.prompt_tokens) <= 3


def test_responses_sync_async_and_streamed_are_captured_as_the_caller_saw_them(
    sim: SimHandle, tap: Tap, redis_url: str
) -> None:
    """Each call returns the SDK's own object; each event holds the request as sent, the
    answer, reasoning and cached tokens; a rejected call is re-raised and captured."""
    client = _client(sim, tap)
    plain: Any = client.responses.create(
        model="gpt-5.2", input="Hello there.", reasoning={"effort": "low"}, user="u"
    )
    assert isinstance(plain, openai.types.responses.Response)
    stream = client.responses.create(model="gpt-5.2", input="Stream this.", stream=True)
    assert isinstance(stream, openai.Stream)
    streamed_text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")

    async def async_call() -> Any:
        aclient = tap_openai(
            openai.AsyncOpenAI(base_url=sim.base_url, api_key="k", max_retries=0), tap
        )
        return await aclient.responses.create(
            model="gpt-5.2", input="And more.", previous_response_id=plain.id
        )

    continued = asyncio.run(async_call())
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt-5.2", input="x", reasoning={"effort": "extreme"})
    events = {e.request.messages[-1].text(): e for e in landed(tap, redis_url)}
    first = events["Hello there."]
    assert first.response is not None and first.response.text == plain.output_text
    assert first.reasoning_tokens == plain.usage.output_tokens_details.reasoning_tokens
    assert first.request.parameters == {"input": "Hello there.", "reasoning": {"effort": "low"}}
    assert first.stickiness_key is not None  # from user=, which is not kept as a parameter
    assert events["Stream this."].response.text == streamed_text  # type: ignore[union-attr]
    assert events["Stream this."].ttft_ms is not None
    # Another client (the async one) did not see the first call: no context, said so.
    later = events["And more."]
    assert later.request.context_messages == 0
    assert later.cached_tokens == continued.usage.input_tokens_details.cached_tokens > 0
    rejected = events["x"]
    assert (rejected.status, rejected.http_status) == (CallStatus.ERROR, 400)


def test_a_capture_bug_in_responses_never_reaches_the_caller(
    sim: SimHandle, tap: Tap, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If mapping the request breaks, the call still returns and the loss is counted."""
    client = _client(sim, tap)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug in the capture")

    monkeypatch.setattr(openai_wrapper, "responses_request", broken)
    answer: Any = client.responses.create(model="gpt-5.2", input="Still answered?")
    assert answer.output_text
    assert landed(tap, redis_url) == []
    assert tap.stats().dropped[DropReason.TAP_ERROR] == 1
