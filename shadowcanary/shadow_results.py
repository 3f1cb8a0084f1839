"""What a replay produces and what the store keeps of it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shadowcanary.judge.pairwise import PairVerdict
from shadowcanary.judge.types import CallOutput, Comparison


class ReplayKind(StrEnum):
    CANDIDATE = "candidate"  # the prompt sent to the candidate model (C)
    NOISE = "noise"  # the prompt sent to the baseline a second time (B2)
    # A candidate-arm live call sent to the baseline model, the rollback target: keeps it
    # proven healthy and warm during the watch after 100 % (docs/phases.md).
    ROLLBACK_TARGET = "rollback_target"


class ReplayStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"  # the candidate answered with an error (kept: it is evidence)
    SKIPPED_BUDGET = "skipped_budget"  # today's shadow budget was spent
    # The call cannot be sent again as it was (error_message says why, e.g. a
    # previous_response_id whose earlier turns were not captured): no evidence either way.
    NOT_REPLAYABLE = "not_replayable"


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    """One finished replay of one captured event, with its comparison to the live answer."""

    event_id: str
    kind: ReplayKind
    status: ReplayStatus
    output: CallOutput | None
    comparison: Comparison | None
    attempts: int
    error_class: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event that could not be processed, kept with the reason for a person to look at."""

    stage: str  # "ingest" or "replay"
    error_class: str
    message: str
    attempts: int
    event_id: str | None = None
    payload: dict[str, object] | None = None  # the raw event when it never validated


class JudgeStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"  # the judge errored or its reply was not a verdict (both orders tried)
    SKIPPED_BUDGET = "skipped_budget"  # the judge's daily budget was spent


class JudgeReference(StrEnum):
    """What the judged answer was compared with."""

    LIVE = "live"  # the live baseline answer (B1)
    # The baseline asked again on the same (redacted) prompt: like with like when
    # redaction changed the prompt the candidate saw.
    BASELINE_AGAIN = "baseline_again"


@dataclass(frozen=True, slots=True)
class JudgeRecord:
    """One pair judged in both orders: the candidate (or B2) against a baseline answer."""

    event_id: str
    kind: ReplayKind  # candidate: C vs the reference; noise: B2 vs B1 (the noise floor)
    status: JudgeStatus
    judge_model: str
    reference: JudgeReference
    prompt_redacted: bool
    verdict: PairVerdict | None = None
    rationale: str | None = None  # the judge's, of both orders, short
    reference_chars: int | None = None
    other_chars: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    error_class: str | None = None
    error_message: str | None = None
