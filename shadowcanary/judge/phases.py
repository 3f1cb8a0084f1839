"""The decisions of the two phases around the steps: the shadow gate and the watch.

``decide`` hands over to these (docs/phases.md):

- **shadow gate** (before the first step, plan ``shadow``): the candidate only gets
  shadow traffic. ADVANCE to the first step once the gate's minimums are met and every
  act-mode shadow trigger certified; ROLLBACK when one finds harm (nobody was exposed).
- **watch** (at 100 %, plan ``watch``): instead of completing at once, the candidate's
  triggers stay armed for ``watch.duration`` while a sample of its live calls is
  replayed to the baseline model, the rollback target. A late regression rolls back; a
  rollback target that fails or is slow is an alert (HOLD, escalated), never a rollback.
  COMPLETE once the watch lasted its duration with enough rollback-target replays.

Pure: the clock is ``now``, so a phase decision replays from its audit row like any other.

Watch tests and their false-alarm budget. The watch starts its own e-processes on the
minutes since 100 % (evidence since the start would dilute a late regression), with
``watch.alpha`` split in two: half for the armed candidate triggers (by their
alpha shares), a quarter each for the rollback target's error rate and latency. So
the watch adds at most ``watch.alpha`` (default 0.001) to the plan's false-rollback
budget. Armed during the watch: the guardrail, ``error_rate`` (the live candidate
against the rollback target's replays of the same calls: the concurrent comparison)
and ``p99_latency`` (against the threshold frozen before the canary). The others
need a live baseline arm, which no longer exists at 100 %.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from shadowcanary.judge import sequential as seq
from shadowcanary.judge.decide import (
    Check,
    Decision,
    DecisionKind,
    slow_threshold_ms,
)
from shadowcanary.judge.evidence import (
    ArmCounts,
    Bucket,
    Evidence,
    EvidenceTable,
    RolloutState,
)
from shadowcanary.judge.shadow_gate import closed_table, progress, shadow_results
from shadowcanary.judge.triggers import (
    QUALITY_BURN_IN,
    TriggerContext,
    TriggerResult,
    Verdict,
    evaluate,
)
from shadowcanary.plan import RolloutPlan, TriggerMode, Watch

# Candidate triggers that can still judge at 100 % (see the module docstring).
WATCH_ARMED = ("error_rate", "p99_latency")
ROLLBACK_TARGET_UNHEALTHY = "rollback target unhealthy"


def gate_decision(
    plan: RolloutPlan, state: RolloutState, evidence: Evidence, now: datetime
) -> Decision:
    """The shadow gate's verdict for this tick (the flag is at 0 %)."""
    assert plan.shadow is not None  # decide() only calls this for a plan with a gate
    gate = plan.shadow

    def make(
        kind: DecisionKind,
        reason: str,
        to: int | None,
        triggers: tuple[TriggerResult, ...] = (),
        escalate: bool = False,
    ) -> Decision:
        return Decision(kind, reason, state.step_percent, to, now, escalate, triggers)

    problems = _gate_input_problems(state, evidence, now)
    if problems:
        reason = "inputs cannot be trusted: " + "; ".join(problems[:5])
        return make(DecisionKind.HOLD, reason, None, escalate=True)
    table = closed_table(state, evidence, now)
    min_events = plan.exposure_at(0).min_events_per_arm
    results = shadow_results(plan, table, min_events)
    if state.paused:
        return make(DecisionKind.HOLD, "paused by an operator; resume to continue", None)
    if state.overridden:
        reason = "the flag was changed outside the controller (manual override); resume to continue"
        return make(DecisionKind.HOLD, reason, None, triggers=results)
    where = progress(gate, results, table, now - state.rollout_started_at)
    if where.harmful:
        harmful = [r for r in results if r.name in where.harmful]
        reason = "shadow gate: the candidate was never exposed; " + "; ".join(
            f"{r.name}: {r.detail}" for r in harmful
        )
        return make(DecisionKind.ROLLBACK, reason, 0, triggers=results)
    reason = where.summary() + _dry_run_note(results)
    if where.passed:
        return make(
            DecisionKind.ADVANCE,
            f"{reason}: passed, every act shadow trigger certified; exposing the candidate",
            plan.steps[0].percent,
            triggers=results,
        )
    late = now - state.rollout_started_at > gate.deadline
    if late:
        reason = f"shadow gate deadline ({gate.deadline}) passed: {reason}"
    return make(DecisionKind.HOLD, reason, None, triggers=results, escalate=late)


