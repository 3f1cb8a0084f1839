"""Which phase a rollout is in, in words: for ``rollout status``, the runbook and the report.

A rollout's life (docs/phases.md): shadow gate (flag at 0 %, shadow evidence only) ->
steps -> watch (100 %, triggers armed, the baseline kept warm) -> complete. The phase
follows from the record and its plan; what the phase waits for is the newest decision's
reason (the gate's reads "shadow gate: 412/640 comparisons, 3 h of 7 d, quality
certified, shadow_invalid_json waiting (inconclusive)").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shadowcanary.rollout_records import RolloutRecord, RolloutStatus


@dataclass(frozen=True, slots=True)
class PhaseView:
    phase: str  # shadow_gate | step | watch | complete | rolled_back | aborted
    headline: str
    waiting: str | None  # what the phase waits for, from the newest decision
    decommission: str  # when the baseline model can be turned off
    gate_rule: str = ""  # the plan's gate, in words
    watch_rule: str = ""  # the plan's watch, in words


def phase_view(record: RolloutRecord, last_reason: str | None) -> PhaseView:
    """The phase of ``record``; ``last_reason`` is the newest judge decision's reason."""
    view = _phase(record, last_reason)
    plan = record.plan
    gate_rule = "none in the plan: users see the candidate at the first step"
    if plan.shadow is not None:
        gate = plan.shadow
        gate_rule = (
            f"at least {gate.min_comparisons} comparisons"
            + (f", {gate.min_judged_pairs} judged pairs" if gate.min_judged_pairs else "")
            + f" and {span(gate.min_duration)} of shadow traffic, every act-mode shadow "
            f"trigger certified (escalates after {span(gate.deadline)})"
        )
    watch_rule = "none in the plan: the rollout completes on reaching 100 %"
    if plan.watch is not None:
        watch_rule = (
            f"{span(plan.watch.duration)}, triggers armed, {plan.baseline} kept warm by "
            f"replays (at least {plan.watch.min_baseline_replays})"
        )
    return replace(view, gate_rule=gate_rule, watch_rule=watch_rule)


def span(duration: timedelta) -> str:
    """'7 d', '24 h', '90 min', '30 s': a plan's durations as an SRE writes them."""
    seconds = duration.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size and seconds % size == 0:  # 24 h stays 24 h, 2 d is 2 d
            return f"{seconds / size:.0f} {unit}"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _phase(record: RolloutRecord, last_reason: str | None) -> PhaseView:
    plan, status = record.plan, record.status
    baseline, candidate = plan.baseline, plan.candidate
    keep = f"no: {baseline} is the rollback target until the rollout completes"
    if status is RolloutStatus.ROLLED_BACK:
        return PhaseView("rolled_back", "rolled back", None, f"no: {baseline} serves every user")
    if status is RolloutStatus.ABORTED:
        return PhaseView("aborted", "aborted", None, keep.replace("completes", "is done"))
    if status is RolloutStatus.COMPLETED:
        if plan.watch is None:
            note = "yes; this plan had no watch, so nothing proved a late rollback would work"
        else:
            note = f"yes: the watch passed with {baseline} healthy and warm"
        return PhaseView("complete", f"complete: {candidate} serves 100 %", None, note)
    if record.step_index < 0:
        if plan.shadow is None:
            return PhaseView("step", "before the first step", last_reason, keep)
        gate = plan.shadow
        headline = (
            f"shadow gate: no user sees {candidate}; it reaches {plan.steps[0].percent} % "
            f"once every act-mode shadow trigger is certified, with at least "
            f"{gate.min_comparisons} comparisons"
            + (f", {gate.min_judged_pairs} judged pairs" if gate.min_judged_pairs else "")
            + f" and {span(gate.min_duration)} of shadow traffic"
        )
        waiting = last_reason if last_reason and last_reason.startswith("shadow gate") else None
        return PhaseView("shadow_gate", headline, waiting, keep)
    last = len(plan.steps) - 1
    if record.step_index == last and plan.watch is not None:
        ends = record.step_started_at + plan.watch.duration
        headline = (
            f"watch: {candidate} serves 100 %; its triggers stay armed and {baseline} is kept "
            f"warm by replays until at least {_when(ends)}"
        )
        decommission = (
            f"not yet: not before {_when(ends)} and the rollout's COMPLETE entry; until then "
            f"{baseline} is the rollback target"
        )
        watching = last_reason is not None and last_reason.startswith(("watch", "rollback"))
        waiting = last_reason if watching else None
        return PhaseView("watch", headline, waiting, decommission)
    percent = plan.steps[record.step_index].percent
    headline = f"step {record.step_index + 1} of {len(plan.steps)} ({percent} %)"
    return PhaseView("step", headline, None, keep)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()
