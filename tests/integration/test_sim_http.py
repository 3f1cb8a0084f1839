"""The simulator over real HTTP, driven by the official openai SDK (sync and async)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from shadowcanary.launcher.sim import SimHandle, SimulatorFailed, run_simulator

FAST: dict[str, Any] = {"median_ms": 3, "p99_ms": 6}
PROFILES: dict[str, dict[str, Any]] = {
    "base": FAST,
    "cand": {**FAST, "diverge_from": "base", "divergence": 0.2, "verbosity": 1.2},
    "emb": {"median_ms": 1, "p99_ms": 2, "embedding_dimensions": 64},
}
WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
ASK: Any = [{"role": "user", "content": "Summarise the incident review for the payments team"}]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    """One simulator subprocess for the module; tests that change profiles use own models."""
    with run_simulator(PROFILES, admin_token="adm-token", seed=3) as handle:
        yield handle


@pytest.fixture
def client(sim: SimHandle) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sim.base_url, api_key="any-key", max_retries=0) as c:
        yield c


def own_model(sim: SimHandle, name: str, **changes: Any) -> str:
    sim.set_profile(name, **{**FAST, **changes})
    return name


def test_chat_completion_has_openai_shape_and_usage(client: openai.OpenAI) -> None:
    """A non-streamed chat completion parses in the SDK with content, finish and usage."""
    r: Any = client.chat.completions.create(model="base", messages=ASK)
    choice = r.choices[0]
    assert r.model == "base" and r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    text = choice.message.content
    assert text and r.usage.completion_tokens == math.ceil(len(text) / 4)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    again = client.chat.completions.create(model="base", messages=ASK)
    assert again.choices[0].message.content == text


def test_stream_reassembles_to_the_non_streamed_text_with_usage_last(client: openai.OpenAI) -> None:
    """Streamed deltas join to the same text; include_usage adds a final usage chunk."""
    full = client.chat.completions.create(model="cand", messages=ASK)
    stream = client.chat.completions.create(
        model="cand", messages=ASK, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finishing] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage == full.usage
    assert len(chunks) > 5


def test_stream_without_include_usage_has_no_usage(client: openai.OpenAI) -> None:
    """Without stream_options no chunk carries usage, as with OpenAI."""
    chunks = list(client.chat.completions.create(model="base", messages=ASK, stream=True))
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)


def test_async_client_streams_and_completes(sim: SimHandle) -> None:
    """The async SDK gets the same answer streamed and non-streamed, concurrently."""

    async def run() -> tuple[str | None, str]:
        async with openai.AsyncOpenAI(base_url=sim.base_url, api_key="k", max_retries=0) as c:
            full, stream = await asyncio.gather(
                c.chat.completions.create(model="cand", messages=ASK),
                c.chat.completions.create(model="cand", messages=ASK, stream=True),
            )
            parts = [ch.choices[0].delta.content or "" async for ch in stream]
            return full.choices[0].message.content, "".join(parts)

    full, streamed = asyncio.run(run())
    assert full == streamed and full


def test_tool_call_arguments_satisfy_the_schema_streamed_and_not(client: openai.OpenAI) -> None:
    """A required tool call names the offered tool with schema-valid arguments."""
    r: Any = client.chat.completions.create(
        model="cand", messages=ASK, tools=TOOLS, tool_choice="required"
    )
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER)
    stream: Any = client.chat.completions.create(
        model="cand", messages=ASK, tools=TOOLS, tool_choice="required", stream=True
    )
    name, args = None, ""
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or []:
            name = delta.function.name or name
            args += delta.function.arguments or ""
    assert (name, args) == ("get_weather", call.function.arguments)


def test_json_modes_return_parseable_and_schema_valid_json(client: openai.OpenAI) -> None:
    """json_object parses; json_schema validates against the requested schema."""
    obj: Any = client.chat.completions.create(
        model="base", messages=ASK, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(obj.choices[0].message.content), dict)
    fmt: Any = {
        "type": "json_schema",
        "json_schema": {"name": "w", "schema": WEATHER, "strict": True},
    }
    doc: Any = client.chat.completions.create(model="base", messages=ASK, response_format=fmt)
    jsonschema.validate(json.loads(doc.choices[0].message.content), WEATHER)


def test_embeddings_base64_default_and_floats(client: openai.OpenAI) -> None:
    """The SDK's default base64 and explicit floats decode to the same unit vectors."""
    texts = ["refund the duplicate card charge", "refund a duplicate charge on the card"]
    b64 = client.embeddings.create(model="emb", input=texts)
    floats = client.embeddings.create(model="emb", input=texts, encoding_format="float")
    a, b = (d.embedding for d in floats.data)
    assert len(a) == 64 and abs(sum(x * x for x in a) - 1) < 1e-6
    assert all(abs(x - y) < 1e-6 for x, y in zip(b64.data[0].embedding, a, strict=True))
    far = client.embeddings.create(model="emb", input="volcanic ash grounded flights").data
    assert sum(x * y for x, y in zip(a, b, strict=True)) > 0.5
    assert sum(x * y for x, y in zip(a, far[0].embedding, strict=True)) < 0.3
    assert client.embeddings.create(model="emb", input="x", dimensions=16).data[0].embedding


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    """/v1/models lists every profile; retrieving an unknown one is a 404."""
    assert {m.id for m in client.models.list()} == {"base", "cand", "emb"}
    assert client.models.retrieve("cand").id == "cand"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_responses_api_matches_chat_streamed_and_not(client: openai.OpenAI) -> None:
    """Responses (plain, streamed, stream helper) gives the chat answer for the same prompt."""
    chat: Any = (
        client.chat.completions.create(model="cand", messages=ASK).choices[0].message.content
    )
    resp: Any = client.responses.create(model="cand", input=ASK[0]["content"])
    assert resp.status == "completed" and resp.output_text == chat
    assert resp.usage.output_tokens == math.ceil(len(chat) / 4)
    events = list(client.responses.create(model="cand", input=ASK[0]["content"], stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == chat
    with client.responses.stream(model="cand", input=ASK[0]["content"]) as stream:
        for _ in stream:
            pass
        assert stream.get_final_response().output_text == chat


def test_responses_api_function_call(client: openai.OpenAI) -> None:
    """A forced function tool in the Responses API returns a function_call item."""
    tool: Any = {"type": "function", "name": "get_weather", "parameters": WEATHER}
    resp = client.responses.create(
        model="base", input="Weather in Oslo?", tools=[tool], tool_choice="required"
    )
    item = resp.output[0]
    assert item.type == "function_call" and item.name == "get_weather"
    jsonschema.validate(json.loads(item.arguments), WEATHER)


def test_rate_limit_is_a_ratelimiterror_with_retry_after_the_sdk_honours(
    sim: SimHandle, client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """429 carries Retry-After and retry-after-ms; the SDK waits the fractional delay."""
    model = own_model(sim, "limited", rate_limit_rate=1.0, retry_after_s=0.2)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=model, messages=ASK)
    headers = caught.value.response.headers
    assert headers["retry-after"] == "1" and headers["retry-after-ms"] == "200"
    assert caught.value.code == "rate_limit_exceeded"
    retrying = client.with_options(max_retries=1)
    started = time.monotonic()
    with (
        caplog.at_level(logging.INFO, logger="openai._base_client"),
        pytest.raises(openai.RateLimitError),
    ):
        retrying.chat.completions.create(model=model, messages=ASK)
    assert time.monotonic() - started >= 0.2
    # The delay the SDK chose, from its own log line: 0.2 s (retry-after-ms), not 1 s.
    # (A wall-clock upper bound would fail whenever the machine is busy.)
    delays = [r.args[0] for r in caplog.records if r.msg.startswith("Retrying request in")]
    assert delays == [pytest.approx(0.2)]
    assert sim.count(model, 429) == 3


def test_error_rate_one_gives_internal_server_errors(sim: SimHandle, client: openai.OpenAI) -> None:
    """error_rate 1.0 answers every call with an OpenAI-style 500."""
    model = own_model(sim, "broken", error_rate=1.0)
    for _ in range(3):
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model=model, messages=ASK)
        assert caught.value.status_code == 500
    assert sim.count(model, 500) == 3 and sim.count(model, 200) == 0


def test_admin_changes_take_effect_on_the_next_request(
    sim: SimHandle, client: openai.OpenAI
) -> None:
    """Raising latency, refusals and divergence mid-run changes the very next answers."""
    model = own_model(sim, "live", diverge_from="base")
    base_text = client.chat.completions.create(model="base", messages=ASK).choices[0].message
    first = client.chat.completions.create(model=model, messages=ASK).choices[0].message
    assert first.content == base_text.content
    sim.set_profile(model, divergence=0.5)
    drifted = client.chat.completions.create(model=model, messages=ASK).choices[0].message
    assert drifted.content != base_text.content
    sim.set_profile(model, refusal_rate=1.0, median_ms=150, p99_ms=150)
    started = time.monotonic()
    refused = client.chat.completions.create(model=model, messages=ASK).choices[0].message
    assert time.monotonic() - started >= 0.14
    assert refused.refusal and refused.content == refused.refusal
    assert sim.profiles()[model]["divergence"] == 0.5


def test_stream_pacing_follows_ttft_and_latency(sim: SimHandle, client: openai.OpenAI) -> None:
    """The first content arrives after TTFT and the stream ends after the whole latency."""
    model = own_model(sim, "paced", median_ms=200, p99_ms=200, ttft_share=0.5)
    started = time.monotonic()
    first_content_at = None
    for chunk in client.chat.completions.create(model=model, messages=ASK, stream=True):
        if first_content_at is None and chunk.choices[0].delta.content:
            first_content_at = time.monotonic() - started
    total = time.monotonic() - started
    assert first_content_at is not None and first_content_at >= 0.095
    assert total >= 0.195 and first_content_at < total


def test_client_closing_a_stream_early_leaves_the_server_healthy(
    sim: SimHandle, client: openai.OpenAI
) -> None:
    """Abandoning a slow stream after one chunk logs no error and later calls succeed."""
    model = own_model(sim, "abandoned", median_ms=300, p99_ms=300, ttft_share=0.1)
    for _ in range(3):
        stream = client.chat.completions.create(model=model, messages=ASK, stream=True)
        next(iter(stream))
        stream.close()
    assert client.chat.completions.create(model="base", messages=ASK).choices[0].message.content
    assert "Traceback" not in sim.log_path.read_text()


def test_admin_requires_the_token_and_validates_fields(sim: SimHandle) -> None:
    """No or wrong token is 401; an unknown field or bad value is 422 naming it."""
    url = f"{sim.root_url}/admin/profiles"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{sim.root_url}/admin/stats").status_code == 401
    auth = {"Authorization": f"Bearer {sim.admin_token}"}
    bad = httpx.put(f"{url}/base", json={"latncy": 5}, headers=auth)
    assert bad.status_code == 422 and "latncy: unknown field" in bad.json()["error"]["message"]
    loop = httpx.put(f"{url}/base", json={"diverge_from": "cand"}, headers=auth)
    assert loop.status_code == 422 and "loop" in loop.json()["error"]["message"]
    assert httpx.put(f"{url}/base", json={"error_rate": 2}, headers=auth).status_code == 422
    assert sim.profiles()["base"]["error_rate"] == 0.0


def test_unknown_model_is_404_listing_known_models(client: openai.OpenAI) -> None:
    """An unknown model answers 404 model_not_found with the known model names."""
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-9", messages=ASK)
    assert caught.value.code == "model_not_found"
    body: Any = caught.value.body
    assert {"base", "cand", "emb"} <= set(body["known_models"])


def test_oversized_body_is_413(client: openai.OpenAI) -> None:
    """A body over the 2 MB default limit is refused with 413, not a reset connection."""
    huge: Any = [{"role": "user", "content": "x" * (2 * 1024 * 1024 + 100)}]
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="base", messages=huge)
    assert caught.value.status_code == 413


