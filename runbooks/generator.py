"""Rollout runbooks: Markdown from the plan, the record, the audit log and the last decision.

``render_runbook`` is pure (same inputs, same bytes); ``generate_runbook`` reads the
audit log, renders, and writes ``<output_dir>/<rollout>.md`` atomically (a temporary
file renamed over the old one), so a reader never sees half a runbook. The static
runbooks, one per alert, are copied to ``<output_dir>/alerts/`` next to it so the
links between them work wherever the directory is served or copied.

Every secret the process knows (the Unleash admin token, API keys, passwords in
URLs) is removed from the text before it is written: the runbook tells people to use
``$UNLEASH_ADMIN_TOKEN``, and an error message quoted from the audit log must not
carry a token into a file that gets pasted into tickets.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, SecretStr

from runbooks import view
from runbooks.view import FlagAccess
from shadowcanary.controller.phase_view import phase_view
from shadowcanary.errors import ShadowCanaryError
from shadowcanary.rollout_records import AuditAction, AuditEntry, RolloutRecord

if TYPE_CHECKING:
    import jinja2

    from shadowcanary.judge.decide import Decision
    from shadowcanary.settings import Settings
    from shadowcanary.store.rollouts import RolloutStore

DEFAULT_OUTPUT_DIR = Path("runbooks/generated")
ALERTS_DIR = "alerts"
# Enough for a long rollout's steps and operator commands; HOLDs are summarised.
HISTORY_LIMIT = 500
# Shorter values would redact common words; real tokens and passwords are longer.
MIN_SECRET_LENGTH = 4
REDACTED = "<redacted>"
STATIC_RUNBOOKS = (
    "trigger-fired.md",
    "controller-down.md",
    "queue-backlog.md",
    "budget-exhausted.md",
    "unleash-unreachable.md",
    "gateway-breaker-open.md",
)


@dataclass(frozen=True, slots=True)
class RunbookInputs:
    """Everything one runbook is rendered from."""

    record: RolloutRecord
    # The audit log in any order; None when it could not be read (see history_error).
    history: tuple[AuditEntry, ...] | None
    # The decision just made (a tick); None for operator commands: the newest in history.
    decision: Decision | None = None
    flags: FlagAccess = field(default_factory=FlagAccess)
    history_error: str | None = None


# --- rendering -----------------------------------------------------------------------


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("runbooks", "templates"),
        # Markdown, not HTML: escaping would turn "->" and "<= 1 %" into entities.
        autoescape=jinja2.select_autoescape(enabled_extensions=(), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cell"] = _cell
    env.filters["sh"] = shlex.quote
    env.filters["sql"] = _sql_literal
    return env


def _cell(value: object) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _sql_literal(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def render_runbook(inputs: RunbookInputs, *, secrets: Iterable[str] = ()) -> str:
    """The Markdown runbook of one rollout (deterministic: no clock, no I/O)."""
    text = _environment().get_template("rollout.md.j2").render(**_context(inputs))
    return redact(text, secrets)


def _context(inputs: RunbookInputs) -> dict[str, Any]:
    record, plan = inputs.record, inputs.record.plan
    entries: Sequence[AuditEntry] = inputs.history or ()
    decision, decided_entry = inputs.decision, None
    if decision is None:
        found = view.last_decision(entries, record.started_at)
        if found is not None:
            decision, decided_entry = found
    moments = [record.updated_at, *(e.at for e in entries)]
    if decision is not None:
        moments.append(decision.decided_at)
    history = view.history_lines(entries, record.started_at)
    holds = sum(1 for e in entries if e.action is AuditAction.HOLD and e.at >= record.started_at)
    start = next(
        (e for e in entries if e.action is AuditAction.START and e.at == record.started_at), None
    )
    steps = plan.step_percents
    index = record.step_index
    change = view.latest_change(entries, record)
    if change is not None and decision is not None and change.at < decision.decided_at:
        change = None  # the judge decided since: its decision is the news
    phase = phase_view(record, decision.reason if decision is not None else None)
    return {
        "record": record,
        "plan": plan,
        "phase": phase,
        "status": record.status.value,
        "status_title": view.STATUS_TITLES[record.status],
        "as_of": view.when(max(moments)),
        "flags": inputs.flags,
        "steps": [(p, i == index) for i, p in enumerate(steps)],
        "step_number": index + 1,
        "step_percent": steps[index] if 0 <= index < len(steps) else None,
        "next_percent": steps[index + 1] if index + 1 < len(steps) else None,
        "first_percent": steps[0],
        "started_at": view.when(record.started_at),
        "started_by": start.actor if start else None,
        "step_since": view.when(record.step_started_at),
        "triggers": view.trigger_rows(plan, decision),
        "certify_level": f"{100 * (1 - plan.certify_alpha):g} %",
        "decision": decision,
        "decision_at": view.when(decision.decided_at) if decision else None,
        # A HOLD that repeats the previous one is not written to the audit log again.
        "decision_unrecorded": decision is not None
        and decided_entry is None
        and inputs.history is not None
        and not any(e.decision and e.at == decision.decided_at for e in entries),
        "decision_change": (
            view.percent_change(decision.from_percent, decision.to_percent) if decision else ""
        ),
        "checks": view.check_lines(decision),
        "fired": [row for row in view.trigger_rows(plan, decision) if row.fired],
        "history": history,
        "holds": holds,
        "history_error": inputs.history_error,
        "history_missing": inputs.history is None,
        "applicable": {
            action: record.status in statuses for action, statuses in view.ACTION_STATUSES.items()
        },
        "action_statuses": {
            action: " or ".join(sorted(s.value.replace("_", " ") for s in statuses))
            for action, statuses in view.ACTION_STATUSES.items()
        },
        "unwritten_rollback": view.unwritten_rollback(entries, record),
        # A person's change newer than the last decision: the decision no longer says
        # where the flag is (an override, an operator's rollback with its --reason).
        "change": change,
        "change_at": view.when(change.at) if change else None,
        "change_percent": (
            view.percent_change(change.from_percent, change.to_percent) if change else ""
        ),
        "error_rates": view.arm_error_rates(decision),
        "alerts": ALERTS_DIR,
    }


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced (longest first)."""
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len)[::-1]:
        text = text.replace(secret, REDACTED)
    return text


