"""The simulator's answers: pure, deterministic, and shaped by the profile knobs."""

from __future__ import annotations

import json
import random
import statistics
import zlib
from typing import Any

import jsonschema
import pytest

from shadowcanary.errors import ConfigError
from shadowcanary.sim.embeddings import cosine, embed
from shadowcanary.sim.output import SimAnswer, add_sampling_noise, simulate
from shadowcanary.sim.profiles import (
    ModelProfile,
    ProfileSet,
    load_profiles,
    profiles_from_mapping,
)
from shadowcanary.sim.prompt import OutputFormat, SimPrompt, ToolSpec
from shadowcanary.sim.requests import ChatRequest, ResponsesRequest
from shadowcanary.sim.schema_values import break_schema, value_for_schema
from shadowcanary.sim.shapes import split_pieces
from shadowcanary.sim.vocabulary import REFUSAL_TEXT

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
PROMPTS = [f"Explain step {i} of the billing migration for customer {i * 7}" for i in range(200)]


def prompt(text: str, **kwargs: Any) -> SimPrompt:
    return SimPrompt(messages=(("system", "Be brief."), ("user", text)), **kwargs)


def profiles(**models: dict[str, object]) -> ProfileSet:
    return profiles_from_mapping({"base": {}, **models})


def words(answer: SimAnswer) -> list[str]:
    return (answer.content or "").split()


def word_change_share(a: str, b: str) -> float:
    wa, wb = a.split(), b.split()
    n = min(len(wa), len(wb))
    return sum(x != y for x, y in zip(wa[:n], wb[:n], strict=True)) / n


def test_same_prompt_and_profile_give_identical_answers_across_profile_sets() -> None:
    """The text is a pure function of (profile, prompt): rebuilt sets answer the same."""
    first = [simulate(profiles(), "base", prompt(p)) for p in PROMPTS[:20]]
    again = [simulate(profiles(), "base", prompt(p)) for p in PROMPTS[:20]]
    assert first == again
    assert len({a.content for a in first}) == 20


def test_unrelated_root_models_answer_differently() -> None:
    """Two models without diverge_from write different prose for the same prompt."""
    ps = profiles(other={})
    p = prompt(PROMPTS[0])
    assert simulate(ps, "base", p).content != simulate(ps, "other", p).content


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"output_format": OutputFormat.JSON_OBJECT},
        {"output_format": OutputFormat.JSON_SCHEMA, "json_schema": WEATHER},
        {"tools": (ToolSpec("get_weather", WEATHER),), "tool_choice": "required"},
    ],
    ids=["prose", "json_object", "json_schema", "tool_call"],
)
def test_divergence_zero_is_byte_identical_to_the_parent(kwargs: dict[str, Any]) -> None:
    """divergence 0 with equal verbosity and fault rates reproduces the parent exactly."""
    faults = {"refusal_rate": 0.2, "truncation_rate": 0.2, "invalid_json_rate": 0.2}
    ps = profiles_from_mapping(
        {"base": faults, "child": {**faults, "diverge_from": "base", "divergence": 0.0}}
    )
    for text in PROMPTS[:50]:
        p = prompt(text, **kwargs)
        assert simulate(ps, "child", p) == simulate(ps, "base", p)


def test_divergence_half_changes_about_half_the_words() -> None:
    """divergence 0.5 changes roughly half of the parent's words, deterministically."""
    ps = profiles(child={"diverge_from": "base", "divergence": 0.5})
    shares = []
    for text in PROMPTS[:50]:
        base = simulate(ps, "base", prompt(text)).content or ""
        child = simulate(ps, "child", prompt(text)).content or ""
        assert len(child.split()) == len(base.split())
        shares.append(word_change_share(base, child))
    assert 0.4 < statistics.mean(shares) < 0.6


def test_raising_a_models_divergence_changes_a_superset_of_words() -> None:
    """Turning one model's divergence up only adds changed positions (monotone drift)."""
    low = profiles(child={"diverge_from": "base", "divergence": 0.1})
    high = profiles(child={"diverge_from": "base", "divergence": 0.3})
    for text in PROMPTS[:20]:
        base = words(simulate(low, "base", prompt(text)))
        at_low = words(simulate(low, "child", prompt(text)))
        at_high = words(simulate(high, "child", prompt(text)))
        changed_low = {i for i, (a, b) in enumerate(zip(base, at_low, strict=True)) if a != b}
        changed_high = {i for i, (a, b) in enumerate(zip(base, at_high, strict=True)) if a != b}
        assert changed_low <= changed_high
        assert len(changed_high) > len(changed_low)


