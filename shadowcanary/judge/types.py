"""Values the scorers produce and the store keeps. Pure data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from shadowcanary.events import ToolCall


@dataclass(frozen=True, slots=True)
class CallOutput:
    """One model answer to one prompt: a live capture or a shadow replay."""

    model: str
    text: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    refusal: str | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    # Shares of the two counts above: input from the prompt cache, output spent reasoning.
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class OutputFlags:
    """What can be said of one output on its own (live outcomes and each replay)."""

    empty: bool
    truncated: bool  # finish_reason == "length"
    refusal: bool
    json_expected: bool  # the request asked for JSON (response_format) or a tool call came back
    json_invalid: bool  # expected JSON and the text (or a tool's arguments) did not parse
    tool_schema_invalid: bool  # a tool call whose arguments break the request's JSON schema
    tool_unknown: bool  # a tool call naming a tool the request did not offer


@dataclass(frozen=True, slots=True)
class Comparison:
    """How ``other`` differs from ``reference`` for the same prompt.

    ``reference`` is the live baseline answer (B1); ``other`` is the candidate (C) or,
    for the noise floor, the baseline asked a second time (B2).
    """

    exact_match: bool
    normalized_match: bool
    lexical_similarity: float  # 0..1
    embedding_similarity: float | None  # cosine, when an embeddings endpoint is configured
    tool_name_agreement: bool | None  # None when neither side called a tool
    tool_args_agreement: bool | None
    length_ratio: float | None  # len(other) / len(reference) in characters
    latency_delta_ms: float | None  # other - reference
    ttft_delta_ms: float | None
    completion_token_delta: int | None
    cost_delta_usd: float | None
    reference_flags: OutputFlags
    other_flags: OutputFlags
    notes: tuple[str, ...] = field(default=())
