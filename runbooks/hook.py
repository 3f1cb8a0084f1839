"""The call site where the controller asks for a rollout's runbook to be rebuilt.

The controller calls ``hook(record, decision)`` after every decision and after every
operator command, so the runbook an on-call engineer opens is never older than the
last thing that happened to the rollout.

``RunbookHook(store, output_dir, flags, secrets)`` is bound to the controller's own
store (no extra connections); ``RunbookHook.from_settings(settings, store)`` fills in
the rest from the process's one ``Settings``. The composition root
(``shadowcanary.wiring``) passes it as ``TickPorts.runbook``.

It never raises into the tick: a runbook that cannot be written is logged and
counted (``shadowcanary_runbook_failures_total``), and the rollout goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from prometheus_client import Counter

from runbooks.generator import (
    DEFAULT_OUTPUT_DIR,
    flag_access,
    generate_runbook,
    output_dir_for,
    redact,
    settings_secrets,
)
from runbooks.view import FlagAccess

if TYPE_CHECKING:
    from shadowcanary.judge.decide import Decision
    from shadowcanary.rollout_records import RolloutRecord
    from shadowcanary.settings import Settings
    from shadowcanary.store.rollouts import RolloutStore

log = structlog.get_logger(__name__)

RUNBOOKS_WRITTEN = Counter(
    "shadowcanary_runbooks_written_total",
    "Rollout runbooks written (after decisions, operator commands, or on demand)",
    ["rollout"],
)
RUNBOOK_FAILURES = Counter(
    "shadowcanary_runbook_failures_total",
    "Rollout runbooks that could not be written (the rollout itself went on)",
    ["rollout"],
)


@dataclass(frozen=True, slots=True)
class RunbookHook:
    """``TickPorts.runbook`` bound to a store: writes ``<output_dir>/<rollout>.md``."""

    store: RolloutStore | None
    output_dir: Path = DEFAULT_OUTPUT_DIR
    flags: FlagAccess = field(default_factory=FlagAccess)
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_settings(
        cls, settings: Settings, store: RolloutStore | None, output_dir: Path | None = None
    ) -> RunbookHook:
        return cls(
            store=store,
            output_dir=output_dir_for(settings, output_dir),
            flags=flag_access(settings),
            secrets=settings_secrets(settings),
        )

    def __call__(self, record: RolloutRecord, decision: Decision | None) -> None:
        """Rebuild ``record``'s runbook; never raises (a failure is logged and counted)."""
        try:
            path = generate_runbook(
                self.store,
                record,
                decision,
                output_dir=self.output_dir,
                flags=self.flags,
                secrets=self.secrets,
            )
        except Exception as exc:  # noqa: BLE001 - a runbook must never stop a rollout
            _failed(record, exc, self.secrets)
            return
        RUNBOOKS_WRITTEN.labels(record.name).inc()
        log.debug("runbook written", rollout=record.name, path=str(path))


def _failed(record: RolloutRecord, exc: Exception, secrets: tuple[str, ...]) -> None:
    RUNBOOK_FAILURES.labels(record.name).inc()
    log.warning(
        "runbook not written",
        rollout=record.name,
        error=redact(f"{type(exc).__name__}: {exc}", secrets)[:500],
    )