def watch_decision(
    plan: RolloutPlan,
    state: RolloutState,
    evidence: Evidence,
    now: datetime,
    closed: tuple[Bucket, ...],
    freshness: Check,
    guardrail_of: Callable[[RolloutPlan, tuple[Bucket, ...], datetime], Check],
) -> Decision:
    """The watch's verdict at 100 % (called by ``decide`` with its guardrail function)."""
    assert plan.watch is not None  # decide() only calls this for a plan with a watch
    watch = plan.watch
    since = state.step_started_at.replace(second=0, microsecond=0)
    in_watch = tuple(b for b in closed if b.start >= since)
    guardrail = guardrail_of(plan, in_watch, now)
    armed = _armed_results(plan, state, evidence, in_watch)
    health = _target_health(watch, EvidenceTable.of(in_watch), plan.baseline)
    checks = (guardrail, freshness, *health)

    def make(kind: DecisionKind, reason: str, to: int | None, escalate: bool = False) -> Decision:
        return Decision(
            kind, reason, state.step_percent, to, now, escalate, triggers=armed, checks=checks
        )

    if not guardrail.ok:
        return make(DecisionKind.ROLLBACK, f"watch: guardrail: {guardrail.detail}", 0)
    harmful = [r for r in armed if r.verdict is Verdict.HARM and r.mode is TriggerMode.ACT]
    if harmful:
        reason = "late regression during the watch: " + "; ".join(
            f"{r.name}: {r.detail}" for r in harmful
        )
        return make(DecisionKind.ROLLBACK, reason, 0)
    sick = [c for c in health if not c.ok]
    if sick:
        reason = (
            f"{ROLLBACK_TARGET_UNHEALTHY}: " + "; ".join(c.detail for c in sick) + f". The "
            f"candidate stays at 100 %; a rollback now would send users to a failing "
            f"{plan.baseline}. Fix or replace the baseline deployment before relying on it"
        )
        return make(DecisionKind.HOLD, reason, None, escalate=True)
    elapsed = now - state.step_started_at
    replays = sum(b.shadow.rollback_replays for b in in_watch)
    waiting = []
    if elapsed < watch.duration:
        waiting.append(f"{_minutes(elapsed)} of {_minutes(watch.duration)}")
    if replays < watch.min_baseline_replays:
        waiting.append(
            f"{replays} of {watch.min_baseline_replays} replays to {plan.baseline} "
            "(SHADOWCANARY_REPLAY__ROLLBACK_TARGET_RATE sets the share of live calls replayed)"
        )
    if not freshness.ok:
        waiting.append(freshness.detail)
    armed_note = _dry_run_note(armed)
    if waiting:
        reason = "watch: triggers armed; waiting for " + "; ".join(waiting)
        return make(DecisionKind.HOLD, reason + armed_note, None)
    return make(
        DecisionKind.COMPLETE,
        f"watch passed ({_minutes(elapsed)}, {replays} replays to {plan.baseline}, no late "
        f"regression): the candidate serves 100 % of users; {plan.baseline} may be "
        f"decommissioned{armed_note}",
        100,
    )


def _armed_results(
    plan: RolloutPlan, state: RolloutState, evidence: Evidence, in_watch: tuple[Bucket, ...]
) -> tuple[TriggerResult, ...]:
    """The armed candidate triggers on the watch's minutes, the rollback target as baseline."""
    assert plan.watch is not None
    compared = EvidenceTable.of(
        tuple(
            replace(
                b,
                baseline=ArmCounts(
                    requests=b.shadow.rollback_replays, failures=b.shadow.rollback_failed
                ),
            )
            for b in in_watch
        )
    )
    enabled = {n: c for n, c in plan.triggers.enabled().items() if n in WATCH_ARMED}
    shares = sum(c.alpha_share for c in enabled.values())
    return tuple(
        evaluate(
            name,
            config,
            TriggerContext(
                table=compared,
                alpha=plan.watch.alpha / 2 * config.alpha_share / shares,
                certify_alpha=plan.certify_alpha,
                min_events=plan.exposure_at(len(plan.steps) - 1).min_events_per_arm,
                slow_threshold_ms=slow_threshold_ms(plan, state),
                counted_threshold_ms=evidence.slow_threshold_ms,
            ),
        )
        for name, config in enabled.items()
    )


def _target_health(watch: Watch, table: EvidenceTable, baseline: str) -> tuple[Check, Check]:
    """The rollback target's error rate and latency, each an anytime-valid test of its own."""
    alpha = watch.alpha / 4
    threshold = 1.0 / alpha
    failed = int(table.total("shadow.rollback_failed"))
    replays = int(table.total("shadow.rollback_replays"))
    limit = watch.baseline_max_error_rate
    log_e = seq.rate_log_e(failed, replays, limit)
    rate = f"{100 * failed / replays:.1f} %" if replays else "n/a"
    errors = Check(
        "rollback_target_errors",
        log_e < -math.log(alpha),
        f"{baseline} failed {failed} of {replays} replays ({rate}) against a limit of "
        f"{100 * limit:g} % (E={seq.e_value(log_e):.3g} vs {threshold:.3g})",
        seq.e_value(log_e),
        threshold,
    )
    delta = table.moments("shadow.rollback_latency_delta_ms")
    margin = watch.baseline_latency_margin_ms
    log_lambda = 0.0
    if delta.n >= QUALITY_BURN_IN and delta.mean is not None:
        variance = (delta.variance or 0.0) / delta.n
        log_lambda = seq.msprt_one_sided_log_lambda(delta.mean, variance, margin, margin)
    mean = "n/a" if delta.mean is None else f"{delta.mean:+.0f} ms"
    latency = Check(
        "rollback_target_latency",
        log_lambda < -math.log(alpha),
        f"{baseline} answered {mean} slower than the live candidate over {delta.n} replays, "
        f"margin {margin:g} ms (Lambda={seq.e_value(log_lambda):.3g} vs {threshold:.3g})",
        seq.e_value(log_lambda),
        threshold,
    )
    return errors, latency


def _gate_input_problems(state: RolloutState, evidence: Evidence, now: datetime) -> list[str]:
    moments = {"now": now, "rollout_started_at": state.rollout_started_at}
    naive = [name for name, moment in moments.items() if moment.tzinfo is None]
    if naive:
        return [f"{', '.join(naive)} without a timezone"]
    problems = []
    if state.step_percent != 0:
        problems.append(f"state says {state.step_percent} % before the first step")
    return problems + evidence.problems()


def _dry_run_note(results: tuple[TriggerResult, ...]) -> str:
    dry = [r.name for r in results if r.verdict is Verdict.HARM and r.mode is not TriggerMode.ACT]
    return f" [dry-run, not acted on: {', '.join(dry)} would roll back]" if dry else ""


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:.0f} min"