@pytest.mark.parametrize(
    ("headers", "body", "status", "fragment"),
    [
        ({}, {"model": "base", "messages": ASK}, 401, "API key"),
        ({"Authorization": "Bearer k"}, b"{not json", 400, "could not parse"),
        ({"Authorization": "Bearer k"}, [1, 2], 400, "JSON object"),
        ({"Authorization": "Bearer k"}, b"[" * 5000 + b"]" * 5000, 400, "nested too deeply"),
        ({"Authorization": "Bearer k"}, {"model": "base"}, 400, "messages: Field required"),
        ({"Authorization": "Bearer k"}, {"model": "base", "messages": ASK, "n": 2}, 400, "n=1"),
    ],
)
def test_bad_requests_get_clear_openai_errors(
    sim: SimHandle, headers: dict[str, str], body: Any, status: int, fragment: str
) -> None:
    """Missing key, malformed JSON and invalid fields answer OpenAI-style errors."""
    url = f"{sim.base_url}/chat/completions"
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = httpx.post(url, content=raw, headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == status
    assert fragment in r.json()["error"]["message"]


def _post_raw(sim: SimHandle, path: str, raw: str) -> httpx.Response:
    headers = {"Authorization": "Bearer k", "Content-Type": "application/json"}
    return httpx.post(f"{sim.base_url}{path}", content=raw.encode(), headers=headers)


def _answer_text(path: str, response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    if path == "/responses":
        message = next(o for o in response.json()["output"] if o["type"] == "message")
        return "".join(str(part["text"]) for part in message["content"])
    if response.headers["content-type"].startswith("text/event-stream"):
        chunks = [
            json.loads(line.removeprefix("data: "))
            for line in response.text.splitlines()
            if line.startswith("data: {")
        ]
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    return str(response.json()["choices"][0]["message"]["content"])


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/chat/completions", '{"model": "base", "messages": [{"role": "user", "content": "%s"}]}'),
        (
            "/chat/completions",
            '{"model": "base", "stream": true, "messages": [{"role": "user", "content": "%s"}]}',
        ),
        ("/responses", '{"model": "base", "input": "%s"}'),
    ],
    ids=["chat", "chat-streamed", "responses"],
)
def test_a_lone_surrogate_escape_is_data_read_as_u_fffd(
    sim: SimHandle, path: str, template: str
) -> None:
    """A JSON "\\ud800" (not UTF-8 encodable) is never a 500: it reads as U+FFFD."""
    lone = _post_raw(sim, path, template % "tell me \\ud800 now \\udfff")
    replaced = _post_raw(sim, path, template % "tell me \\ufffd now \\ufffd")
    assert _answer_text(path, lone) == _answer_text(path, replaced)


