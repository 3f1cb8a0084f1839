"""The rollout controller: evidence -> judge.decide -> flag -> audit -> webhook -> runbook.

- ``records`` / ``store`` / ``evidence``: rollout state, the append-only audit log, and
  the judge's evidence read from the rollups (O(buckets))
- ``tick``: one tick of one rollout (``tick.tick(ports, name, memory)``), fail closed
- ``policy``: the pure rules (flag/record reconciliation, HOLD recording)
- ``loop`` / ``lock``: ``shadowcanary controller run``, one active controller per
  rollout through a Postgres advisory lock; ``operation_lock`` serialises changes
- ``operator``: ``shadowcanary rollout start|pause|resume|promote|rollback|abort``
- ``notify``: Slack-compatible webhooks; ``metrics``: Prometheus
- ``wiring``: concrete adapters from Settings

Names are imported on first use so ``import shadowcanary.rollout_records`` stays
cheap for code that never runs a controller.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shadowcanary.controller.loop import ControllerLoop, LoopConfig
    from shadowcanary.controller.operator import InvalidTransition, Operator
    from shadowcanary.controller.policy import TickMemory
    from shadowcanary.controller.tick import TickOutcome, TickPorts, TickResult
    from shadowcanary.controller.wiring import FlagsConfig, build_ports, flags_factory

_LAZY = {
    "ControllerLoop": "shadowcanary.controller.loop",
    "LoopConfig": "shadowcanary.controller.loop",
    "InvalidTransition": "shadowcanary.controller.operator",
    "Operator": "shadowcanary.controller.operator",
    "TickMemory": "shadowcanary.controller.policy",
    "TickOutcome": "shadowcanary.controller.tick",
    "TickPorts": "shadowcanary.controller.tick",
    "TickResult": "shadowcanary.controller.tick",
    "FlagsConfig": "shadowcanary.controller.wiring",
    "build_ports": "shadowcanary.controller.wiring",
    "flags_factory": "shadowcanary.controller.wiring",
}

__all__ = [
    "ControllerLoop",
    "FlagsConfig",
    "InvalidTransition",
    "LoopConfig",
    "Operator",
    "TickMemory",
    "TickOutcome",
    "TickPorts",
    "TickResult",
    "build_ports",
    "flags_factory",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
