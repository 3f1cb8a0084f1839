"""What shadowing cost per decision: replays, tokens and dollars since the decision before.

Adaptive sampling (docs/phases.md) exists to make this small once the shadow triggers
are certified; the report shows whether it did.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from shadowcanary.report.model import DecisionSpend
from shadowcanary.rollout_records import AuditEntry
from shadowcanary.store.report_reads import SpendMinute

_MINUTE = timedelta(minutes=1)


def spend_per_decision(
    entries: Sequence[AuditEntry], minutes: Sequence[SpendMinute]
) -> tuple[DecisionSpend, ...]:
    """Each recorded decision (oldest first) with the spend of the closed minutes before it.

    A minute counts for the first decision taken after it closed; minutes after the
    newest decision are not shown (no decision was made on them yet).
    """
    decisions = [e for e in entries if e.decision is not None]
    out: list[DecisionSpend] = []
    remaining = sorted(minutes, key=lambda m: m.minute)
    index = 0
    for entry in sorted(decisions, key=lambda e: e.at):
        replays = tokens = 0
        cost = 0.0
        while index < len(remaining) and remaining[index].minute + _MINUTE <= entry.at:
            m = remaining[index]
            replays, tokens, cost = replays + m.replays, tokens + m.tokens, cost + m.cost_usd
            index += 1
        out.append(
            DecisionSpend(entry.at, entry.action.value, entry.from_percent, replays, tokens, cost)
        )
    return tuple(out)
