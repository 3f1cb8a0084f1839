"""Score one answer against another for the same prompt: a chain of small scorers.

``compare`` runs each scorer in ``DEFAULT_SCORERS`` in turn, structlog-processor
style: a scorer receives the pair and the fields set so far and returns them with its
own added. A new measure is one more function in the chain (or a custom ``scorers``
tuple); ``Comparison`` is built from the fields at the end.

``reference`` is always the live baseline answer (B1); ``other`` is the candidate (C)
or the baseline asked again (B2) for the noise floor. Deltas are other - reference
and ``None`` whenever either side lacks the input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from shadowcanary.events import CapturedCall, ModelRequest
from shadowcanary.judge.structured import (
    JSON_RESPONSE_FORMATS,
    ToolProblem,
    check_tool_call,
    json_expected,
    json_valid,
    response_format_type,
    response_schema_errors,
    tool_calls_agree,
)
from shadowcanary.judge.text import (
    cosine_similarity,
    length_ratio,
    looks_like_refusal,
    normalized_tokens,
    token_similarity,
)
from shadowcanary.judge.types import CallOutput, Comparison, OutputFlags

# Enough to point a person at the problem; the full answers are stored elsewhere.
_MAX_NOTES_PER_OUTPUT = 3

_Number = TypeVar("_Number", int, float)


@dataclass(frozen=True, slots=True)
class ScoringInput:
    """Everything a scorer may look at, prepared once per pair."""

    reference: CallOutput
    other: CallOutput
    request: ModelRequest
    embeddings: tuple[Sequence[float], Sequence[float]] | None
    reference_tokens: tuple[str, ...]
    other_tokens: tuple[str, ...]


# The fields of the Comparison being built, plus "notes" as a list while building.
Fields = dict[str, Any]
Scorer = Callable[[ScoringInput, Fields], Fields]


@dataclass(frozen=True, slots=True)
class Inspection:
    """Flags of one output, with short notes saying why the worrying ones are set."""

    flags: OutputFlags
    notes: tuple[str, ...]


def _text_json_notes(output: CallOutput, request: ModelRequest) -> list[str] | None:
    """Notes when the text breaks a JSON response_format, ``None`` when it does not apply."""
    if response_format_type(request) not in JSON_RESPONSE_FORMATS:
        return None
    text = output.text or ""
    # A tool call or an API-reported refusal instead of text is not a JSON failure:
    # those are scored as tool calls and refusals.
    if not text.strip() and (output.tool_calls or (output.refusal or "").strip()):
        return None
    if not json_valid(text):
        if json_valid(text, allow_code_fence=True):
            return ["JSON is wrapped in a Markdown code block"]
        return ["expected JSON, the text does not parse"]
    return [f"response schema: {message}" for message in response_schema_errors(request, text)]


def inspect_output(output: CallOutput, request: ModelRequest) -> Inspection:
    """Flags of one output on its own, with notes explaining them."""
    text = output.text or ""
    api_refusal = bool((output.refusal or "").strip())
    notes: list[str] = []
    json_invalid = False
    tool_schema_invalid = False
    tool_unknown = False

    text_notes = _text_json_notes(output, request)
    if text_notes:
        json_invalid = True
        notes.extend(text_notes)
    for call in output.tool_calls:
        check = check_tool_call(call, request.tools)
        json_invalid |= ToolProblem.UNPARSABLE_ARGUMENTS in check.problems
        tool_schema_invalid |= ToolProblem.SCHEMA_VIOLATION in check.problems
        tool_unknown |= ToolProblem.UNKNOWN_TOOL in check.problems
        notes.extend(check.messages)

    flags = OutputFlags(
        empty=not text.strip() and not output.tool_calls and not api_refusal,
        truncated=output.finish_reason == "length",
        # A content filter stopping the answer is the provider declining it.
        refusal=api_refusal or output.finish_reason == "content_filter" or looks_like_refusal(text),
        json_expected=json_expected(request, output),
        json_invalid=json_invalid,
        tool_schema_invalid=tool_schema_invalid,
        tool_unknown=tool_unknown,
    )
    return Inspection(flags, tuple(notes[:_MAX_NOTES_PER_OUTPUT]))


def assess(output: CallOutput, request: ModelRequest) -> OutputFlags:
    """What can be said of one output on its own: empty, truncated, refusal, JSON, tools."""
    return inspect_output(output, request).flags


def _delta(other: _Number | None, reference: _Number | None) -> _Number | None:
    if other is None or reference is None:
        return None
    return other - reference


def score_flags(pair: ScoringInput, fields: Fields) -> Fields:
    """Flags of each side, and notes on what is wrong with either."""
    for side, output in (("reference", pair.reference), ("other", pair.other)):
        inspection = inspect_output(output, pair.request)
        fields[f"{side}_flags"] = inspection.flags
        fields["notes"].extend(f"{side}: {note}" for note in inspection.notes)
    return fields


def score_text_match(pair: ScoringInput, fields: Fields) -> Fields:
    """Exact and normalised equality of the texts."""
    fields["exact_match"] = (pair.reference.text or "") == (pair.other.text or "")
    fields["normalized_match"] = pair.reference_tokens == pair.other_tokens
    return fields


def score_lexical(pair: ScoringInput, fields: Fields) -> Fields:
    """Word-level similarity of the normalised texts."""
    fields["lexical_similarity"] = token_similarity(pair.reference_tokens, pair.other_tokens)
    return fields


def score_embedding(pair: ScoringInput, fields: Fields) -> Fields:
    """Cosine of the two embeddings; unusable vectors give ``None`` and a note, not a crash."""
    fields["embedding_similarity"] = None
    if pair.embeddings is not None:
        try:
            fields["embedding_similarity"] = cosine_similarity(*pair.embeddings)
        except ValueError as exc:
            fields["notes"].append(f"embedding similarity skipped: {exc}")
    return fields


def score_tool_calls(pair: ScoringInput, fields: Fields) -> Fields:
    """Whether both sides called the same tools, in order, with the same arguments."""
    names, arguments = tool_calls_agree(pair.reference.tool_calls, pair.other.tool_calls)
    fields["tool_name_agreement"] = names
    fields["tool_args_agreement"] = arguments
    return fields


def score_length(pair: ScoringInput, fields: Fields) -> Fields:
    """Length of the other text relative to the reference, in characters."""
    fields["length_ratio"] = length_ratio(pair.reference.text, pair.other.text)
    return fields


def score_deltas(pair: ScoringInput, fields: Fields) -> Fields:
    """Latency, time-to-first-token, completion-token and cost differences (other - reference)."""
    reference, other = pair.reference, pair.other
    fields["latency_delta_ms"] = _delta(other.latency_ms, reference.latency_ms)
    fields["ttft_delta_ms"] = _delta(other.ttft_ms, reference.ttft_ms)
    fields["completion_token_delta"] = _delta(other.completion_tokens, reference.completion_tokens)
    fields["cost_delta_usd"] = _delta(other.cost_usd, reference.cost_usd)
    reasoning = _delta(other.reasoning_tokens, reference.reasoning_tokens)
    if reasoning:
        # Part of the completion-token and cost deltas; named, since it is invisible in
        # the answers and often the whole of a cost difference.
        fields["notes"].append(
            f"reasoning tokens {reference.reasoning_tokens} -> {other.reasoning_tokens} "
            f"({reasoning:+d}, billed as output)"
        )
    return fields


DEFAULT_SCORERS: tuple[Scorer, ...] = (
    score_flags,
    score_text_match,
    score_lexical,
    score_embedding,
    score_tool_calls,
    score_length,
    score_deltas,
)

_COMPARISON_FIELDS = frozenset(f.name for f in dataclasses.fields(Comparison))


def compare(
    reference: CallOutput,
    other: CallOutput,
    request: ModelRequest,
    *,
    embeddings: tuple[Sequence[float], Sequence[float]] | None = None,
    scorers: Sequence[Scorer] = DEFAULT_SCORERS,
) -> Comparison:
    """How ``other`` differs from ``reference`` for the same request.

    Args:
        embeddings: (reference vector, other vector) when an embeddings endpoint is
            configured; ``embedding_similarity`` is ``None`` without them.
        scorers: the chain to run; defaults to every built-in scorer.

    Raises:
        TypeError: the scorer chain left a ``Comparison`` field unset or set an
            unknown one (a programming error in a custom chain).
    """
    pair = ScoringInput(
        reference=reference,
        other=other,
        request=request,
        embeddings=embeddings,
        reference_tokens=normalized_tokens(reference.text),
        other_tokens=normalized_tokens(other.text),
    )
    fields: Fields = {"notes": []}
    for scorer in scorers:
        fields = scorer(pair, fields)
    fields["notes"] = tuple(fields["notes"])
    missing = sorted(_COMPARISON_FIELDS - {"notes"} - fields.keys())
    unknown = sorted(fields.keys() - _COMPARISON_FIELDS)
    if missing or unknown:
        raise TypeError(
            f"scorer chain left fields unset {missing} or set unknown ones {unknown}; "
            "every Comparison field needs exactly one scorer (see DEFAULT_SCORERS)"
        )
    return Comparison(**fields)


def output_from_capture(event: CapturedCall, cost_usd: float | None) -> CallOutput:
    """The answer a live call gave, as the scorers see it (no response → no text)."""
    response = event.response
    return CallOutput(
        model=event.model,
        text=response.text if response else None,
        tool_calls=tuple(response.tool_calls) if response else (),
        finish_reason=response.finish_reason if response else None,
        refusal=response.refusal if response else None,
        latency_ms=event.latency_ms,
        ttft_ms=event.ttft_ms,
        prompt_tokens=event.prompt_tokens,
        completion_tokens=event.completion_tokens,
        cost_usd=cost_usd,
        cached_tokens=event.cached_tokens,
        reasoning_tokens=event.reasoning_tokens,
    )


def paired_difference(candidate: Comparison, noise: Comparison) -> float:
    """Diffy's noise-floor difference D_i = sim(C, B1) - sim(B2, B1), in [-1, 1].

    ``candidate`` compares the candidate with the live baseline, ``noise`` the
    baseline's second answer with the same live baseline. Negative means the
    candidate strays from the baseline more than the baseline strays from itself.
    """
    return candidate.lexical_similarity - noise.lexical_similarity
