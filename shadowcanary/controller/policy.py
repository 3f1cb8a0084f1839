"""The controller's small pure policies, kept apart from the tick's I/O so they are tested alone.

- ``reconcile``: the flag disagrees with the record: a manual override, or a change the
  controller itself made and did not get to record (its intent entry is the newest)?
- ``should_record_hold``: a HOLD goes into the audit log when its shape changes (which
  checks fail, which verdicts) or every ``HOLD_AUDIT_EVERY``, not on every tick.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from shadowcanary.plan import RolloutPlan
from shadowcanary.rollout_records import AuditAction, AuditEntry, RolloutRecord

if TYPE_CHECKING:  # `rollout status` shows intents without loading the judge's statistics
    from shadowcanary.judge.decide import Decision

# A HOLD whose shape is unchanged is written to the audit log at most this often: a
# tick every 10 s with the full evidence would grow the log by gigabytes a day.
HOLD_AUDIT_EVERY = timedelta(minutes=5)
CONTROLLER_ACTOR = "controller"


@dataclass(slots=True)
class TickMemory:
    """What one controller remembers about a rollout between ticks (not durable)."""

    record: RolloutRecord | None = None  # last read: its webhooks, while Postgres is down
    down_since: dict[str, datetime] = field(default_factory=dict)  # service -> first failure
    hold_signature: tuple[Any, ...] | None = None
    hold_recorded_at: datetime | None = None
    escalated: tuple[int, datetime] | None = None  # (step_index, step_started_at) escalated


class Sync(StrEnum):
    IN_SYNC = "in_sync"
    RECOVER = "recover"  # the flag reached a target the controller intended, unrecorded
    OVERRIDE = "override"


def controller_actor(instance: str | None = None) -> str:
    """The audit actor of a controller process: ``controller@host:pid``.

    Every instance shares the ``controller`` prefix, so a standby recognises the
    intent entries of the controller it took over from.
    """
    return CONTROLLER_ACTOR if instance is None else f"{CONTROLLER_ACTOR}@{instance}"


def is_controller(actor: str) -> bool:
    return actor == CONTROLLER_ACTOR or actor.startswith(CONTROLLER_ACTOR + "@")


def pending_intent(history: list[AuditEntry]) -> AuditEntry | None:
    """A controller's intent entry, if it is the newest entry that is not an ALERT.

    ``history`` is newest first. An intent is written right before a flag change and
    is followed by the confirming entry; when it is still the newest entry, the
    controller stopped between the two.
    """
    for entry in history:
        if entry.action is AuditAction.ALERT:
            continue
        return entry if is_intent(entry) else None
    return None


def is_intent(entry: AuditEntry) -> bool:
    """An entry a controller writes before changing the flag: a target, no percentage yet."""
    target = (entry.decision or {}).get("to_percent")
    return is_controller(entry.actor) and entry.to_percent is None and isinstance(target, int)


def reconcile(record: RolloutRecord, observed: int, intent: AuditEntry | None) -> Sync:
    """Does the flag agree with the record, and if not, whose change is it?"""
    if observed == record.percent:
        return Sync.IN_SYNC
    if intent is not None and (intent.decision or {}).get("to_percent") == observed:
        return Sync.RECOVER
    return Sync.OVERRIDE


def hold_signature(decision: Decision) -> tuple[Any, ...]:
    """What makes a HOLD worth a new audit entry: which checks fail, which verdicts."""
    return (
        decision.kind.value,
        decision.escalate,
        tuple(sorted(c.name for c in decision.checks if not c.ok)),
        tuple((t.name, t.verdict.value) for t in decision.triggers),
        decision.reason.split(":", 1)[0] if not decision.triggers else "",
    )


def should_record_hold(decision: Decision, memory: TickMemory, now: datetime) -> bool:
    if memory.hold_signature != hold_signature(decision) or memory.hold_recorded_at is None:
        return True
    return now - memory.hold_recorded_at >= HOLD_AUDIT_EVERY


def step_of(plan: RolloutPlan, percent: int) -> int | None:
    return plan.step_percents.index(percent) if percent in plan.step_percents else None
