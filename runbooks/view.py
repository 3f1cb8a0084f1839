"""What a rollout runbook says, as plain values: the facts the templates lay out.

Everything here is computed from the rollout record, its audit log and the last
decision, with no clock and no I/O, so the same inputs always give the same runbook.
Numbers are formatted on the scale of each trigger's margin (percentage points for
rates, milliseconds, relative percent, similarity), because an engineer compares the
estimate with the margin, not with a raw fraction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from shadowcanary.judge.decide import Decision
from shadowcanary.judge.outcome_rates import NO_OUTCOMES
from shadowcanary.judge.triggers import TriggerResult, Verdict, tail_excess_margin
from shadowcanary.plan import (
    MeanDeltaTrigger,
    QualityTrigger,
    RateTrigger,
    RelativeMeanTrigger,
    RolloutPlan,
    TailLatencyTrigger,
    TriggerConfig,
    TriggerMode,
)
from shadowcanary.rollout_records import AuditAction, AuditEntry, RolloutRecord, RolloutStatus

FlagBackendName = Literal["embedded", "unleash"]

# Which operator commands apply in which status (shadowcanary.controller.operator).
ACTION_STATUSES: dict[str, frozenset[RolloutStatus]] = {
    "rollback": frozenset(RolloutStatus),
    "pause": frozenset({RolloutStatus.RUNNING, RolloutStatus.OVERRIDDEN}),
    "resume": frozenset({RolloutStatus.PAUSED, RolloutStatus.OVERRIDDEN}),
    "promote": frozenset({RolloutStatus.RUNNING, RolloutStatus.PAUSED, RolloutStatus.OVERRIDDEN}),
    "abort": frozenset(
        {
            RolloutStatus.RUNNING,
            RolloutStatus.PAUSED,
            RolloutStatus.OVERRIDDEN,
            RolloutStatus.ROLLED_BACK,
        }
    ),
}

STATUS_TITLES = {
    RolloutStatus.RUNNING: "RUNNING",
    RolloutStatus.PAUSED: "PAUSED",
    RolloutStatus.OVERRIDDEN: "MANUAL OVERRIDE",
    RolloutStatus.ROLLED_BACK: "ROLLED BACK",
    RolloutStatus.COMPLETED: "COMPLETED",
    RolloutStatus.ABORTED: "ABORTED",
}


@dataclass(frozen=True, slots=True)
class FlagAccess:
    """Where the rollout flag lives, so the runbook shows the right way to change it."""

    backend: FlagBackendName = "embedded"
    unleash_url: str | None = None  # the server root, where the UI is
    refresh_s: float = 5.0  # how often the gateway re-reads the flag (settings.gateway)

    def __post_init__(self) -> None:
        if self.unleash_url is not None:
            object.__setattr__(self, "unleash_url", public_url(self.unleash_url))

    @property
    def unleash(self) -> bool:
        return self.backend == "unleash"


def public_url(url: str) -> str:
    """``url`` without user:password and without a trailing /api (the UI's address)."""
    parts = urlsplit(url.strip())
    host = parts.netloc.rsplit("@", 1)[-1]
    path = parts.path.rstrip("/").removesuffix("/api")
    return urlunsplit((parts.scheme, host, path, "", "")) or url


@dataclass(frozen=True, slots=True)
class TriggerRow:
    name: str
    mode: str
    healthy: str
    margin: str
    canary: str
    baseline: str
    estimate: str
    bounds: str
    counts: str
    statistic: str
    fired: bool
    detail: str


@dataclass(frozen=True, slots=True)
class HistoryLine:
    at: str
    actor: str
    action: str
    change: str  # "10 % -> 30 %", or "" when the flag was not touched
    reason: str


@dataclass(frozen=True, slots=True)
class CheckLine:
    name: str
    ok: bool
    detail: str


def when(moment: datetime) -> str:
    """A UTC timestamp an engineer can read and paste into SQL."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def percent_change(from_percent: int | None, to_percent: int | None) -> str:
    """How an entry or decision moved the flag: "10 % -> 30 %", "to 0 %" or "at 10 %"."""
    if to_percent is None:
        return "" if from_percent is None else f"at {from_percent} %"
    if from_percent is None:
        return f"to {to_percent} %"
    return f"{from_percent} % -> {to_percent} %"


def history_lines(entries: Sequence[AuditEntry], started_at: datetime) -> list[HistoryLine]:
    """The entries of the current run that changed something, oldest first.

    Recorded HOLDs repeat the same waiting reason tick after tick and controller
    intents are followed by the entry confirming them; both are left to
    ``shadowcanary rollout history``.
    """
    lines = []
    for entry in sorted(entries, key=lambda e: (e.at, e.id or 0)):
        if entry.at < started_at or entry.action is AuditAction.HOLD:
            continue
        if entry.reason.startswith("intent:"):
            continue
        lines.append(
            HistoryLine(
                at=when(entry.at),
                actor=entry.actor,
                action=entry.action.value.upper().replace("_", " "),
                change=percent_change(entry.from_percent, entry.to_percent),
                reason=entry.reason,
            )
        )
    return lines


def last_decision(
    entries: Sequence[AuditEntry], started_at: datetime
) -> tuple[Decision, AuditEntry] | None:
    """The newest decision of the current run in the audit log, with its entry."""
    for entry in sorted(entries, key=lambda e: (e.at, e.id or 0), reverse=True):
        if entry.at < started_at or not entry.decision:
            continue
        try:
            return Decision.from_dict(entry.decision), entry
        except (KeyError, TypeError, ValueError):
            continue  # an entry from an older schema: skip it rather than fail the runbook
    return None


# What people (and the controller on their behalf) do to a rollout besides deciding.
PEOPLE_ACTIONS = frozenset(
    {
        AuditAction.MANUAL_OVERRIDE,
        AuditAction.PAUSE,
        AuditAction.RESUME,
        AuditAction.PROMOTE,
        AuditAction.ROLLBACK,
        AuditAction.ABORT,
    }
)


def latest_change(entries: Sequence[AuditEntry], record: RolloutRecord) -> AuditEntry | None:
    """The newest change to the rollout that was not a judge's decision (this run only).

    An override in the UI, an operator's pause, promote or rollback: what status and
    the runbook must show first, because the last decision no longer describes the flag.
    """
    for entry in sorted(entries, key=lambda e: (e.at, e.id or 0), reverse=True):
        if entry.at < record.started_at:
            break
        if entry.action in PEOPLE_ACTIONS and not entry.decision:
            return entry
    return None


def unwritten_rollback(entries: Sequence[AuditEntry], record: RolloutRecord) -> bool:
    """Rolled back on paper, but the newest rollback entry could not write the flag."""
    if record.status is not RolloutStatus.ROLLED_BACK:
        return False
    rollbacks = [
        e
        for e in entries
        if e.action is AuditAction.ROLLBACK
        and e.at >= record.started_at
        and not e.reason.startswith("intent:")
    ]
    if not rollbacks:
        return False
    newest = max(rollbacks, key=lambda e: (e.at, e.id or 0))
    return newest.to_percent is None


# --- triggers ------------------------------------------------------------------------


def _pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f} %"


def _points(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.2f} pt"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f} ms"


def _plain(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}"


# Units of the per-arm means of the mean triggers, by trigger name.
_MEAN_UNITS = {"ttft": "{:.0f} ms", "output_tokens": "{:.0f} tokens", "cost": "${:.4f}"}


def _arm_mean(name: str, value: float | None) -> str:
    return "-" if value is None else _MEAN_UNITS.get(name, "{:.4g}").format(value)


def _scale(kind: str) -> tuple[str, ...]:
    return {
        "rate": ("points", "rate"),
        "tail": ("share", "rate"),
        "mean": ("ms", "mean"),
        "relative": ("relative", "mean"),
        "quality": ("plain", "none"),
    }.get(kind, ("plain", "mean"))


_FORMATS = {"points": _points, "share": _pct, "ms": _ms, "relative": _points, "plain": _plain}


def _fmt(scale: str, value: float | None) -> str:
    if scale == "relative":
        return "-" if value is None else f"{100 * value:+.1f} %"
    return _FORMATS[scale](value)


def plan_margin(config: TriggerConfig) -> str:
    """The tolerated harm as the plan states it."""
    if isinstance(config, RateTrigger):
        return f"+{100 * config.margin:.2f} pt over baseline"
    if isinstance(config, TailLatencyTrigger):
        allowed, quantile = 100 * tail_excess_margin(config), 100 * config.quantile
        return (
            f"+{allowed:.2g} pt of requests slower than baseline p{quantile:g} + "
            f"{config.margin_ms:g} ms over the concurrent baseline's"
        )
    if isinstance(config, MeanDeltaTrigger):
        return f"+{config.margin_ms:g} ms over baseline"
    if isinstance(config, RelativeMeanTrigger):
        return f"+{100 * config.margin:g} % over baseline"
    if isinstance(config, QualityTrigger):
        return f"{config.margin:g} below the noise floor"
    return "-"


HEALTH = {
    Verdict.CERTIFIED: "yes",
    Verdict.INCONCLUSIVE: "not yet: bound above margin",
    Verdict.INSUFFICIENT: "not yet: too little data",
    Verdict.NOT_APPLICABLE: "n/a: no such traffic",
}


NO_OUTCOMES_HEALTH = "not yet: no user outcomes reported"


def healthy(result: TriggerResult) -> str:
    if result.verdict is Verdict.HARM:
        return "NO: FIRED" if result.mode is TriggerMode.ACT else "NO (dry-run, not acted on)"
    if result.verdict is Verdict.INSUFFICIENT and result.detail == NO_OUTCOMES:
        return NO_OUTCOMES_HEALTH  # waits on the services, not on more traffic
    return HEALTH[result.verdict]


def _unknown(name: str, mode: str, margin: str) -> TriggerRow:
    """A trigger the last decision did not evaluate (or there is no decision yet)."""
    empty = "-"
    return TriggerRow(
        name=name,
        mode=mode,
        healthy="no decision yet",
        margin=margin,
        canary=empty,
        baseline=empty,
        estimate=empty,
        bounds=empty,
        counts=empty,
        statistic=empty,
        fired=False,
        detail="",
    )


def trigger_rows(plan: RolloutPlan, decision: Decision | None) -> list[TriggerRow]:
    """One row per enabled trigger of the plan, with the last decision's numbers."""
    results = {r.name: r for r in (decision.triggers if decision else ())}
    rows = []
    for name, config in plan.triggers.enabled().items():
        result = results.get(name)
        margin = plan_margin(config)
        if result is None:
            rows.append(_unknown(name, config.mode.value, margin))
            continue
        scale, arms = _scale(result.kind)
        fired = result.verdict is Verdict.HARM

        def arm(value: float | None, arms: str = arms, name: str = name) -> str:
            if arms == "none":
                return "-"
            return _pct(value) if arms == "rate" else _arm_mean(name, value)

        rows.append(
            TriggerRow(
                name=name,
                mode=result.mode.value,
                healthy=healthy(result),
                margin=margin,
                canary=arm(result.candidate_value),
                baseline=arm(result.baseline_value),
                estimate=_fmt(scale, result.estimate),
                bounds=(
                    f"[{_fmt(scale, result.lower)}, {_fmt(scale, result.upper)}]"
                    if result.upper is not None
                    else "-"
                ),
                counts=f"{result.n_candidate} / {result.n_baseline}",
                statistic=f"{result.statistic:.3g} / {result.threshold:.3g}",
                fired=fired,
                detail=result.detail,
            )
        )
    return rows


def check_lines(decision: Decision | None) -> list[CheckLine]:
    return [CheckLine(c.name, c.ok, c.detail) for c in (decision.checks if decision else ())]


def arm_error_rates(decision: Decision | None) -> tuple[str, str] | None:
    """(canary, baseline) error rates of the last decision, for the rollback check."""
    result = next(
        (r for r in (decision.triggers if decision else ()) if r.name == "error_rate"), None
    )
    if result is None or result.baseline_value is None:
        return None
    return _pct(result.candidate_value), _pct(result.baseline_value)