def test_divergence_keeps_json_and_tool_arguments_schema_valid() -> None:
    """Diverged JSON re-draws leaves from the schema instead of corrupting them."""
    ps = profiles(child={"diverge_from": "base", "divergence": 0.7})
    tool = (ToolSpec("get_weather", WEATHER),)
    differing = 0
    for text in PROMPTS[:40]:
        call = simulate(ps, "child", prompt(text, tools=tool, tool_choice="required")).tool_calls[0]
        jsonschema.validate(json.loads(call.arguments), WEATHER)
        doc = simulate(
            ps, "child", prompt(text, output_format=OutputFormat.JSON_SCHEMA, json_schema=WEATHER)
        )
        jsonschema.validate(json.loads(doc.content or ""), WEATHER)
        base = simulate(ps, "base", prompt(text, tools=tool, tool_choice="required"))
        differing += base.tool_calls[0].arguments != call.arguments
    assert differing > 10


@pytest.mark.parametrize("factor", [0.5, 1.2, 2.0])
def test_verbosity_scales_the_parent_answer_length(factor: float) -> None:
    """A child's verbosity multiplies the parent's word count (rounded)."""
    ps = profiles(child={"diverge_from": "base", "verbosity": factor})
    for text in PROMPTS[:20]:
        base = words(simulate(ps, "base", prompt(text)))
        child = words(simulate(ps, "child", prompt(text)))
        assert abs(len(child) - round(len(base) * factor)) <= 1


def test_root_verbosity_makes_answers_longer_on_average() -> None:
    """A root model's verbosity scales its own base length."""
    ps = profiles(wordy={"verbosity": 3.0})
    base = statistics.mean(len(words(simulate(ps, "base", prompt(t)))) for t in PROMPTS[:40])
    wordy = statistics.mean(len(words(simulate(ps, "wordy", prompt(t)))) for t in PROMPTS[:40])
    assert 2.0 < wordy / base < 4.0


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_refusal_rate_zero_never_and_one_always_refuses(rate: float) -> None:
    """refusal_rate is a probability per prompt: 0 never refuses, 1 always does."""
    ps = profiles(m={"refusal_rate": rate})
    answers = [simulate(ps, "m", prompt(t)) for t in PROMPTS[:50]]
    refused = [a.refusal == REFUSAL_TEXT and a.content == REFUSAL_TEXT for a in answers]
    assert all(refused) if rate == 1.0 else not any(refused)


def test_structured_output_refusal_has_no_content() -> None:
    """Like OpenAI, a refused json_schema request carries the refusal field and no content."""
    ps = profiles(m={"refusal_rate": 1.0})
    answer = simulate(
        ps, "m", prompt("x", output_format=OutputFormat.JSON_SCHEMA, json_schema=WEATHER)
    )
    assert answer.content is None
    assert answer.refusal == REFUSAL_TEXT


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_truncation_rate_cuts_text_and_reports_length(rate: float) -> None:
    """truncation_rate 1 cuts every answer to a prefix and finishes with 'length'."""
    cutting = profiles_from_mapping({"base": {"truncation_rate": rate}})
    for text in PROMPTS[:30]:
        full = simulate(profiles(), "base", prompt(text)).content or ""
        answer = simulate(cutting, "base", prompt(text))
        if rate == 0.0:
            assert answer.content == full and answer.finish_reason == "stop"
        else:
            assert answer.finish_reason == "length"
            assert full.startswith(answer.content or "") and len(answer.content or "") < len(full)


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_invalid_json_rate_when_json_is_asked_for(rate: float) -> None:
    """invalid_json_rate 0 always parses, 1 never parses (json_object mode)."""
    ps = profiles(m={"invalid_json_rate": rate})
    parsed = 0
    for text in PROMPTS[:50]:
        content = simulate(ps, "m", prompt(text, output_format=OutputFormat.JSON_OBJECT)).content
        try:
            json.loads(content or "")
            parsed += 1
        except ValueError:
            pass
    assert parsed == (50 if rate == 0.0 else 0)


def test_invalid_json_rate_does_not_touch_prose() -> None:
    """Without a JSON response_format the invalid-JSON fault never applies."""
    ps = profiles(m={"invalid_json_rate": 1.0})
    assert simulate(ps, "m", prompt("hi")).content == simulate(ps, "m", prompt("hi")).content
    assert not (simulate(ps, "m", prompt("hi")).content or "").endswith("}")


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_wrong_tool_call_rate(rate: float) -> None:
    """wrong_tool_call_rate 1 always names an unoffered tool or breaks the schema; 0 never."""
    ps = profiles(m={"wrong_tool_call_rate": rate})
    validator = jsonschema.Draft202012Validator(WEATHER)
    wrong = 0
    for text in PROMPTS[:60]:
        call = simulate(ps, "m", prompt(text, tools=(ToolSpec("get_weather", WEATHER),))).tool_calls
        if not call:
            continue
        args = json.loads(call[0].arguments)
        wrong += call[0].name != "get_weather" or not validator.is_valid(args)
    calls = sum(
        bool(simulate(ps, "m", prompt(t, tools=(ToolSpec("get_weather", WEATHER),))).tool_calls)
        for t in PROMPTS[:60]
    )
    assert calls > 30
    assert wrong == (calls if rate == 1.0 else 0)


