"""Prometheus metrics of the controller (served by ``shadowcanary controller run --metrics-port``).

Labels are the rollout name (a handful per deployment) and small fixed vocabularies
(decision kinds, trigger names, services): cardinality stays bounded.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from shadowcanary.judge.decide import Decision
from shadowcanary.rollout_records import RolloutStatus

TICKS = Counter(
    "shadowcanary_controller_ticks_total",
    "Controller ticks, by outcome",
    # decided | idle (paused, overridden, finished) | unavailable | error
    ["rollout", "outcome"],
)
DECISIONS = Counter(
    "shadowcanary_controller_decisions_total",
    "Judge decisions, by kind (advance, hold, rollback, complete)",
    ["rollout", "kind"],
)
ACTIONS = Counter(
    "shadowcanary_controller_flag_changes_total",
    "Changes the controller or an operator made to a rollout's flag, by action",
    ["rollout", "action"],
)
ROLLOUT_PERCENT = Gauge(
    "shadowcanary_controller_rollout_percent",
    "Canary percentage the controller last set (or observed, after an override)",
    ["rollout"],
)
TRIGGER_STATISTIC = Gauge(
    "shadowcanary_controller_trigger_statistic",
    "Anytime-valid statistic of a trigger (e-value or mixture likelihood ratio)",
    ["rollout", "trigger"],
)
TRIGGER_THRESHOLD = Gauge(
    "shadowcanary_controller_trigger_threshold",
    "Statistic at which the trigger rolls back (1 / its share of alpha)",
    ["rollout", "trigger"],
)
TRIGGER_ESTIMATE = Gauge(
    "shadowcanary_controller_trigger_estimate",
    "Estimated harm of a trigger (same scale as its margin)",
    ["rollout", "trigger"],
)
TRIGGER_UPPER = Gauge(
    "shadowcanary_controller_trigger_upper_bound",
    "Upper confidence bound on a trigger's harm; ADVANCE needs it below the margin",
    ["rollout", "trigger"],
)
TRIGGER_MARGIN = Gauge(
    "shadowcanary_controller_trigger_margin",
    "Tolerated harm of a trigger",
    ["rollout", "trigger"],
)
UNAVAILABLE = Counter(
    "shadowcanary_controller_service_unavailable_total",
    "Ticks that held because a dependency was unreachable, by service",
    # service: postgres | flags; rollout "*": `--all` could not even list the rollouts
    ["rollout", "service"],
)
LOCK_HELD = Gauge(
    "shadowcanary_controller_lock_held",
    "1 while this process holds the rollout's advisory lock (is the active controller)",
    ["rollout"],
)
ROLLOUT_STATUS = Gauge(
    "shadowcanary_controller_rollout_status",
    "1 for the rollout's current status (running, paused, overridden, ...), 0 for the others",
    ["rollout", "status"],
)
LAST_DECISION = Gauge(
    "shadowcanary_controller_last_decision_timestamp_seconds",
    "Unix time of the rollout's last judge decision (alerts compare it with time())",
    ["rollout"],
)
TICK_SECONDS = Histogram(
    "shadowcanary_controller_tick_seconds",
    "Wall time of one tick (evidence read, decision, flag write, audit)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def observe_decision(rollout: str, decision: Decision) -> None:
    """Count the decision and export each trigger's numbers as gauges."""
    DECISIONS.labels(rollout, decision.kind.value).inc()
    LAST_DECISION.labels(rollout).set_to_current_time()
    for trigger in decision.triggers:
        labels = (rollout, trigger.name)
        TRIGGER_STATISTIC.labels(*labels).set(trigger.statistic)
        TRIGGER_THRESHOLD.labels(*labels).set(trigger.threshold)
        TRIGGER_MARGIN.labels(*labels).set(trigger.margin)
        # NaN when unknown: Prometheus shows a gap rather than a misleading zero.
        TRIGGER_ESTIMATE.labels(*labels).set(
            float("nan") if trigger.estimate is None else trigger.estimate
        )
        TRIGGER_UPPER.labels(*labels).set(float("nan") if trigger.upper is None else trigger.upper)


def observe_percent(rollout: str, percent: int) -> None:
    ROLLOUT_PERCENT.labels(rollout).set(percent)


def observe_status(rollout: str, status: str) -> None:
    """One series per status, exactly one at 1: alerts select ``status="overridden"``."""
    for known in RolloutStatus:
        ROLLOUT_STATUS.labels(rollout, known.value).set(1 if known.value == status else 0)
