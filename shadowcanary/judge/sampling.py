"""Adaptive replay sampling: how much shadow traffic the next decision needs (pure).

Every baseline answer is replayed while the shadow evidence is still deciding. Once
every act-mode shadow trigger is certified for the current step, and none is near its
margin, a maintenance share keeps the statistics moving at a fraction of the cost.
The controller publishes the rate after each decision; the workers' ingest applies it
(``SHADOWCANARY`` Redis key ``replay_rate:<rollout>``, missing means every answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shadowcanary.judge.decide import Decision, DecisionKind
from shadowcanary.judge.evidence import RolloutState
from shadowcanary.judge.shadow_gate import SHADOW_TRIGGERS
from shadowcanary.judge.triggers import Verdict
from shadowcanary.plan import RolloutPlan, TriggerMode

FULL_RATE = 1.0


@dataclass(frozen=True, slots=True)
class ReplayRate:
    rate: float  # share of the rollout's baseline answers to replay, 0 < rate <= 1
    reason: str


def replay_rate(
    plan: RolloutPlan, state: RolloutState, decision: Decision, now: datetime
) -> ReplayRate:
    """The replay share after ``decision`` (for the minutes until the next one)."""
    sampling = plan.replay_sampling
    if sampling is None:
        return ReplayRate(FULL_RATE, "adaptive sampling is off in the plan")
    if decision.kind is not DecisionKind.HOLD:
        return ReplayRate(FULL_RATE, f"{decision.kind.value}: a new step starts at full rate")
    if now - state.step_started_at < sampling.step_warmup:
        return ReplayRate(FULL_RATE, "the step is younger than its warm-up")
    shadow = [
        r for r in decision.triggers if r.name in SHADOW_TRIGGERS and r.mode is TriggerMode.ACT
    ]
    if not shadow:
        return ReplayRate(FULL_RATE, "no act-mode shadow trigger to certify")
    deciding = [r.name for r in shadow if r.verdict is not Verdict.CERTIFIED]
    if deciding:
        return ReplayRate(FULL_RATE, f"not certified yet: {', '.join(deciding)}")
    near = [
        r.name for r in shadow if r.upper is not None and r.upper >= sampling.near_margin * r.margin
    ]
    if near:
        return ReplayRate(FULL_RATE, f"near the margin: {', '.join(near)}")
    names = ", ".join(r.name for r in shadow)
    return ReplayRate(sampling.maintenance_rate, f"certified for this step: {names}")
