"""Hostile rollout names on the command line: a clear error, nothing written, no traceback.

Names reach SQL (the store), file paths (runbooks, reports) and, in runbooks, shell
commands; on the command line they are data: looked up, not found, reported back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shadowcanary.launcher.worker import REPO_ROOT

pytestmark = pytest.mark.integration

HOSTILE_NAMES = [
    "../../etc/passwd",
    "x'; DROP TABLE rollouts; --",
    "$(touch /tmp/sc-cli-pwned)",
    "`touch /tmp/sc-cli-pwned`",
    "name\nwith newline",
    "a" * 5000,
]
COMMANDS = [
    ["rollout", "status"],
    ["rollout", "rollback"],
    ["rollout", "history", "--json"],
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_hostile_rollout_names_are_looked_up_as_data(
    name: str, database_url: str, tmp_path: Path
) -> None:
    """Each command answers 'no rollout named ...' (exit 1); runbook and report write nothing."""
    env = {
        "PATH": "/usr/bin:/bin",
        "SHADOWCANARY_DATABASE_URL": database_url,
        "SHADOWCANARY_REDIS_URL": "redis://127.0.0.1:9/0",
        "SHADOWCANARY_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "300",
    }
    runs = [[*command[:2], name, *command[2:]] for command in COMMANDS] + [
        ["runbook", name, "--output-dir", str(tmp_path / "runbooks")],
        ["report", name, "-o", str(tmp_path / "report.html")],
    ]
    # One interpreter for all: each command through the CLI's own entry point.
    script = (
        "import sys\nfrom typer.main import get_command\nfrom shadowcanary.cli.main import app\n"
        "cli = get_command(app)\n"
        "for args in __import__('json').loads(sys.argv[1]):\n"
        "    try:\n        cli.main(args=args, prog_name='shadowcanary')\n"
        "    except SystemExit as exit:\n        print('EXIT', exit.code, flush=True)\n"
        "        print('EXIT', exit.code, file=sys.stderr, flush=True)\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(runs)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert output.count("EXIT 1") // 2 == len(runs), output[-3000:]
    assert output.count("no rollout named") >= len(runs), output[-3000:]
    assert "Traceback" not in output
    assert not (tmp_path / "runbooks").exists() or not any((tmp_path / "runbooks").iterdir())
    assert not (tmp_path / "report.html").exists()
    assert not Path("/tmp/sc-cli-pwned").exists()
    assert not (REPO_ROOT.parent / "etc").exists()
