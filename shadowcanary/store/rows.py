"""Domain values to table rows (plain dicts for batched executemany inserts)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, overload

from shadowcanary.judge.types import CallOutput, Comparison, OutputFlags
from shadowcanary.shadow_results import DeadLetter, ReplayRecord
from shadowcanary.store.inputs import AssessedCapture
from shadowcanary.store.models import NAME

MAX_MESSAGE_CHARS = 10_000
EVENT_ID = 128  # captures.event_id / dead_letters.event_id width
# One column per OutputFlags field (captures, and reference_/other_ on comparisons).
FLAG_NAMES = tuple(flag.name for flag in dataclasses.fields(OutputFlags))


@overload
def clean_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> str: ...
@overload
def clean_text(text: None, limit: int = MAX_MESSAGE_CHARS) -> None: ...
def clean_text(text: str | None, limit: int = MAX_MESSAGE_CHARS) -> str | None:
    """Free text as Postgres stores it: capped, NUL (rejected by text columns) -> U+FFFD."""
    if text is None:
        return None
    return text[:limit].replace("\x00", "\ufffd")


def capture_row(capture: AssessedCapture, received_at: datetime) -> dict[str, Any]:
    event = capture.event
    flags: OutputFlags | None = capture.flags
    return {
        "event_id": event.event_id,
        "received_at": received_at,
        "started_at": event.started_at,
        "rollout": event.rollout,
        "route": event.route,
        "tenant": event.tenant,
        "arm": event.arm.value,
        "model": event.model,
        "status": event.status.value,
        "error_class": clean_text(event.error_class, NAME),
        "http_status": event.http_status,
        "latency_ms": event.latency_ms,
        "ttft_ms": event.ttft_ms,
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens,
        "cost_usd": capture.cost_usd,
        "stickiness_key": event.stickiness_key,
        **{name: None if flags is None else getattr(flags, name) for name in FLAG_NAMES},
        "event": event.model_dump(mode="json"),
    }


def _output_document(output: CallOutput) -> dict[str, Any]:
    return {
        "text": output.text,
        "tool_calls": [call.model_dump(mode="json") for call in output.tool_calls],
        "finish_reason": output.finish_reason,
        "refusal": output.refusal,
        # Kept here rather than in columns: what the cost counted, for a person to check.
        "cached_tokens": output.cached_tokens,
        "reasoning_tokens": output.reasoning_tokens,
    }


def replay_row(record: ReplayRecord, recorded_at: datetime) -> dict[str, Any]:
    out = record.output
    return {
        "event_id": record.event_id,
        "kind": record.kind.value,
        "status": record.status.value,
        "model": None if out is None else out.model,
        "output": None if out is None else _output_document(out),
        "latency_ms": None if out is None else out.latency_ms,
        "ttft_ms": None if out is None else out.ttft_ms,
        "prompt_tokens": None if out is None else out.prompt_tokens,
        "completion_tokens": None if out is None else out.completion_tokens,
        "cost_usd": None if out is None else out.cost_usd,
        "attempts": record.attempts,
        "error_class": clean_text(record.error_class, NAME),
        "error_message": clean_text(record.error_message),
        "recorded_at": recorded_at,
    }


def comparison_row(
    record: ReplayRecord, cmp: Comparison, rollout: str | None, recorded_at: datetime
) -> dict[str, Any]:
    return {
        "event_id": record.event_id,
        "kind": record.kind.value,
        "rollout": rollout,
        "recorded_at": recorded_at,
        "exact_match": cmp.exact_match,
        "normalized_match": cmp.normalized_match,
        "lexical_similarity": cmp.lexical_similarity,
        "embedding_similarity": cmp.embedding_similarity,
        "tool_name_agreement": cmp.tool_name_agreement,
        "tool_args_agreement": cmp.tool_args_agreement,
        "length_ratio": cmp.length_ratio,
        "latency_delta_ms": cmp.latency_delta_ms,
        "ttft_delta_ms": cmp.ttft_delta_ms,
        "completion_token_delta": cmp.completion_token_delta,
        "cost_delta_usd": cmp.cost_delta_usd,
        **{f"reference_{n}": getattr(cmp.reference_flags, n) for n in FLAG_NAMES},
        **{f"other_{n}": getattr(cmp.other_flags, n) for n in FLAG_NAMES},
        "notes": [clean_text(note) for note in cmp.notes],
    }


def dead_letter_row(letter: DeadLetter, recorded_at: datetime) -> dict[str, Any]:
    return {
        "recorded_at": recorded_at,
        "stage": clean_text(letter.stage, 32),
        # The id of an event that failed validation is as untrusted as the rest of it.
        "event_id": clean_text(letter.event_id, EVENT_ID),
        "error_class": clean_text(letter.error_class, NAME),
        "message": clean_text(letter.message),
        "attempts": letter.attempts,
        "payload": letter.payload,
    }
