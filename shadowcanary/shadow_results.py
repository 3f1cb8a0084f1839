"""What a replay produces and what the store keeps of it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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
