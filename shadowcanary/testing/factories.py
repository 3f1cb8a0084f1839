"""Small factories for realistic domain values in tests and benchmarks.

Every factory returns a fully valid value with sensible defaults; keyword overrides
replace any field. ``make_event`` validates through the ``CapturedCall`` contract, so
an override that breaks it fails loudly, as it would on the wire::

    event = make_event(arm=Arm.CANDIDATE, latency_ms=1200.0)
    failed = make_event(status=CallStatus.TIMEOUT)          # response dropped for you
    replay = make_replay(event.event_id, ReplayKind.NOISE, lexical_similarity=0.8)
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shadowcanary.events import Arm, CallStatus, CapturedCall
from shadowcanary.judge.types import CallOutput, Comparison, OutputFlags
from shadowcanary.shadow_results import DeadLetter, ReplayKind, ReplayRecord, ReplayStatus

BASELINE_MODEL = "gpt-5.2"
CANDIDATE_MODEL = "gpt-5.5"
DEFAULT_ROLLOUT = "support-assistant-gpt-5.5"

SYSTEM_PROMPT = (
    "You are the support assistant for Acme Cloud. Answer briefly and cite the "
    "relevant help-center article when you can."
)
USER_PROMPT = (
    "My nightly backup job failed with 'quota exceeded'. How do I raise the storage quota?"
)
ANSWER = (
    "Your project hit its storage quota. Go to Settings > Billing > Quotas, choose "
    "'Request increase' and pick the new size; most requests are approved within an "
    "hour. See the help-center article 'Managing storage quotas'."
)


_ERROR_CLASS = {
    CallStatus.ERROR: "UpstreamUnavailable",
    CallStatus.TIMEOUT: "UpstreamTimeout",
    CallStatus.RATE_LIMITED: "UpstreamRateLimited",
    CallStatus.CANCELLED: "Cancelled",
}


def new_event_id() -> str:
    return uuid.uuid4().hex


def make_event(**overrides: Any) -> CapturedCall:
    """A valid ``CapturedCall`` of a support chat; any field can be overridden.

    Derived defaults follow the overrides: a candidate-arm event uses the candidate
    model, a failed status has no response and no tokens, and ``ended_at`` is
    ``started_at + latency_ms`` unless given.
    """
    status = CallStatus(overrides.get("status", CallStatus.OK))
    arm = Arm(overrides.get("arm", Arm.BASELINE))
    latency_ms = float(overrides.get("latency_ms", 850.0))
    started_at: datetime = overrides.get(
        "started_at", datetime.now(UTC) - timedelta(milliseconds=latency_ms)
    )
    ok = status is CallStatus.OK
    data: dict[str, Any] = {
        "event_id": new_event_id(),
        "started_at": started_at,
        "ended_at": started_at + timedelta(milliseconds=latency_ms),
        "route": "support.chat",
        "tenant": "acme",
        "rollout": DEFAULT_ROLLOUT,
        "arm": arm,
        "model": CANDIDATE_MODEL if arm is Arm.CANDIDATE else BASELINE_MODEL,
        "request": {
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": USER_PROMPT},
            ],
            "parameters": {"temperature": 0.2, "max_tokens": 400},
        },
        "response": {"text": ANSWER, "finish_reason": "stop"} if ok else None,
        "latency_ms": latency_ms,
        "ttft_ms": min(latency_ms, 180.0) if ok else None,
        "status": status,
        "error_class": _ERROR_CLASS.get(status),
        "http_status": 200 if ok else (429 if status is CallStatus.RATE_LIMITED else 503),
        "prompt_tokens": 62 if ok else None,
        "completion_tokens": 48 if ok else None,
        "stickiness_key": uuid.uuid4().hex,
    }
    if status in (CallStatus.TIMEOUT, CallStatus.CANCELLED):
        data["http_status"] = None
    data.update(overrides)
    return CapturedCall.model_validate(data)


def make_flags(**overrides: bool) -> OutputFlags:
    """``OutputFlags`` of a clean answer (everything False) with overrides."""
    values = dict.fromkeys(OutputFlags.__dataclass_fields__, False)
    values.update(overrides)
    return OutputFlags(**values)


def make_output(**overrides: Any) -> CallOutput:
    """A candidate answer to the default prompt."""
    output = CallOutput(
        model=CANDIDATE_MODEL,
        text=ANSWER,
        finish_reason="stop",
        latency_ms=920.0,
        ttft_ms=200.0,
        prompt_tokens=62,
        completion_tokens=51,
        cost_usd=(62 * 5.0 + 51 * 30.0) / 1e6,
    )
    return replace(output, **overrides)


def make_comparison(**overrides: Any) -> Comparison:
    """A comparison of a close but not identical answer."""
    comparison = Comparison(
        exact_match=False,
        normalized_match=False,
        lexical_similarity=0.9,
        embedding_similarity=None,
        tool_name_agreement=None,
        tool_args_agreement=None,
        length_ratio=1.05,
        latency_delta_ms=70.0,
        ttft_delta_ms=20.0,
        completion_token_delta=3,
        cost_delta_usd=0.0012,
        reference_flags=make_flags(),
        other_flags=make_flags(),
    )
    return replace(comparison, **overrides)


def make_replay(
    event_id: str,
    kind: ReplayKind = ReplayKind.CANDIDATE,
    *,
    status: ReplayStatus = ReplayStatus.OK,
    lexical_similarity: float = 0.9,
    attempts: int = 1,
    **comparison_overrides: Any,
) -> ReplayRecord:
    """A finished replay of ``event_id``; failed or skipped replays carry no comparison."""
    if status is not ReplayStatus.OK:
        failed = status is ReplayStatus.FAILED
        return ReplayRecord(
            event_id=event_id,
            kind=kind,
            status=status,
            output=None,
            comparison=None,
            attempts=attempts,
            error_class="UpstreamUnavailable" if failed else "BudgetExhausted",
            error_message="HTTP 503 from the candidate" if failed else "daily budget spent",
        )
    model = CANDIDATE_MODEL if kind is ReplayKind.CANDIDATE else BASELINE_MODEL
    return ReplayRecord(
        event_id=event_id,
        kind=kind,
        status=status,
        output=make_output(model=model),
        comparison=make_comparison(lexical_similarity=lexical_similarity, **comparison_overrides),
        attempts=attempts,
    )


def make_dead_letter(**overrides: Any) -> DeadLetter:
    """An event that failed validation at ingest, with its raw payload."""
    letter = DeadLetter(
        stage="ingest",
        error_class="InvalidEvent",
        message="event is invalid: latency_ms: Input should be greater than or equal to 0",
        attempts=1,
        event_id=None,
        payload={"event_id": "bad-event-0001", "latency_ms": -5},
    )
    return replace(letter, **overrides)
