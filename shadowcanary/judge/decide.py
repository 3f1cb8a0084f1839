"""``decide(plan, state, evidence, now)``: ADVANCE, HOLD, ROLLBACK or COMPLETE.

Pure and deterministic: the clock is ``now``, there is no randomness, and the inputs
and the Decision serialise to JSON, so ``DecisionInputs.from_json(row).decide()``
replays an audit row exactly.

The order of docs/judge.md's "decision each tick", with one deliberate refinement: checks
that make the numbers *unusable* (paused, overridden, invalid, no data) come first;
checks that only make it unsafe to *advance* (stale data, sample-ratio mismatch, a
flag that disagrees with the step) come after the rollback tests. Rolling back is
always safe, and the harm tests stay valid under a shifted split because they use the
observed share of requests per minute, not the flag's percentage.

1. paused / overridden / invalid or missing evidence -> HOLD
2. at the last step (100 %: no baseline left to compare) -> COMPLETE, or the watch
   when the plan has one (``phases.watch_decision``)
3. guardrails: canary errors certainly above the catastrophe limit -> ROLLBACK
4. harm: an act trigger with E >= 1/alpha_m (live triggers: this step's minutes) -> ROLLBACK
5. stale data, flag disagreeing with the step, sample-ratio mismatch -> HOLD
6. minimum exposure met and every act trigger certified -> ADVANCE, else HOLD
7. past the step's deadline, every HOLD escalates to a person.
Dry-run triggers are evaluated and recorded (and named in the reason) but never act.
Before the first step a plan with a ``shadow`` gate is decided by ``phases.gate_decision``.

Live triggers (on canary traffic) see the closed minutes of the current step only, at
their share of alpha spent across the judged steps (``triggers.step_alpha``): a step is
certified on its own evidence, and a regression that starts at 50 % meets a fresh test
instead of an e-process worn down by the healthy steps before it. Shadow triggers see
the whole rollout. docs/guarantees.md section 7 gives the accounting.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np

from shadowcanary.judge import sequential as seq
from shadowcanary.judge.evidence import (
    Bucket,
    Evidence,
    EvidenceTable,
    RolloutState,
    from_jsonable,
    to_jsonable,
)
from shadowcanary.judge.triggers import (
    TriggerContext,
    TriggerResult,
    Verdict,
    evaluate,
    is_live,
    step_alpha,
)
from shadowcanary.plan import RolloutPlan, TailLatencyTrigger, TriggerMode

BUCKET = timedelta(minutes=1)
DISPERSION_WINDOW = 1440  # minutes
# Guardrails roll back only on counts this improbable from a canary at the limit.
GUARDRAIL_P_VALUE = 1e-6


class DecisionKind(StrEnum):
    ADVANCE = "advance"
    HOLD = "hold"
    ROLLBACK = "rollback"
    COMPLETE = "complete"


@dataclass(frozen=True, slots=True)
class Check:
    """A sanity or guardrail check that is not a trigger."""

    name: str
    ok: bool
    detail: str
    statistic: float | None = None
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with the flag, why, and every number that led there."""

    kind: DecisionKind
    reason: str
    from_percent: int
    to_percent: int | None  # ADVANCE: next step; ROLLBACK: 0; COMPLETE: 100; HOLD: None
    decided_at: datetime
    escalate: bool = False
    triggers: tuple[TriggerResult, ...] = ()
    checks: tuple[Check, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        return from_jsonable(cls, data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Decision:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True, slots=True)
class DecisionInputs:
    """Everything ``decide`` reads: store it next to the Decision to replay it later."""

    plan: RolloutPlan
    state: RolloutState
    evidence: Evidence
    now: datetime

    def decide(self) -> Decision:
        return decide(self.plan, self.state, self.evidence, self.now)

    def to_json(self) -> str:
        return json.dumps(to_jsonable(self), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> DecisionInputs:
        return from_jsonable(cls, json.loads(text))


def slow_threshold_ms(plan: RolloutPlan, state: RolloutState) -> float | None:
    """The latency the controller must count ``slow`` requests against (None: not yet)."""
    tail = plan.triggers.p99_latency
    if state.baseline_p99_ms is None or not isinstance(tail, TailLatencyTrigger):
        return None
    return state.baseline_p99_ms + tail.margin_ms


def decide(plan: RolloutPlan, state: RolloutState, evidence: Evidence, now: datetime) -> Decision:
    """The judge's verdict for this tick (see the module docstring for the order)."""
    # The phases module builds on this one's Decision: imported here, not at the top.
    from shadowcanary.judge import phases

    if state.step_index < 0 and plan.shadow is not None:
        return phases.gate_decision(plan, state, evidence, now)
    hold = _Holder(plan, state, now)
    table = EvidenceTable.of(evidence.buckets)
    problems = _input_problems(plan, state, evidence, table, now)
    if problems:  # no deadline arithmetic here: the clocks themselves may be the problem
        reason = "inputs cannot be trusted: " + "; ".join(problems[:5])
        return hold.make(DecisionKind.HOLD, reason, None, escalate=True)
    exposure = plan.exposure_at(state.step_index)
    # Only closed minutes since the rollout started: an open bucket still changes.
    # Starts increase strictly (checked above), so every selection is a slice.
    last_closed = (now - BUCKET).timestamp()
    first, end = table.span(_minute(state.rollout_started_at).timestamp(), last_closed)
    closed_rows = np.arange(first, end)
    history = table.rows(slice(first, end))
    # The step's minutes: the one the flag changed in belongs to the new step.
    step_start = _minute(state.step_started_at)
    in_step = table.rows(slice(*table.span(step_start.timestamp(), last_closed)))
    results = _evaluate_triggers(
        plan, state, evidence, (in_step, history), exposure.min_events_per_arm
    )
    hold = replace(hold, triggers=results)
    # A person already holds these rollouts: no deadline escalation on top.
    if state.paused:
        return hold.make(DecisionKind.HOLD, "paused by an operator; resume to continue", None)
    if state.overridden:
        reason = "the flag was changed outside the controller (manual override); resume to continue"
        return hold.make(DecisionKind.HOLD, reason, None)
    if state.step_index == len(plan.steps) - 1 and plan.watch is not None:
        freshness = _freshness(plan, state, now)
        closed = tuple(evidence.buckets[i] for i in closed_rows)
        return phases.watch_decision(plan, state, evidence, now, closed, freshness, _guardrail)
    if state.step_index == len(plan.steps) - 1:
        return hold.make(DecisionKind.COMPLETE, "the candidate serves 100 % of users", 100)
    if not len(closed_rows):
        return hold("no complete minute of data since the rollout started")

    window_start = (now - plan.guardrails.window - BUCKET).timestamp()
    recent = tuple(
        evidence.buckets[i] for i in closed_rows[table.starts[closed_rows] > window_start]
    )
    guardrail = _guardrail(plan, recent, now)
    checks: tuple[Check, ...] = (guardrail,)
    if not guardrail.ok:
        return hold.make(DecisionKind.ROLLBACK, f"guardrail: {guardrail.detail}", 0, checks)
    harmful = [r for r in results if r.verdict is Verdict.HARM and r.mode is TriggerMode.ACT]
    if harmful:
        reason = "; ".join(f"{r.name}: {r.detail}" for r in harmful)
        return hold.make(DecisionKind.ROLLBACK, reason, 0, checks)

    settled = _minute(state.step_started_at) + plan.sample_ratio.grace
    settled_rows = table.rows(slice(*table.span(settled.timestamp(), last_closed)))
    checks += (
        _freshness(plan, state, now),
        _flag_agrees(state, settled_rows),
        _sample_ratio(plan, settled_rows),
    )
    failed = [c for c in checks if not c.ok]
    if failed:
        return hold(
            "; ".join(c.detail for c in failed),
            checks=checks,
            escalate=any(c.name != "freshness" for c in failed),
        )

    canary_requests = int(in_step.total("candidate.requests"))
    elapsed = now - state.step_started_at
    waiting = []
    if canary_requests < exposure.min_canary_requests:
        waiting.append(f"{canary_requests} of {exposure.min_canary_requests} canary requests")
    if elapsed < exposure.min_duration:
        waiting.append(f"{_minutes(elapsed)} of {_minutes(exposure.min_duration)} in this step")
    blocking = [r for r in results if r.blocks_advance]
    waiting.extend(f"{r.name} {r.verdict.value} ({r.detail})" for r in blocking)
    if waiting:
        return hold("waiting for " + "; ".join(waiting), checks=checks)
    next_percent = plan.steps[state.step_index + 1].percent
    return hold.make(
        DecisionKind.ADVANCE,
        f"minimum exposure met ({canary_requests} canary requests, {_minutes(elapsed)}) and "
        "every act trigger's upper bound on harm is below its margin",
        next_percent,
        checks,
    )


@dataclass(frozen=True, slots=True)
class _Holder:
    """Builds Decisions with the shared fields; calling it makes a HOLD."""

    plan: RolloutPlan
    state: RolloutState
    now: datetime
    triggers: tuple[TriggerResult, ...] = ()

    def make(
        self,
        kind: DecisionKind,
        reason: str,
        to_percent: int | None,
        checks: tuple[Check, ...] = (),
        escalate: bool = False,
    ) -> Decision:
        dry = [
            r.name
            for r in self.triggers
            if r.verdict is Verdict.HARM and r.mode is not TriggerMode.ACT
        ]
        if dry:
            reason += f" [dry-run, not acted on: {', '.join(dry)} would roll back]"
        return Decision(
            kind=kind,
            reason=reason,
            from_percent=self.state.step_percent,
            to_percent=to_percent,
            decided_at=self.now,
            escalate=escalate,
            triggers=self.triggers,
            checks=checks,
        )

    def __call__(
        self, reason: str, checks: tuple[Check, ...] = (), escalate: bool = False
    ) -> Decision:
        if 0 <= self.state.step_index < len(self.plan.steps):
            deadline = self.plan.exposure_at(self.state.step_index).deadline
            if self.now - self.state.step_started_at > deadline:
                reason = f"step deadline ({_minutes(deadline)}) passed: {reason}"
                escalate = True
        return self.make(DecisionKind.HOLD, reason, None, checks, escalate)


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:.0f} min"


def _input_problems(
    plan: RolloutPlan, state: RolloutState, evidence: Evidence, table: EvidenceTable, now: datetime
) -> list[str]:
    moments = {
        "now": now,
        "rollout_started_at": state.rollout_started_at,
        "step_started_at": state.step_started_at,
    }
    if state.last_data_at is not None:
        moments["last_data_at"] = state.last_data_at
    naive = [name for name, moment in moments.items() if moment.tzinfo is None]
    if naive:
        return [f"{', '.join(naive)} without a timezone"]
    problems = []
    if not 0 <= state.step_index < len(plan.steps):
        problems.append(f"step index {state.step_index} is not a step of the plan")
    elif plan.steps[state.step_index].percent != state.step_percent:
        problems.append(
            f"state says {state.step_percent} % but step {state.step_index} of the "
            f"plan is {plan.steps[state.step_index].percent} %"
        )
    if state.baseline_p99_ms is not None and not math.isfinite(state.baseline_p99_ms):
        problems.append(f"baseline p99 is {state.baseline_p99_ms}")
    return problems + evidence.problems(table)


def _evaluate_triggers(
    plan: RolloutPlan,
    state: RolloutState,
    evidence: Evidence,
    tables: tuple[EvidenceTable, EvidenceTable],
    min_events: int,
) -> tuple[TriggerResult, ...]:
    """Every enabled trigger; ``tables``: (this step's closed minutes, the rollout's)."""
    wanted = slow_threshold_ms(plan, state)
    # Clustering is measured over the last day of minutes: enough to see it, and a tick's
    # cost does not grow with the rollout's length.
    history = tables[1].last(DISPERSION_WINDOW)
    # A step number per closed bucket (a new one wherever the flag's percentage changes):
    # clustering is measured around each step's own rate ratio.
    steps = np.cumsum(np.abs(np.diff(history.column("canary_percent"), prepend=0.0)) > 0)
    return tuple(
        evaluate(
            name,
            config,
            TriggerContext(
                table=tables[0] if is_live(name) else tables[1],
                alpha=step_alpha(plan, name),
                certify_alpha=plan.certify_alpha,
                min_events=min_events,
                slow_threshold_ms=wanted,
                counted_threshold_ms=evidence.slow_threshold_ms,
                judge_routes=evidence.judge_routes,
                history=history,
                history_steps=steps.astype(np.float64),
            ),
        )
        for name, config in plan.triggers.enabled().items()
    )


def _guardrail(plan: RolloutPlan, recent: tuple[Bucket, ...], now: datetime) -> Check:
    """Roll back at once when the canary's recent error rate is certainly catastrophic.

    Over the guardrail window: P(X >= canary failures) for a canary failing at
    max(limit, baseline's rate) must be below 1e-6. A canary that fails like the
    baseline (a provider outage hits both arms) is not rolled back by this check.
    """
    limit = plan.guardrails.max_error_rate
    # ``recent``: the closed buckets that end inside the window (b.start + 1 min > now - window).
    cx = sum(b.candidate.failures for b in recent)
    cn = sum(b.candidate.requests for b in recent)
    bx = sum(b.baseline.failures for b in recent)
    bn = sum(b.baseline.requests for b in recent)
    rate = max(limit, seq.smoothed_rate(bx, bn)) if bn else limit
    p_value = seq.binomial_tail(cx, cn, rate) if cn and rate < 1 else 1.0
    detail = (
        f"canary failed {cx} of {cn} requests in the last "
        f"{_minutes(plan.guardrails.window)} against a catastrophe limit of "
        f"{100 * rate:.1f} % (p = {p_value:.2g}, limit {GUARDRAIL_P_VALUE:g})"
    )
    return Check(
        "guardrail_error_rate", p_value >= GUARDRAIL_P_VALUE, detail, p_value, GUARDRAIL_P_VALUE
    )


def _freshness(plan: RolloutPlan, state: RolloutState, now: datetime) -> Check:
    if state.last_data_at is None:
        return Check("freshness", False, "no data has been seen yet")
    age = now - state.last_data_at
    ok = age <= plan.stale_after
    return Check(
        "freshness",
        ok,
        f"newest data is {_minutes(age)} old (stale after {_minutes(plan.stale_after)})",
        age.total_seconds(),
        plan.stale_after.total_seconds(),
    )


def _flag_agrees(state: RolloutState, step_rows: EvidenceTable) -> Check:
    percents = step_rows.column("canary_percent")
    other = sorted({float(p) for p in np.unique(percents[percents != state.step_percent])})
    if other:
        return Check(
            "flag_percent",
            False,
            f"the flag reported {', '.join(f'{p:g}' for p in other)} % during a "
            f"{state.step_percent} % step; check the flag in Unleash",
        )
    return Check(
        "flag_percent", True, f"the flag reported {state.step_percent} % throughout the step"
    )


def _sample_ratio(plan: RolloutPlan, step_rows: EvidenceTable) -> Check:
    """Sample-ratio mismatch of the canary's share of requests against the flag's %."""
    config = plan.sample_ratio
    canary = step_rows.column("candidate.requests")
    baseline = step_rows.column("baseline.requests")
    share = step_rows.column("canary_percent") / 100.0
    log_e = seq.sample_ratio_log_e(canary, baseline, share, config.max_odds_ratio)
    total = canary.sum() + baseline.sum()
    observed = f"{100 * canary.sum() / total:.1f} %" if total else "n/a"
    ok = log_e < -math.log(config.alpha)
    detail = (
        f"canary share {observed} of {int(total)} requests vs flag {100 * share[-1]:.0f} %"
        if len(share)
        else "no requests in this step yet"
    )
    if not ok:
        detail = f"sample-ratio mismatch: {detail}; check that services evaluate the flag"
    return Check("sample_ratio", ok, detail, seq.e_value(log_e), 1.0 / config.alpha)