def test_fault_rate_is_close_to_the_probability_and_nested_for_higher_rates() -> None:
    """A 30 % refusal rate hits ~30 % of prompts, and a 50 % child refuses a superset."""
    ps = profiles_from_mapping(
        {
            "base": {"refusal_rate": 0.3},
            "child": {"diverge_from": "base", "refusal_rate": 0.5},
        }
    )
    base = {t for t in PROMPTS if simulate(ps, "base", prompt(t)).refusal}
    child = {t for t in PROMPTS if simulate(ps, "child", prompt(t)).refusal}
    assert 0.2 < len(base) / len(PROMPTS) < 0.4
    assert base <= child
    assert 0.4 < len(child) / len(PROMPTS) < 0.6


def test_max_tokens_cuts_the_answer_and_reports_length() -> None:
    """An answer longer than max_tokens is cut to it and finishes with 'length'."""
    answer = simulate(profiles(), "base", prompt(PROMPTS[0], max_tokens=5))
    assert answer.finish_reason == "length"
    assert answer.completion_tokens <= 5


@pytest.mark.parametrize(
    ("kwargs", "expect_call"),
    [
        ({"tool_choice": "none"}, False),
        ({"tool_choice": "required"}, True),
        ({"tool_choice": "lookup"}, True),
    ],
)
def test_tool_choice_decides_whether_a_tool_is_called(
    kwargs: dict[str, Any], expect_call: bool
) -> None:
    """tool_choice none/required/a name is obeyed on every prompt."""
    tools = (ToolSpec("get_weather", WEATHER), ToolSpec("lookup", {"type": "object"}))
    for text in PROMPTS[:20]:
        answer = simulate(profiles(), "base", prompt(text, tools=tools, **kwargs))
        assert bool(answer.tool_calls) is expect_call
        if kwargs["tool_choice"] == "lookup":
            assert answer.tool_calls[0].name == "lookup"
            assert answer.finish_reason == "tool_calls"


def test_auto_tool_use_follows_tool_use_rate_mentions_and_tool_results() -> None:
    """auto: rate 0 never calls unless the prompt names the tool; a tool result gets prose."""
    ps = profiles(m={"tool_use_rate": 0.0})
    tools = (ToolSpec("get_weather", WEATHER),)
    assert not simulate(ps, "m", prompt("What's up?", tools=tools)).tool_calls
    named = simulate(ps, "m", prompt("Please call get_weather for Oslo", tools=tools))
    assert named.tool_calls[0].name == "get_weather"
    after_tool = SimPrompt(
        messages=(("user", "get_weather Oslo"), ("tool", '{"t": 3}')), tools=tools
    )
    assert simulate(profiles(), "base", after_tool).content


def obj(**props: object) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": sorted(props)}


