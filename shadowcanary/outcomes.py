"""What happened after an answer: the outcome report a service files against an event id.

A service knows things about a call that no scorer can see: whether the user's task got
done, whether they regenerated the answer, gave it a thumbs down or asked for a person.
``OutcomeReport`` is that report, keyed by the ``event_id`` of the captured call (the
tapped OpenAI client's ``last_event_id()``, the gateway's ``x-shadowcanary-event-id``
response header). It travels like ``CapturedCall``: JSON in a Celery message, validated
again at every boundary (``parse_outcome``).

What a report says, field by field (each one optional, at least one present):

- ``task``: ``completed`` or ``abandoned`` -- the user's task, as the service defines it
  (a checkout paid, a ticket closed without reopening, a draft sent). This feeds the
  ``completion_rate`` trigger; it is *not* ``finish_reason == "length"``, which is the
  ``incomplete`` trigger (a truncated answer).
- ``feedback``: ``up`` or ``down`` (thumbs); ``retried``: the user retried or regenerated.
  A thumbs down or a retry counts as negative feedback (``negative_feedback`` trigger).
- ``escalated``: the user was handed to a person (``escalation_rate`` trigger).
- ``value``: any number the service cares about (order value, CSAT score), reported as
  a mean per arm; no trigger reads it.

Reports merge per event id: the first value reported for a field is kept (later ones
for the same field are duplicates and change nothing), and ``retried``/``escalated``
are true once any report says so. So a report delivered twice, or sent by a client
retry, counts once.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from shadowcanary.errors import InvalidEvent, PayloadTooLarge
from shadowcanary.events import Name

OUTCOME_SCHEMA_VERSION: Final = 1
# One report is a few hundred bytes; anything near this is not an outcome.
MAX_OUTCOME_BYTES: Final = 4_096
# A service's number, not an overflow: far beyond any order value or score.
MAX_VALUE: Final = 1e12

EventId = Annotated[str, StringConstraints(min_length=8, max_length=128, pattern=r"^[\w.:-]+$")]


class TaskOutcome(StrEnum):
    COMPLETED = "completed"
    ABANDONED = "abandoned"


class Feedback(StrEnum):
    UP = "up"
    DOWN = "down"


class OutcomeReport(BaseModel):
    """One report about one captured call (see the module docstring for the fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = OUTCOME_SCHEMA_VERSION
    event_id: EventId
    task: TaskOutcome | None = None
    feedback: Feedback | None = None
    retried: bool = False
    escalated: bool = False
    value: float | None = Field(default=None, ge=-MAX_VALUE, le=MAX_VALUE)
    reported_at: datetime
    # The service that reported it: set by the gateway from the caller's key; None from
    # an in-process tap (trusted like the events it emits).
    tenant: Name | None = None
    # The rollout the call belonged to, when the reporter knows it: checked against the
    # gateway key's rollouts, and names where an unknown event id was meant to go.
    rollout: Name | None = None

    @field_validator("reported_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a timezone (use UTC, e.g. '...Z')")
        return value.astimezone(UTC)

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("value must be a finite number")
        return value

    @model_validator(mode="after")
    def _says_something(self) -> OutcomeReport:
        if (
            self.task is None
            and self.feedback is None
            and not self.retried
            and not self.escalated
            and self.value is None
        ):
            raise ValueError(
                "says nothing: set at least one of task (completed/abandoned), "
                "feedback (up/down), retried, escalated or value"
            )
        return self


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "<outcome>"
        parts.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_outcome(raw: dict[str, Any], *, size: int) -> OutcomeReport:
    """Validate one outcome report from the wire (``size``: its JSON size in bytes).

    Raises:
        PayloadTooLarge: over ``MAX_OUTCOME_BYTES``.
        InvalidEvent: anything else wrong; the message names the field and why.
    """
    if size > MAX_OUTCOME_BYTES:
        raise PayloadTooLarge(
            f"outcome report is {size} bytes, over the {MAX_OUTCOME_BYTES}-byte limit",
            hint="an outcome is an event id and a few fields; send no prompt or answer text",
        )
    version = raw.get("schema_version", OUTCOME_SCHEMA_VERSION)
    if version != OUTCOME_SCHEMA_VERSION:
        raise InvalidEvent(
            f"outcome schema_version {version!r} is not supported "
            f"(this reader knows {OUTCOME_SCHEMA_VERSION})",
            hint="upgrade the reader or report with a matching shadowcanary version",
        )
    event_id = raw.get("event_id")
    prefix = f"outcome for {event_id[:128]!r}" if isinstance(event_id, str) else "outcome"
    try:
        return OutcomeReport.model_validate(raw)
    except ValidationError as exc:
        raise InvalidEvent(
            f"{prefix} is invalid: {_describe(exc)}",
            hint="see shadowcanary/outcomes.py for the OutcomeReport contract",
        ) from exc
