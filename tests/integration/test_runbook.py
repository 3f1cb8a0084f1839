"""Runbooks of real rollouts in Postgres: through the hook, the CLI, and the commands they print.

The commands a runbook prints are run for real here: the ``shadowcanary`` ones through
the CLI on the test's Postgres (embedded flag backend), the SQL through ``psql``, and
the curl ones against a real Unleash server.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner, Result

from flags.embedded import EmbeddedFlags
from flags.unleash import UnleashFlags
from runbooks.examples.rolled_back import T0, build
from runbooks.generator import RunbookInputs, render_runbook, runbook_path
from runbooks.hook import RunbookHook
from runbooks.view import FlagAccess
from shadowcanary.cli.runbook import runbook_command
from shadowcanary.controller.operator import flag_spec
from shadowcanary.plan import parse_plan
from shadowcanary.rollout_records import AuditAction, AuditEntry, RolloutRecord, RolloutStatus
from shadowcanary.settings import load_settings
from shadowcanary.store.db import make_engine
from shadowcanary.store.rollouts import RolloutStore
from shadowcanary.testing.servers import free_port
from shadowcanary.testing.unleash import UnleashHandle

pytestmark = pytest.mark.integration

EXAMPLE = "checkout-gpt55"
_FENCE = re.compile(r"^( *)```sh\n(.*?)^\1```$", re.DOTALL | re.MULTILINE)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> RolloutStore:
    return RolloutStore(engine)


def store_example(store: RolloutStore) -> RolloutRecord:
    """The example rollout (rolled back at 30 % by error_rate), written as the controller would."""
    example = build()
    assert example.history is not None
    created = store.create_rollout(example.record.plan, now=T0, actor="cli:alice")
    for entry in example.history[1:]:  # create_rollout wrote the START entry
        store.append_audit(replace(entry, id=None))
    return store.save(replace(example.record, version=created.version))


def shell_blocks(markdown: str) -> list[str]:
    return [textwrap.dedent(body) for _indent, body in _FENCE.findall(markdown)]


def block_with(markdown: str, *needles: str) -> str:
    found = [b for b in shell_blocks(markdown) if all(n in b for n in needles)]
    assert len(found) == 1, (needles, found)
    return found[0]


def command_starting(markdown: str, prefix: str) -> str:
    lines = {
        line.strip()
        for block in shell_blocks(markdown)
        for line in block.splitlines()
        if line.strip().startswith(prefix)
    }
    assert len(lines) == 1, (prefix, lines)
    return lines.pop()


def bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_shadowcanary(line: str, env: dict[str, str]) -> Result:
    """Run one `shadowcanary ...` line through the real typer app (as the console script)."""
    from shadowcanary.cli.main import app

    words = shlex.split(line)
    assert words[0] == "shadowcanary"
    target: typer.Typer = app
    if words[1] == "runbook" and "runbook" not in typer.main.get_command(app).commands:  # type: ignore[attr-defined]
        target, words = typer.Typer(), words[1:]  # not mounted yet: its own one-command app
        target.command()(runbook_command)
    return CliRunner().invoke(target, words[1:], env=env)


# --- the hook --------------------------------------------------------------------------


def test_hook_renders_a_stored_rollout_exactly_as_from_memory(
    store: RolloutStore, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook wired from settings reads the audit log from Postgres, as rendered in memory."""
    record = store_example(store)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHADOWCANARY_DATABASE_URL", database_url)
    RunbookHook.from_settings(load_settings(), store)(record, None)
    text = (tmp_path / "runbooks" / "generated" / f"{EXAMPLE}.md").read_text(encoding="utf-8")
    assert text == render_runbook(replace(build(), decision=None, flags=FlagAccess()))
    assert "**ROLLBACK** · 30 % -> 0 %" in text and "Fired: `error_rate`" in text
    assert "could not be read" not in text
    assert (tmp_path / "runbooks" / "generated" / "alerts" / "trigger-fired.md").is_file()


