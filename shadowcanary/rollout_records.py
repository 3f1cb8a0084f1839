"""What the controller keeps per rollout: its state and its audit log entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from shadowcanary.plan import RolloutPlan

if TYPE_CHECKING:  # the judge's evidence types bring NumPy: `rollout status` needs neither
    from shadowcanary.judge.evidence import RolloutState


class RolloutStatus(StrEnum):
    RUNNING = "running"  # the controller acts on every tick
    PAUSED = "paused"  # an operator paused it; decisions are recorded, never applied
    OVERRIDDEN = "overridden"  # someone changed the flag outside the controller
    ROLLED_BACK = "rolled_back"  # flag at 0 %: every user on the baseline
    COMPLETED = "completed"  # flag at 100 %: every user on the candidate
    ABORTED = "aborted"  # an operator stopped it; the flag is left where it was

    @property
    def active(self) -> bool:
        """Still owned by the controller (a finished rollout's name may be started again)."""
        return self in ACTIVE_STATUSES


ACTIVE_STATUSES = frozenset({RolloutStatus.RUNNING, RolloutStatus.PAUSED, RolloutStatus.OVERRIDDEN})


class AuditAction(StrEnum):
    START = "start"
    ADVANCE = "advance"
    HOLD = "hold"
    ROLLBACK = "rollback"
    COMPLETE = "complete"
    PAUSE = "pause"
    RESUME = "resume"
    PROMOTE = "promote"
    ABORT = "abort"
    MANUAL_OVERRIDE = "manual_override"
    ESCALATE = "escalate"
    ALERT = "alert"


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """One rollout as the controller last wrote it."""

    name: str
    plan: RolloutPlan
    status: RolloutStatus
    step_index: int  # index into plan.steps; -1 before the first step
    percent: int  # what the controller last set on the flag
    started_at: datetime
    step_started_at: datetime
    updated_at: datetime
    # Frozen from pre-canary baseline traffic (docs/judge.md, tail latency); None until then.
    baseline_p99_ms: float | None
    version: int  # optimistic concurrency: a save must name the version it read

    def judge_state(self, last_data_at: datetime | None) -> RolloutState:
        """What ``judge.decide`` needs to know about this rollout.

        ``step_percent`` is what the controller last set, not the plan's step
        percentage: when the two disagree the judge holds, which is the point.
        """
        from shadowcanary.judge.evidence import RolloutState

        return RolloutState(
            step_index=self.step_index,
            step_percent=self.percent,
            rollout_started_at=self.started_at,
            step_started_at=self.step_started_at,
            baseline_p99_ms=self.baseline_p99_ms,
            last_data_at=last_data_at,
            paused=self.status is RolloutStatus.PAUSED,
            overridden=self.status is RolloutStatus.OVERRIDDEN,
        )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of a rollout's audit log; ``id`` is None until stored.

    ``decision`` and ``inputs`` are stored as JSONB, which keeps numbers as exact
    decimals: a float such as 1.5e300 reads back as the int of the same value, which
    ``Decision.from_dict`` / ``DecisionInputs.from_json`` turn back into that float.
    """

    id: int | None
    at: datetime
    rollout: str
    actor: str  # "controller" or "cli:<user>"
    action: AuditAction
    from_percent: int | None
    # The flag's percentage after this entry, when it was set or seen changed (None: untouched).
    to_percent: int | None
    reason: str
    decision: dict[str, Any] | None = None  # Decision.to_dict()
    # DecisionInputs as JSON (json.loads(inputs.to_json())): recomputes the decision exactly.
    inputs: dict[str, Any] | None = None
