"""What the workers hand to the store."""

from __future__ import annotations

from dataclasses import dataclass

from shadowcanary.events import CapturedCall
from shadowcanary.judge.types import OutputFlags


@dataclass(frozen=True, slots=True)
class AssessedCapture:
    """A validated live call with what the judge said of its answer and what it cost."""

    event: CapturedCall
    flags: OutputFlags | None
    cost_usd: float | None