def test_bound_hook_uses_the_decision_it_is_given(store: RolloutStore, tmp_path: Path) -> None:
    """RunbookHook (the controller's wiring) shows the tick's decision, even one not recorded."""
    record = store_example(store)
    example = build()
    assert example.decision is not None
    later = replace(
        example.decision,
        reason="a decision the tick made just now",
        decided_at=example.decision.decided_at + timedelta(seconds=10),
    )
    RunbookHook(store, tmp_path)(record, later)
    text = runbook_path(tmp_path, EXAMPLE).read_text(encoding="utf-8")
    assert "- Reason: a decision the tick made just now" in text
    assert "Not in the audit log: it repeats the previous decision" in text
    assert "**ADVANCE** · 10 % -> 30 %" in text  # the history still comes from Postgres


def test_hook_with_postgres_down_still_writes_a_runbook(tmp_path: Path) -> None:
    """Postgres unreachable: the runbook says the log is missing and keeps the commands."""
    dead = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none", pool_size=1)
    example = build()
    try:
        RunbookHook(RolloutStore(dead), tmp_path)(example.record, example.decision)
    finally:
        dead.dispose()
    text = runbook_path(tmp_path, EXAMPLE).read_text(encoding="utf-8")
    assert "the audit log could not be read (Postgres failed while reading a rollout" in text
    assert f'shadowcanary rollout rollback {EXAMPLE} --reason "on-call: ' in text


# --- the CLI ---------------------------------------------------------------------------


def test_cli_writes_and_prints_the_runbook(
    store: RolloutStore, database_url: str, tmp_path: Path
) -> None:
    """`shadowcanary runbook ROLLOUT` writes the file, --stdout prints it; unknown exits 1."""
    store_example(store)
    env = {"SHADOWCANARY_DATABASE_URL": database_url, "SHADOWCANARY_LOG_LEVEL": "warning"}
    out = tmp_path / "out"
    result = run_shadowcanary(
        f"shadowcanary runbook {EXAMPLE} --output-dir {out} --stdout", env=env
    )
    assert result.exit_code == 0, result.output
    written = runbook_path(out, EXAMPLE).read_text(encoding="utf-8")
    assert result.stdout == written
    assert written == render_runbook(replace(build(), decision=None, flags=FlagAccess()))
    missing = run_shadowcanary("shadowcanary runbook no-such-rollout", env=env)
    assert missing.exit_code == 1
    assert "no rollout named 'no-such-rollout'" in missing.output and "hint:" in missing.output


# --- the commands in a runbook, run for real -------------------------------------------


