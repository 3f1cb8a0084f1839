"""What ``shadowcanary rollout status`` and ``history`` show: JSON-ready data and Rich tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from shadowcanary.controller.phase_view import phase_view
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
        phase = phase_view(record, last.reason if last is not None else None)
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
                "phase": phase.phase,
                "phase_headline": phase.headline,
                "waiting_for": phase.waiting,
                "baseline_decommission": phase.decommission,
            }
        )
    return out


def _step(row: dict[str, Any]) -> str:
    index, steps = row["step_index"], row["steps"]
    if row.get("phase") == "shadow_gate":
        return "shadow gate"
    if row.get("phase") == "watch":
        return f"watch ({steps[index]} %)"
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


def render_rollout(row: dict[str, Any], *, width: int = 200) -> Group:
    """One rollout in detail: its state and every trigger of the last decision.

    Below ``NARROW`` columns each trigger is a block of label: value lines.
    """
    state = Table(title=f"Rollout {row['name']}", show_header=False, title_justify="left")
    state.add_column(style="bold")
    state.add_column()
    for key in ("flag", "baseline", "candidate", "status", "percent", "started_at"):
        state.add_row(key.replace("_", " "), _num(row[key]))
    state.add_row("step", _step(row))
    if row.get("phase_headline"):
        state.add_row("phase", Text(row["phase_headline"]))
    if row.get("waiting_for"):
        state.add_row("waiting for", Text(row["waiting_for"]))
    if row.get("baseline_decommission"):
        state.add_row(f"decommission {row['baseline']}?", Text(row["baseline_decommission"]))
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
    if decision.get("triggers") and width < NARROW:
        return Group(*parts, *_trigger_blocks(decision["triggers"]))
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


def _trigger_blocks(triggers: Sequence[dict[str, Any]]) -> list[Table]:
    """One two-column block per trigger: fits 80 columns, nothing cut."""
    blocks = []
    for t in triggers:
        block = Table(
            title=f"Trigger {t['name']} (last decision)", show_header=False, title_justify="left"
        )
        block.add_column(style="bold", no_wrap=True)
        block.add_column(overflow="fold")
        block.add_row("mode / verdict", f"{t['mode']} / {t['verdict']}")
        block.add_row("n canary / baseline", f"{_num(t['n_candidate'])} / {_num(t['n_baseline'])}")
        block.add_row("estimate / upper", f"{_num(t['estimate'])} / {_num(t['upper'])}")
        block.add_row("margin", _num(t["margin"]))
        block.add_row("statistic / threshold", f"{_num(t['statistic'])} / {_num(t['threshold'])}")
        if t.get("detail"):
            block.add_row("detail", Text(t["detail"]))
        blocks.append(block)
    return blocks


# Below this many columns tables become one block per row: nothing is cut.
NARROW = 120


@dataclass(frozen=True, slots=True)
class RunWindow:
    """One run of a rollout (from one START to the next): its id and time span."""

    run_id: int
    started_at: datetime
    until: datetime | None  # the next run's start; None for the newest run


def run_windows(starts: Sequence[AuditEntry]) -> list[RunWindow]:
    """The runs of a rollout from its START entries (oldest first); newest last."""
    ordered = sorted(starts, key=lambda e: (e.at, e.id or 0))
    return [
        RunWindow(
            run_id=start.id or 0,
            started_at=start.at,
            until=ordered[i + 1].at if i + 1 < len(ordered) else None,
        )
        for i, start in enumerate(ordered)
    ]


def history_caption(runs: Sequence[RunWindow], shown: RunWindow | None, name: str) -> str:
    """Which run is shown and how to see the others."""
    if shown is None:
        return f"all {len(runs)} runs"
    others = [str(r.run_id) for r in runs if r.run_id != shown.run_id]
    text = f"run {shown.run_id}, started {shown.started_at.isoformat()[:19]}"
    if others:
        text += (
            f"; earlier runs: {', '.join(others)} (`shadowcanary rollout history {name} "
            f"--run {others[-1]}`, or --all-runs)"
        )
    return text


def render_history(
    name: str, entries: Sequence[AuditEntry], *, width: int = 200, caption: str = ""
) -> Table | Group:
    """The audit log as a table, or one block per entry below ``NARROW`` columns."""
    title = f"History of {name} (newest first)" + (f": {caption}" if caption else "")
    if width < NARROW:
        blocks: list[Text] = [Text(title, style="italic")]
        for e in entries:
            moved = _moved(e.from_percent, e.to_percent)
            head = Text(f"{e.at.isoformat()[:19].replace('T', ' ')}  ", style="bold")
            head.append(e.action.value, style="bold")
            head.append(f"  {moved}" if moved else "")
            head.append(f"  by {e.actor}", style="dim")
            blocks.append(head)
            blocks.append(Text(f"  {e.reason}\n"))
        return Group(*blocks)
    table = Table(title=title, title_justify="left")
    table.add_column("at", no_wrap=True)
    for column in ("actor", "action", "from %", "to %"):
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


def _moved(from_percent: int | None, to_percent: int | None) -> str:
    if to_percent is None:
        return "" if from_percent is None else f"at {from_percent} %"
    return f"{_num(from_percent)} % -> {to_percent} %"
