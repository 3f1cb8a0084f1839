"""What ``shadowcanary rollout status`` and ``history`` show: JSON-ready data and Rich tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from shadowcanary.controller.policy import is_intent
from shadowcanary.rollout_records import AuditAction, AuditEntry, RolloutRecord
from shadowcanary.store.rollouts import RolloutStore

# A person's change (or the controller's record of one): shown before an older decision.
_CHANGES = {
    AuditAction.MANUAL_OVERRIDE,
    AuditAction.PAUSE,
    AuditAction.RESUME,
    AuditAction.PROMOTE,
    AuditAction.ROLLBACK,
    AuditAction.ABORT,
}

# Entries that carry a judge decision worth showing as "the last decision".
_DECISIONS = {
    AuditAction.ADVANCE,
    AuditAction.HOLD,
    AuditAction.ROLLBACK,
    AuditAction.COMPLETE,
    AuditAction.ESCALATE,
}


def entry_data(entry: AuditEntry, *, with_inputs: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action.value,
        "from_percent": entry.from_percent,
        "to_percent": entry.to_percent,
        "reason": entry.reason,
        "decision": entry.decision,
    }
    if with_inputs:
        data["inputs"] = entry.inputs
    return data


def status_data(store: RolloutStore, records: Sequence[RolloutRecord]) -> list[dict[str, Any]]:
    """Each rollout's state and its newest decision (with trigger numbers)."""
    out = []
    for record in records:
        history = store.history(record.name, limit=50)
        last = next(
            (
                e
                for e in history
                if e.action in _DECISIONS and e.decision is not None and not is_intent(e)
            ),
            None,
        )
        # Newer than the last decision and not one: an override, an operator's command.
        change = next(
            (
                e
                for e in history
                if e.action in _CHANGES
                and e.decision is None
                and e.at >= record.started_at
                and (last is None or (e.at, e.id or 0) > (last.at, last.id or 0))
            ),
            None,
        )
        plan = record.plan
        out.append(
            {
                "name": record.name,
                "flag": plan.flag,
                "baseline": plan.baseline,
                "candidate": plan.candidate,
                "status": record.status.value,
                "step_index": record.step_index,
                "steps": list(plan.step_percents),
                "percent": record.percent,
                "started_at": record.started_at.isoformat(),
                "step_started_at": record.step_started_at.isoformat(),
                "updated_at": record.updated_at.isoformat(),
                "baseline_p99_ms": record.baseline_p99_ms,
                "last_decision": None if last is None else entry_data(last),
                "last_change": None if change is None else entry_data(change),
            }
        )
    return out


def _step(row: dict[str, Any]) -> str:
    index, steps = row["step_index"], row["steps"]
    return "not started" if index < 0 else f"{index + 1}/{len(steps)} ({steps[index]} %)"


def _last(row: dict[str, Any]) -> tuple[str, str]:
    """What happened last: a person's change if newer than the last decision, else that."""
    change = row.get("last_change")
    if change is not None:
        return (
            f"{change['action']} @ {change['at'][:19]} by {change['actor']}",
            change["reason"],
        )
    last = row["last_decision"]
    if last is None:
        return "-", ""
    return f"{last['action']} @ {last['at'][:19]}", last["reason"]


def render_rollouts(rows: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="Rollouts", title_justify="left")
    for column in ("rollout", "flag", "status", "step", "canary %", "step since", "last event"):
        table.add_column(column, justify="right" if column == "canary %" else "left")
    table.add_column("reason", overflow="fold", max_width=60)
    for row in rows:
        last, reason = _last(row)
        table.add_row(
            row["name"],
            row["flag"],
            row["status"],
            _step(row),
            str(row["percent"]),
            row["step_started_at"][:19],
            last,
            reason,
        )
    if not rows:
        table.caption = "no rollouts yet: `shadowcanary rollout start PLAN.yaml`"
    return table


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_rollout(row: dict[str, Any]) -> Group:
    """One rollout in detail: its state and every trigger of the last decision."""
    state = Table(title=f"Rollout {row['name']}", show_header=False, title_justify="left")
    state.add_column(style="bold")
    state.add_column()
    for key in ("flag", "baseline", "candidate", "status", "percent", "started_at"):
        state.add_row(key.replace("_", " "), _num(row[key]))
    state.add_row("step", _step(row))
    state.add_row("step since", row["step_started_at"])
    state.add_row("baseline p99 ms", _num(row["baseline_p99_ms"]))
    last, reason = _last(row)
    state.add_row("last change" if row.get("last_change") else "last decision", last)
    state.add_row("reason", Text(reason))
    if row.get("last_change") and row["last_decision"]:
        decision = row["last_decision"]
        state.add_row("older decision", f"{decision['action']} @ {decision['at'][:19]}")
    parts: list[Table] = [state]
    decision = (row["last_decision"] or {}).get("decision") or {}
    if decision.get("triggers"):
        triggers = Table(title="Triggers (last decision)", title_justify="left")
        for column in ("trigger", "mode", "verdict", "n canary", "n baseline"):
            triggers.add_column(column)
        for column in ("estimate", "upper", "margin", "statistic", "threshold"):
            triggers.add_column(column, justify="right")
        for t in decision["triggers"]:
            triggers.add_row(
                t["name"],
                t["mode"],
                t["verdict"],
                _num(t["n_candidate"]),
                _num(t["n_baseline"]),
                _num(t["estimate"]),
                _num(t["upper"]),
                _num(t["margin"]),
                _num(t["statistic"]),
                _num(t["threshold"]),
            )
        parts.append(triggers)
    return Group(*parts)


def render_history(name: str, entries: Sequence[AuditEntry]) -> Table:
    table = Table(title=f"History of {name} (newest first)", title_justify="left")
    for column in ("at", "actor", "action", "from %", "to %"):
        table.add_column(column)
    table.add_column("reason", overflow="fold", max_width=80)
    for e in entries:
        table.add_row(
            e.at.isoformat()[:19],
            e.actor,
            e.action.value,
            _num(e.from_percent),
            _num(e.to_percent),
            e.reason,
        )
    return table