def test_an_admin_body_nested_too_deeply_is_a_400(sim: SimHandle) -> None:
    """The admin API parses like the model endpoints: a clear 400, not a 500."""
    r = httpx.put(
        f"{sim.root_url}/admin/profiles/base",
        content=b"[" * 5000 + b"]" * 5000,
        headers={"Authorization": "Bearer adm-token"},
    )
    assert r.status_code == 400
    assert "nested too deeply" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/chat/completions", 405),
        ("PUT", "/v1/embeddings", 405),
        ("POST", "/v1/nothing", 404),
        ("POST", "/v1/chat/completions/", 307),  # Starlette's trailing-slash redirect
    ],
)
def test_paths_outside_the_hot_endpoints_route_as_before(
    sim: SimHandle, method: str, path: str, status: int
) -> None:
    """Only exact POSTs take the fast path; other methods and paths keep Starlette's answers."""
    r = httpx.request(
        method,
        f"{sim.root_url}{path}",
        headers={"Authorization": "Bearer k"},
        json={"model": "base", "messages": ASK},
        follow_redirects=False,
    )
    assert r.status_code == status
    if status == 307:
        assert r.headers["location"].endswith("/v1/chat/completions")
    else:
        assert f"Unknown path {method} {path}" in r.json()["error"]["message"]


