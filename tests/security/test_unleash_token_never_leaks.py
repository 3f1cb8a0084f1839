"""The Unleash admin token stays secret when the controller drives a real Unleash.

Operator commands run for real against the Unleash server with the admin token (and
the Postgres password) configured and logging at DEBUG: start a rollout (creates the
flag), pause, resume, promote and roll back (each an Admin API call), then the same
rollback with a wrong token (refused). Every command's output, the generated
runbooks and every Postgres row are searched for both tokens.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from shadowcanary.launcher.worker import REPO_ROOT
from shadowcanary.store.db import make_engine
from shadowcanary.testing.unleash import UnleashHandle

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PG_PASSWORD = "pg-pw-Unleash-77Qx"
WRONG_TOKEN = "*:*.wrong-admin-token-Kq93"


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shadowcanary.cli.main", *args],
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _with_password(database_url: str) -> str:
    scheme, rest = database_url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user.split(':')[0]}:{PG_PASSWORD}@{host}"


def test_operator_commands_on_unleash_never_show_the_admin_token(
    unleash: UnleashHandle, database_url: str, tmp_path: Path
) -> None:
    """Commands, runbooks and rows hold neither the token nor a wrong one that was refused."""
    name = f"leak-{uuid.uuid4().hex[:8]}"
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"name: {name}\nflag: {name}-flag\nbaseline: gpt-5.2\ncandidate: gpt-5.5\n"
        "unleash: {project: default, environment: development}\n",
        encoding="utf-8",
    )
    database = _with_password(database_url)
    env = {
        "SHADOWCANARY_DATABASE_URL": database,
        "SHADOWCANARY_REDIS_URL": "redis://127.0.0.1:9/0",
        "SHADOWCANARY_DATA_DIR": str(tmp_path / "data"),
        "SHADOWCANARY_RUNBOOKS_DIR": str(tmp_path / "runbooks"),
        "SHADOWCANARY_FLAGS": "unleash",
        "SHADOWCANARY_UNLEASH_URL": unleash.url,
        "SHADOWCANARY_UNLEASH_ADMIN_TOKEN": unleash.admin_token,
        "SHADOWCANARY_LOG_LEVEL": "debug",
    }
    outputs: dict[str, str] = {}
    for args in (
        ["rollout", "start", str(plan)],
        ["rollout", "pause", name],
        ["rollout", "resume", name],
        ["rollout", "promote", name],
        ["rollout", "rollback", name, "--reason", "leak test"],
        ["rollout", "history", name, "--json", "--with-inputs"],
        ["runbook", name, "--output-dir", str(tmp_path / "runbooks")],
    ):
        result = _cli(env, *args)
        assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
        outputs[" ".join(args[:2])] = result.stdout + result.stderr
    refused = _cli(
        {**env, "SHADOWCANARY_UNLEASH_ADMIN_TOKEN": WRONG_TOKEN}, "rollout", "rollback", name
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    outputs["refused rollback"] = refused.stdout + refused.stderr
    assert "Traceback" not in outputs["refused rollback"]

    for path in (tmp_path / "runbooks").rglob("*"):
        if path.is_file():
            outputs[f"file {path.name}"] = path.read_text(encoding="utf-8")
    assert any(k.startswith("file ") and name in k for k in outputs), sorted(outputs)
    engine = make_engine(database, pool_size=1)
    try:
        with engine.connect() as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    text("select tablename from pg_tables where schemaname = 'public'")
                )
            ]
            for table in tables:
                rows = conn.execute(text(f'select t::text from "{table}" t'))
                outputs[f"table {table}"] = "\n".join(r[0] for r in rows)
    finally:
        engine.dispose()
    assert name in outputs["table rollout_audit"]

    for secret in (unleash.admin_token, WRONG_TOKEN, PG_PASSWORD):
        leaks = [where for where, content in outputs.items() if secret in content]
        assert leaks == [], f"a secret ({len(secret)} chars) appears in {leaks}"