def test_the_runbooks_commands_work_when_run(
    engine: Engine,
    store: RolloutStore,
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pause, resume, promote, roll back, verify: each command printed does it, and SQL runs."""
    plan = parse_plan(
        "name: rb-live\nflag: rb-live-flag\nbaseline: gpt-5.2\ncandidate: gpt-5.5\n"
        "escalation: '#llm-oncall'\n"
    )
    flags = EmbeddedFlags(engine)
    flags.ensure_flag(flag_spec(plan))
    flags.set_rollout(plan.flag, 10)
    now = datetime.now(UTC).replace(microsecond=0)
    created = store.create_rollout(plan, now=now, actor="cli:test")
    moved = replace(created, step_index=0, percent=10, step_started_at=now, updated_at=now)
    entry = AuditEntry(None, now, plan.name, "controller", AuditAction.ADVANCE, 0, 10, "first step")
    record = store.save(moved, entry)
    RunbookHook(store, tmp_path / "out")(record, None)
    text = runbook_path(tmp_path / "out", plan.name).read_text(encoding="utf-8")

    monkeypatch.chdir(tmp_path)  # the CLI's own runbook hook writes under ./runbooks/generated
    env = {
        "SHADOWCANARY_DATABASE_URL": database_url,
        "SHADOWCANARY_REDIS_URL": redis_url,
        "SHADOWCANARY_LOG_LEVEL": "warning",
    }
    steps = [
        ("shadowcanary rollout pause ", RolloutStatus.PAUSED, 10),
        ("shadowcanary rollout resume ", RolloutStatus.RUNNING, 10),
        ("shadowcanary rollout promote rb-live --to", RolloutStatus.RUNNING, 30),
        ("shadowcanary rollout rollback ", RolloutStatus.ROLLED_BACK, 0),
    ]
    for prefix, status, percent in steps:
        line = command_starting(text, prefix)
        result = run_shadowcanary(line, env)
        assert result.exit_code == 0, (line, result.output)
        assert store.get(plan.name).status is status, line
        assert flags.read(plan.flag).effective_percent == percent, line

    for prefix in ("shadowcanary rollout status ", "shadowcanary status --rollout "):
        line = command_starting(text, prefix)
        result = run_shadowcanary(line, env)
        assert result.exit_code == 0, (line, result.output)
    status_line = command_starting(text, "shadowcanary rollout status ")
    assert "rolled_back" in run_shadowcanary(status_line, env).output
    # One table row per entry, no wrapping. The CLI's console took its width (COLUMNS)
    # when first imported, which in this process may have been by an earlier test.
    from shadowcanary.cli import support as cli_support

    monkeypatch.setattr(cli_support.console, "width", 400)
    history = run_shadowcanary(command_starting(text, "shadowcanary rollout history "), env)
    assert history.exit_code == 0 and "on-call: describe what you saw" in history.stdout

    # The operator commands regenerated the runbook through the controller's wiring.
    regenerated = (tmp_path / "runbooks" / "generated" / "rb-live.md").read_text(encoding="utf-8")
    assert regenerated.startswith("# Runbook for rollout `rb-live`: ROLLED BACK")
    assert "rolled back by an operator: on-call: describe what you saw" in regenerated

    flag_sql = block_with(text, "FROM flags WHERE name = 'rb-live-flag'")
    checked = bash(flag_sql, {"SHADOWCANARY_DATABASE_URL": database_url})
    assert checked.returncode == 0, checked.stderr
    row = next(line for line in checked.stdout.splitlines() if "rb-live-flag" in line)
    assert [cell.strip() for cell in row.split("|")][2:] == ["false", "0"]
    for needle in ("FROM live_rollups", "ORDER BY c.lexical_similarity"):
        ran = bash(block_with(text, needle), {"SHADOWCANARY_DATABASE_URL": database_url})
        assert ran.returncode == 0, (needle, ran.stderr)
    example = block_with(text, "WHERE k.event_id = 'EVENT_ID'")
    ran = bash(block_with(text, "FROM live_rollups") + example, env)
    assert ran.returncode == 0 and "(0 rows)" in ran.stdout, ran.stderr


def test_unleash_curl_blocks_change_the_real_flag(unleash: UnleashHandle) -> None:
    """The setup, promote, read and rollback curl blocks work against a real Unleash."""
    flag = f"rb-curl-{uuid.uuid4().hex[:8]}"
    plan = parse_plan(
        f"name: rb-curl\nflag: {flag}\nbaseline: gpt-5.2\ncandidate: gpt-5.5\n"
        "unleash: {project: default, environment: development}\n"
    )
    with UnleashFlags(unleash.url, unleash.admin_token, environment="development") as flags:
        flags.ensure_flag(flag_spec(plan))
        flags.set_rollout(flag, 10)
        record = RolloutRecord(
            name=plan.name,
            plan=plan,
            status=RolloutStatus.RUNNING,
            step_index=0,
            percent=10,
            started_at=T0,
            step_started_at=T0,
            updated_at=T0,
            baseline_p99_ms=850.0,
            version=2,
        )
        access = FlagAccess(backend="unleash", unleash_url=unleash.url)
        text = render_runbook(RunbookInputs(record, (), None, access))
        assert unleash.admin_token not in text
        env = {"SHADOWCANARY_UNLEASH_ADMIN_TOKEN": unleash.admin_token}
        setup = block_with(text, "STRATEGY_ID=$(")
        read = block_with(text, "{enabled, rollout:")

        promoted = bash(setup + block_with(text, '"value": "30"') + read, env)
        assert promoted.returncode == 0, promoted.stderr
        assert '"30"' in promoted.stdout and '"enabled": true' in promoted.stdout
        state = flags.read(flag)
        assert state.enabled and state.rollout_percent == 30

        rolled = bash(setup + block_with(text, '"$ENV_URL/off"') + read, env)
        assert rolled.returncode == 0, rolled.stderr
        assert '"enabled": false' in rolled.stdout and '"0"' in rolled.stdout
        assert flags.read(flag).effective_percent == 0
