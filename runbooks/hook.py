"""The call site where the controller asks for a rollout's runbook to be rebuilt.

The controller calls ``hook(record, decision)`` after every decision and after every
operator command, so the runbook an on-call engineer opens is never older than the
last thing that happened to the rollout.

Two ways to get a hook with that signature:

- ``RunbookHook(store, output_dir, flags, secrets)``: bound to the controller's own
  store (no extra connections); ``RunbookHook.from_settings(settings, store)`` fills
  in the rest. This is what wiring should pass as ``TickPorts.runbook``.
- ``regenerate_runbook(record, decision)``: needs nothing, loads ``Settings`` itself
  on every call and reads the audit log through a short-lived engine when
  ``SHADOWCANARY_DATABASE_URL`` is set (or the embedded Postgres is already running).

Neither ever raises into the tick: a runbook that cannot be written is logged and
counted (``shadowcanary_runbook_failures_total``), and the rollout goes on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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


def regenerate_runbook(record: RolloutRecord, decision: Decision | None) -> None:
    """Rebuild the runbook of ``record``'s rollout; ``decision`` is None for operator commands.

    Settings come from the environment on each call. Never raises.
    """
    secrets: tuple[str, ...] = ()
    try:
        from shadowcanary.settings import load_settings

        settings = load_settings()
        secrets = settings_secrets(settings)
        with _settings_store(settings) as store:
            RunbookHook.from_settings(settings, store)(record, decision)
    except Exception as exc:  # noqa: BLE001 - a runbook must never stop a rollout
        _failed(record, exc, secrets)


@contextlib.contextmanager
def _settings_store(settings: Settings) -> Iterator[RolloutStore | None]:
    """A store on the configured (or already running embedded) Postgres, closed afterwards.

    Never starts a server: a hook that launched Postgres as a side effect would be a
    surprise in every process that ticks a rollout.
    """
    url = settings.database_url
    if url is None:
        from shadowcanary.embedded import EmbeddedServices

        running = EmbeddedServices(settings.data_dir).running()
        url = running.database_url if running else None
    if url is None:
        yield None
        return
    from shadowcanary.store.db import make_engine
    from shadowcanary.store.rollouts import RolloutStore

    engine = make_engine(url, pool_size=1)
    try:
        yield RolloutStore(engine)
    finally:
        engine.dispose()


def _failed(record: RolloutRecord, exc: Exception, secrets: tuple[str, ...]) -> None:
    RUNBOOK_FAILURES.labels(record.name).inc()
    log.warning(
        "runbook not written",
        rollout=record.name,
        error=redact(f"{type(exc).__name__}: {exc}", secrets)[:500],
    )
