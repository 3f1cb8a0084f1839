"""The report's "User outcomes" section: what services reported after each arm's answers.

Per arm: calls with an outcome reported, completion rate (completed / tasks reported),
negative feedback (thumbs down or retried) and escalations per reported call, the mean
reported value, and **cost per completed task** = cost per request / completion rate
(each reported call is one attempt at its task, so an arm whose users abandon more pays
for more calls per completed task). Its monthly projection follows seed 004's cost
model (calls x tokens x price) at the observed traffic: today's completed tasks per
month (requests/day x 30 x the baseline's completion rate) at each arm's cost per
completed task. Below it, how the reports fared: joined, waiting for their capture,
unknown event ids and reports refused as another service's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shadowcanary.events import Arm
from shadowcanary.report import formatting as fmt
from shadowcanary.report.model import DAYS_PER_MONTH, CostProjection
from shadowcanary.store.outcomes import OutcomeSummary
from shadowcanary.store.totals import LiveTotals


@dataclass(frozen=True, slots=True)
class ArmOutcomes:
    arm: str
    model: str
    requests: int
    reported: int  # calls with any outcome reported
    tasks: int  # calls with a task outcome
    completion_rate: float | None
    negative_rate: float | None
    escalation_rate: float | None
    value_mean: float | None
    cost_per_completed_task_usd: float | None
    monthly_usd: float | None  # today's completed tasks per month at this arm's cost


@dataclass(frozen=True, slots=True)
class OutcomeSection:
    arms: tuple[ArmOutcomes, ...]
    completed_tasks_per_month: float | None
    summary: OutcomeSummary | None
    unknown_after_s: float


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def outcome_section(
    totals: Mapping[Arm, LiveTotals],
    cost: CostProjection,
    summary: OutcomeSummary | None,
    *,
    unknown_after_s: float,
) -> OutcomeSection:
    """The section's figures from the arms' rollup totals and the cost projection."""
    base = totals[Arm.BASELINE]
    per_day = cost.requests_per_day
    completed = (
        per_day * DAYS_PER_MONTH * base.completion_rate
        if per_day is not None and base.completion_rate is not None
        else None
    )
    arms = []
    for arm, arm_cost in ((Arm.BASELINE, cost.baseline), (Arm.CANDIDATE, cost.candidate)):
        t = totals[arm]
        rate, per_request = t.completion_rate, arm_cost.cost_per_request_usd
        per_task = per_request / rate if per_request is not None and rate else None
        arms.append(
            ArmOutcomes(
                arm=arm.value,
                model=arm_cost.model,
                requests=t.requests,
                reported=t.outcomes_reported,
                tasks=t.tasks_reported,
                completion_rate=rate,
                negative_rate=_ratio(t.outcomes_negative, t.outcomes_reported),
                escalation_rate=_ratio(t.outcomes_escalated, t.outcomes_reported),
                value_mean=_ratio(t.outcome_value_sum, t.outcome_value_n),
                cost_per_completed_task_usd=per_task,
                monthly_usd=None if completed is None or per_task is None else completed * per_task,
            )
        )
    return OutcomeSection(tuple(arms), completed, summary, unknown_after_s)


def outcome_markdown(section: OutcomeSection, cell: Callable[[object], str] = str) -> list[str]:
    """The section as Markdown lines (after the cost section)."""
    out = ["", "## User outcomes", ""]
    if not any(a.reported for a in section.arms):
        out.append(
            "_No outcomes reported: services report them with `tap.outcome(event_id, ...)` "
            "or `POST /v1/tap/outcomes` (the event id is `x-shadowcanary-event-id`)._"
        )
    else:
        out.append(
            "| arm | model | calls with outcome | completion rate | negative feedback | "
            "escalated | mean value | cost per completed task | monthly, today's tasks |"
        )
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for a in section.arms:
            out.append(
                f"| {a.arm} | {cell(a.model)} | {fmt.count(a.reported)} of {fmt.count(a.requests)} "
                f"| {fmt.percent(a.completion_rate)} ({fmt.count(a.tasks)} tasks) "
                f"| {fmt.percent(a.negative_rate)} | {fmt.percent(a.escalation_rate)} "
                f"| {fmt.number(a.value_mean, 2)} | {fmt.usd(a.cost_per_completed_task_usd)} "
                f"| {fmt.usd(a.monthly_usd)} |"
            )
        out += [
            "",
            "_Cost per completed task_ = cost per request / completion rate (one call per "
            "attempt at a task). _Monthly_: today's completed tasks "
            f"({fmt.number(section.completed_tasks_per_month, 0)} per month: requests/day x "
            f"{DAYS_PER_MONTH} x the baseline's completion rate) at each arm's cost per "
            "completed task.",
        ]
    s = section.summary
    if s is not None and s.event_ids:
        out += [
            "",
            f"Reports: {fmt.count(s.reports)} about {fmt.count(s.event_ids)} calls; "
            f"{fmt.count(s.joined)} joined to their call, {fmt.count(s.pending)} waiting for "
            f"it, **{fmt.count(s.unknown)} unknown event ids** (no capture after "
            f"{section.unknown_after_s:g} s), {fmt.count(s.refused)} refused (about another "
            "service's call).",
        ]
    return out