def test_concurrent_requests_are_served_in_parallel(sim: SimHandle) -> None:
    """200 concurrent calls of 1 s each are all being answered at the same moment."""
    model = own_model(sim, "parallel", median_ms=1000, p99_ms=1000)
    sim.reset_stats()

    async def run() -> list[Any]:
        async with openai.AsyncOpenAI(base_url=sim.base_url, api_key="k", max_retries=0) as c:
            calls = [
                c.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": f"q{i}"}]
                )
                for i in range(200)
            ]
            return await asyncio.gather(*calls)

    answers = asyncio.run(run())
    assert len({a.choices[0].message.content for a in answers}) == 200
    assert sim.count(model, 200) == 200
    # Served one after another, the simulator would never hold more than one call.
    peak = sim.stats()["in_flight_peak"]
    assert peak >= 100, f"at most {peak} of 200 concurrent calls were answered at once"


def test_stats_count_requests_per_model_and_status(sim: SimHandle, client: openai.OpenAI) -> None:
    """/admin/stats counts answers by model and HTTP status."""
    model = own_model(sim, "counted")
    for _ in range(4):
        client.chat.completions.create(model=model, messages=ASK)
    stats = sim.stats()
    assert stats["requests"][model] == {"200": 4}
    assert stats["total"] >= 4 and stats["seed"] == 3


def test_run_simulator_reports_bad_profiles_and_frees_its_port() -> None:
    """A broken profile fails fast with the reason; a stopped simulator frees its port."""
    with (
        pytest.raises(SimulatorFailed, match="colour: unknown field"),
        run_simulator({"m": {"colour": "red"}}),
    ):
        pass
    with run_simulator({"m": FAST}) as handle:
        port = handle.port
        assert httpx.get(f"{handle.root_url}/healthz").json()["simulator"] is True
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
