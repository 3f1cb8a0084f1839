"""A command's stderr is for a person: no JSON log lines mixed with its output.

One-shot commands log warnings and errors only, in human form; ``--verbose`` adds the
info lines (still human); SHADOWCANARY_LOG_FORMAT=json gives the JSON lines back for
log shippers. Long-running processes (worker, controller, gateway) keep JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def _shadowcanary(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWCANARY_")}
    return subprocess.run(
        [sys.executable, "-m", "shadowcanary.cli.main", *args],
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _json_lines(text: str) -> list[dict[str, object]]:
    lines = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            lines.append(value)
    return lines


def test_migrate_prints_its_result_without_log_lines(empty_database_url: str) -> None:
    """`shadowcanary migrate` says the schema is up to date; stderr has no JSON, no alembic."""
    result = _shadowcanary("migrate", SHADOWCANARY_DATABASE_URL=empty_database_url)
    assert result.returncode == 0, result.stderr
    assert "database schema is up to date" in result.stdout
    assert _json_lines(result.stderr) == []
    assert "alembic" not in result.stderr and "Running upgrade" not in result.stderr


def test_verbose_shows_info_lines_in_human_form(empty_database_url: str) -> None:
    """`shadowcanary --verbose migrate` shows alembic's info lines, as text, not JSON."""
    result = _shadowcanary("--verbose", "migrate", SHADOWCANARY_DATABASE_URL=empty_database_url)
    assert result.returncode == 0, result.stderr
    assert "Running upgrade" in result.stderr
    assert _json_lines(result.stderr) == []


def test_log_format_json_keeps_json_lines(empty_database_url: str) -> None:
    """SHADOWCANARY_LOG_FORMAT=json makes a command log JSON lines, as before."""
    result = _shadowcanary(
        "migrate",
        SHADOWCANARY_DATABASE_URL=empty_database_url,
        SHADOWCANARY_LOG_FORMAT="json",
    )
    assert result.returncode == 0, result.stderr
    events = [line["event"] for line in _json_lines(result.stderr)]
    assert "database migrated" in events


def test_a_bad_log_format_is_refused_with_its_values() -> None:
    """SHADOWCANARY_LOG_FORMAT=yaml fails with one line naming the variable."""
    result = _shadowcanary("migrate", SHADOWCANARY_LOG_FORMAT="yaml")
    assert result.returncode == 1
    assert "SHADOWCANARY_LOG_FORMAT" in result.stderr
    assert "Traceback" not in result.stderr