# --- writing -------------------------------------------------------------------------


def runbook_path(output_dir: Path, rollout: str) -> Path:
    """Where a rollout's runbook goes; refuses names that would leave ``output_dir``."""
    if not rollout or Path(rollout).name != rollout or rollout.startswith(".") or "\x00" in rollout:
        raise ValueError(f"rollout name {rollout!r} cannot be used as a file name")
    return output_dir / f"{rollout}.md"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    done = False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from other on-call users
        os.replace(temporary, path)
        done = True
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def static_runbook(name: str) -> str:
    """The text of one static runbook shipped in the package (``runbooks/static``)."""
    return resources.files("runbooks").joinpath("static", name).read_text(encoding="utf-8")


def install_static_runbooks(output_dir: Path) -> Path:
    """Copy the alert runbooks to ``<output_dir>/alerts`` (rewritten only when changed)."""
    target = output_dir / ALERTS_DIR
    for name in STATIC_RUNBOOKS:
        text = static_runbook(name)
        path = target / name
        with contextlib.suppress(OSError):
            if path.read_text(encoding="utf-8") == text:
                continue
        write_atomically(path, text)
    return target


def read_inputs(
    store: RolloutStore | None,
    record: RolloutRecord,
    decision: Decision | None,
    flags: FlagAccess,
) -> RunbookInputs:
    """The inputs of ``record``'s runbook; an unreadable audit log is noted, not raised."""
    if store is None:
        return RunbookInputs(record, None, decision, flags, "no database is configured")
    try:
        stored = store.get(record.name)
        if stored.started_at != record.started_at:
            # Another run of this name (or another database): its log is not this run's.
            error = "the stored rollout is another run of this name"
            return RunbookInputs(record, None, decision, flags, error)
        history = tuple(store.history(record.name, limit=HISTORY_LIMIT))
    except ShadowCanaryError as exc:
        return RunbookInputs(record, None, decision, flags, exc.message)
    return RunbookInputs(record, history, decision, flags)


def generate_runbook(
    store: RolloutStore | None,
    record: RolloutRecord,
    decision: Decision | None = None,
    *,
    output_dir: Path = DEFAULT_OUTPUT_DIR,
    flags: FlagAccess | None = None,
    secrets: Iterable[str] = (),
) -> Path:
    """Read the audit log, render ``record``'s runbook and write it; returns its path."""
    path = runbook_path(output_dir, record.name)
    inputs = read_inputs(store, record, decision, flags or FlagAccess())
    write_atomically(path, render_runbook(inputs, secrets=secrets))
    install_static_runbooks(output_dir)
    return path


# --- from settings -------------------------------------------------------------------


def output_dir_for(settings: Settings | None, override: Path | None = None) -> Path:
    """``override``, else ``Settings.runbooks_dir`` when it exists, else runbooks/generated."""
    if override is not None:
        return override
    configured = getattr(settings, "runbooks_dir", None)
    return Path(configured) if configured else DEFAULT_OUTPUT_DIR


def flag_access(settings: Settings) -> FlagAccess:
    return FlagAccess(
        backend=settings.flags,
        unleash_url=settings.unleash_url,
        refresh_s=settings.gateway.flag_refresh_s,
    )


def settings_secrets(settings: Settings) -> tuple[str, ...]:
    """Every secret value in ``settings``: SecretStr fields and passwords inside URLs."""
    found: list[str] = []
    _collect_secrets(settings, found)
    return tuple(sorted(set(found)))


def _collect_secrets(value: object, found: list[str]) -> None:
    if isinstance(value, SecretStr):
        found.append(value.get_secret_value())
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _collect_secrets(getattr(value, name), found)
    elif isinstance(value, dict):
        for item in value.values():
            _collect_secrets(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect_secrets(item, found)
    elif isinstance(value, str) and "://" in value and "@" in value:
        with contextlib.suppress(ValueError):
            password = urlsplit(value).password
            if password:
                found += [password, unquote(password)]
