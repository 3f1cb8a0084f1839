"""The call site where the controller asks for a rollout's runbook to be rebuilt.

The controller calls ``regenerate_runbook(record, decision)`` after every decision it
records and after every operator command, so the runbook an on-call engineer opens is
never older than the last thing that happened to the rollout. The generator itself
(Markdown from the plan and the live state) lands with the runbooks issue; until then
this is a documented no-op, kept so the call site, its arguments and its failure
handling are already exercised by the controller's tests.

It must never raise into the tick: a runbook that cannot be written is logged, and
the rollout goes on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shadowcanary.controller.records import RolloutRecord
    from shadowcanary.judge.decide import Decision


def regenerate_runbook(record: RolloutRecord, decision: Decision | None) -> None:
    """Rebuild the runbook of ``record``'s rollout; ``decision`` is None for operator commands.

    No-op until the runbook generator lands (a later issue fills this in).
    """
    del record, decision