INT: dict[str, Any] = {"type": "integer"}
STR: dict[str, Any] = {"type": "string"}
SCHEMAS: list[dict[str, Any]] = [
    WEATHER,
    obj(n={"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}),
    obj(k={"type": "integer", "multipleOf": 5, "minimum": 12, "maximum": 40}),
    obj(x={"type": "number", "multipleOf": 0.25, "maximum": -3}),
    obj(tags={"type": "array", "items": {**STR, "maxLength": 4}, "minItems": 2, "maxItems": 2}),
    obj(
        when={**STR, "format": "date"},
        id={**STR, "format": "uuid"},
        mail={**STR, "format": "email"},
    ),
    obj(v={"type": ["null", "boolean"]}, c={"const": "fixed"}),
    {
        **obj(items={"type": "array", "items": {"$ref": "#/$defs/item"}}),
        "$defs": {"item": obj(sku=STR, qty={**INT, "minimum": 1})},
    },
    obj(choice={"anyOf": [{"type": "null"}, {**INT, "maximum": 3}]}),
    {"type": "object", "allOf": [obj(a=STR), obj(b={"type": "boolean"})]},
    obj(deep=obj(deeper=obj(z=INT))),
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
def test_generated_tool_arguments_validate_against_their_schema(schema: dict[str, Any]) -> None:
    """Values drawn from a schema satisfy it (types, bounds, formats, $ref, anyOf, allOf)."""
    checker = jsonschema.FormatChecker()
    for seed in range(40):

        def seed_for(path: str, seed: int = seed) -> int:
            return zlib.crc32(f"{seed}:{path}".encode())

        value = value_for_schema(schema, seed_for)
        jsonschema.validate(value, schema, format_checker=checker)


@pytest.mark.parametrize("schema", [s for s in SCHEMAS if s.get("required") or s.get("allOf")][:6])
def test_break_schema_always_produces_an_invalid_value(schema: dict[str, Any]) -> None:
    """The schema-breaking fault yields arguments the schema rejects."""
    value = value_for_schema(schema, lambda path: 7)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(break_schema(value, schema), schema)


def test_sampling_noise_changes_words_per_call_but_zero_is_a_no_op() -> None:
    """sampling_noise draws from the server RNG: two calls differ; rate 0 returns the answer."""
    answer = simulate(profiles(), "base", prompt(PROMPTS[0]))
    assert add_sampling_noise(answer, 0.0, random.Random(1)) is answer
    first = add_sampling_noise(answer, 0.2, random.Random(1))
    second = add_sampling_noise(answer, 0.2, random.Random(2))
    assert first.content != answer.content and first.content != second.content
    assert len((first.content or "").split()) == len((answer.content or "").split())


def test_latency_draws_match_median_and_p99() -> None:
    """Lognormal latency through (median, p99): the sample quantiles land near both."""
    profile = ModelProfile(median_ms=300, p99_ms=900)
    rng = random.Random(7)
    draws = sorted(profile.draw_latency_ms(rng) for _ in range(20_000))
    assert 285 < draws[10_000] < 315
    assert 820 < draws[19_800] < 980
    ttfts = [profile.draw_ttft_ms(rng, 500.0) for _ in range(10)]
    assert ttfts == [150.0] * 10


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ({"a": {"p99_ms": 10, "median_ms": 20}}, "p99_ms"),
        ({"a": {"colour": "red"}}, "colour: unknown field"),
        ({"a": {"error_rate": 1.5}}, "error_rate"),
        ({"a": {"diverge_from": "ghost"}}, "'ghost', which is not a known model"),
        ({"a": {"diverge_from": "b"}, "b": {"diverge_from": "a"}}, "loop"),
    ],
)
def test_invalid_profiles_are_rejected_with_the_reason(
    models: dict[str, Any], message: str
) -> None:
    """Bad ranges, unknown fields and broken diverge_from chains are ConfigErrors."""
    with pytest.raises(ConfigError, match=message):
        profiles_from_mapping(models)


def test_shipped_default_profiles() -> None:
    """Defaults: gpt-5.2 at 418 ms and gpt-5.5 diverging slightly from it, with prices."""
    ps = load_profiles()
    base, cand = ps["gpt-5.2"], ps["gpt-5.5"]
    assert (base.median_ms, base.input_usd_per_mtok, base.output_usd_per_mtok) == (418, 1.75, 14)
    assert (cand.median_ms, cand.input_usd_per_mtok, cand.output_usd_per_mtok) == (674, 5, 30)
    assert cand.diverge_from == "gpt-5.2" and 0 < cand.divergence <= 0.1
    assert cand.verbosity == 1.2


def test_embeddings_are_unit_vectors_and_similar_texts_are_close() -> None:
    """Hashed bag of words: deterministic, normalised, higher cosine for shared words."""
    a = embed("the invoice total is wrong for march", 256)
    assert a == embed("the invoice total is wrong for march", 256)
    assert abs(sum(x * x for x in a) - 1) < 1e-9
    close = embed("the invoice total for march is wrong again", 256)
    far = embed("photosynthesis converts sunlight into chemical energy", 256)
    assert cosine(a, close) > 0.8 > 0.3 > cosine(a, far)


@pytest.mark.parametrize("text", ["", "one", "a  b\n\nc ", "  lead and trail  ", "x" * 50])
@pytest.mark.parametrize("size", [1, 3])
def test_stream_pieces_join_back_to_the_text(text: str, size: int) -> None:
    """Streaming deltas concatenate to exactly the non-streamed text."""
    assert "".join(split_pieces(text, size)) == text


def test_chat_and_responses_requests_of_the_same_conversation_get_the_same_answer() -> None:
    """The same question through Chat Completions and Responses maps to one prompt."""
    chat = ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": WEATHER}}],
        }
    ).to_prompt()
    responses = ResponsesRequest.model_validate(
        {
            "model": "m",
            "instructions": "Be brief.",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
            "tools": [{"type": "function", "name": "f", "parameters": WEATHER}],
        }
    ).to_prompt()
    assert chat.key == responses.key
