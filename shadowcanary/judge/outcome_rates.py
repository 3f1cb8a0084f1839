"""The user-outcome triggers: which counts of ``ArmCounts`` each one compares.

Each is a rate trigger (count e-process against the concurrent baseline, the same
machinery as ``error_rate``) whose events and trials are outcomes the services report:

- ``completion_rate``: abandoned tasks among calls with a task outcome (completed or
  abandoned). Harm is a *drop* in completion, i.e. a rise in abandonment; the margin is
  in points of completion rate. Not ``incomplete``, which is ``finish_reason=length``.
- ``negative_feedback``: thumbs down or retried/regenerated, among calls with any
  outcome reported.
- ``escalation_rate``: escalated to a person, among calls with any outcome reported.

Nothing but the services can feed these, so they are ``required`` by default: with no
outcome reported on either arm the trigger is ``insufficient`` (not "n/a") and an
act-mode trigger holds the step, saying outcomes are not being reported.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shadowcanary.judge.evidence import EvidenceTable

# trigger -> (events, trials) columns of each arm
OUTCOME_RATES: dict[str, tuple[str, str]] = {
    "completion_rate": ("abandoned", "tasks"),
    "negative_feedback": ("negative", "outcomes"),
    "escalation_rate": ("escalated", "outcomes"),
}
NO_OUTCOMES = (
    "no user outcomes reported for this rollout's calls: report them with tap.outcome("
    "event_id, ...) or POST /v1/tap/outcomes, or switch this trigger off"
)

_Array = npt.NDArray[np.float64]


def outcome_rate_columns(name: str, t: EvidenceTable) -> tuple[_Array, _Array, _Array, _Array]:
    """Per bucket: candidate events and trials, baseline events and trials."""
    events, trials = OUTCOME_RATES[name]
    return (
        t.column(f"candidate.{events}"),
        t.column(f"candidate.{trials}"),
        t.column(f"baseline.{events}"),
        t.column(f"baseline.{trials}"),
    )
