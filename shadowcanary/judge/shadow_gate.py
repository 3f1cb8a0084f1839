"""The shadow gate: before the first step, no user sees the candidate until shadow evidence
certifies it (docs/phases.md).

Pure like ``decide``: ``decide(plan, state, evidence, now)`` calls ``gate`` while the
rollout is before its first step and the plan has a ``shadow`` section, so an audit
row of the gate replays exactly as any other decision.

The gate reads the shadow columns only (live traffic is all on the baseline: the flag
is at 0 %). It evaluates the plan's shadow triggers with the same ``evaluate`` every
step uses, on the closed minutes since the rollout started, so the e-processes it
starts simply carry on into the first step:

- an act-mode shadow trigger with a verdict of harm -> ROLLBACK (the flag stays at 0 %:
  the candidate is never exposed);
- minimum comparisons, judged pairs and duration met, and every act-mode shadow
  trigger certified -> ADVANCE to the first step;
- otherwise HOLD, saying what the gate is waiting for; past its deadline the HOLD
  escalates to a person.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from shadowcanary.judge import sequential as seq
from shadowcanary.judge.evidence import Evidence, EvidenceTable, RolloutState
from shadowcanary.judge.triggers import (
    TriggerContext,
    TriggerResult,
    Verdict,
    evaluate,
    trigger_alpha,
)
from shadowcanary.plan import RolloutPlan, ShadowGate, TriggerMode

# Triggers whose evidence is shadow replays only; they can judge before anyone is exposed.
SHADOW_TRIGGERS = ("quality", "shadow_invalid_json", "judge_score")
_MINUTE = timedelta(minutes=1)
# A gate this old without a single pair says where pairs come from.
_NO_PAIRS_HINT_AFTER = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class GateProgress:
    """Where the gate stands: what status and the runbook print."""

    comparisons: int  # noise-floor pairs D = sim(C, B1) - sim(B2, B1)
    min_comparisons: int
    judged_pairs: int
    min_judged_pairs: int
    elapsed: timedelta
    min_duration: timedelta
    certified: tuple[str, ...]  # act-mode shadow triggers that certified
    waiting: tuple[str, ...]  # act-mode shadow triggers not certified yet (with their verdict)
    harmful: tuple[str, ...]  # act-mode shadow triggers that found harm

    @property
    def minimums_met(self) -> bool:
        return (
            self.comparisons >= self.min_comparisons
            and self.judged_pairs >= self.min_judged_pairs
            and self.elapsed >= self.min_duration
        )

    @property
    def passed(self) -> bool:
        return self.minimums_met and not self.waiting and not self.harmful

    def summary(self) -> str:
        """One line: 'shadow gate: 412/600 comparisons, 2 h of 7 d, quality certified, ...'."""
        parts = [f"{self.comparisons}/{self.min_comparisons} comparisons"]
        if self.comparisons == 0 and self.elapsed >= _NO_PAIRS_HINT_AFTER:
            parts[0] += (
                " (no noise-floor pairs yet: are workers replaying this rollout's baseline "
                "calls, with SHADOWCANARY_REPLAY__NOISE_FLOOR_RATE above 0?)"
            )
        if self.min_judged_pairs:
            parts.append(f"{self.judged_pairs}/{self.min_judged_pairs} judged pairs")
        parts.append(f"{_span(self.elapsed)} of {_span(self.min_duration)}")
        parts += [f"{name} certified" for name in self.certified]
        parts += [f"{name} waiting" for name in self.waiting]
        parts += [f"{name} HARM" for name in self.harmful]
        return "shadow gate: " + ", ".join(parts)


def shadow_results(
    plan: RolloutPlan, table: EvidenceTable, min_events: int
) -> tuple[TriggerResult, ...]:
    """The enabled shadow triggers' verdicts on ``table`` (closed minutes)."""
    return tuple(
        evaluate(
            name,
            config,
            TriggerContext(
                table=table,
                alpha=trigger_alpha(plan, name),
                certify_alpha=plan.certify_alpha,
                min_events=min_events,
                slow_threshold_ms=None,
                counted_threshold_ms=None,
            ),
        )
        for name, config in plan.triggers.enabled().items()
        if name in SHADOW_TRIGGERS
    )


def progress(
    gate: ShadowGate,
    results: tuple[TriggerResult, ...],
    table: EvidenceTable,
    elapsed: timedelta,
) -> GateProgress:
    """The gate's counts and the act-mode shadow triggers sorted by where they stand."""
    act = [r for r in results if r.mode is TriggerMode.ACT]
    return GateProgress(
        comparisons=int(table.total("shadow.similarity_diff.n")),
        min_comparisons=gate.min_comparisons,
        judged_pairs=int(table.total("shadow.judge_diff.n")),
        min_judged_pairs=gate.min_judged_pairs,
        elapsed=max(elapsed, timedelta(0)),
        min_duration=gate.min_duration,
        certified=tuple(r.name for r in act if r.verdict is Verdict.CERTIFIED),
        waiting=tuple(
            f"{r.name} ({r.verdict.value})" for r in act if _gate_blocks(r) and not _harm(r)
        ),
        harmful=tuple(r.name for r in act if _harm(r)),
    )


def closed_table(state: RolloutState, evidence: Evidence, now: datetime) -> EvidenceTable:
    """The closed minutes since the rollout started, as ``decide`` counts them."""
    started = state.rollout_started_at.replace(second=0, microsecond=0)
    keep = [started <= b.start and b.start + _MINUTE <= now for b in evidence.buckets]
    return EvidenceTable.of(evidence.buckets).rows(np.array(keep, dtype=bool))


def pairs_to_certify(margin: float, sd: float, certify_alpha: float, true_drop: float = 0.0) -> int:
    """Pairs after which a candidate whose true drop is ``true_drop`` certifies the margin.

    The quality trigger certifies when drop + r(n) < margin, with r the half-width of the
    normal-mixture confidence sequence (tau = margin) at V = sd^2 / n. r shrinks with n,
    so the smallest such n is found by bisection; this is how the shadow gate's default
    minimum comparisons was sized (margin 0.05, sd 0.2, certify_alpha 0.05, a true
    drop of half the margin: 637, rounded up to 640).
    """
    if not 0 <= true_drop < margin:
        raise ValueError(f"true_drop {true_drop} must be in [0, margin {margin})")

    def certifies(n: int) -> bool:
        return true_drop + seq.mixture_radius(sd * sd / n, margin, certify_alpha) < margin

    low, high = 1, 2
    while not certifies(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if certifies(middle) else (middle, high)
    return high


def _harm(result: TriggerResult) -> bool:
    return result.verdict is Verdict.HARM


def _gate_blocks(result: TriggerResult) -> bool:
    """Not certified. A quality trigger with no pairs at all is not 'not applicable' here:
    the gate exists to see them (a rate with no JSON traffic is)."""
    if result.verdict is Verdict.NOT_APPLICABLE:
        return result.kind == "quality"
    return result.verdict is not Verdict.CERTIFIED


def _span(span: timedelta) -> str:
    seconds = span.total_seconds()
    if seconds >= 86400 and math.isclose(seconds % 86400, 0):
        return f"{seconds / 86400:.0f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds < 120:  # "1 min of 1 min" while 59 s have passed would read as done
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"
