"""Alembic migrations against a real PostgreSQL: no drift from the models, CLI and code paths."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

import shadowcanary
from shadowcanary.errors import ConfigError
from shadowcanary.store.db import (
    database_ready,
    head_revision,
    make_engine,
    migrate,
    newest_revision_file,
)
from shadowcanary.store.models import Base

pytestmark = pytest.mark.integration

# The checkout holding alembic.ini and migrations/, next to the shadowcanary package.
REPO_ROOT = Path(shadowcanary.__file__).resolve().parents[1]

STORE_TABLES = {
    "captures",
    "replays",
    "comparisons",
    "dead_letters",
    "live_rollups",
    "shadow_rollups",
}


def tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_models_and_migrations_do_not_drift(database_url: str) -> None:
    """A database migrated to head has exactly the schema the models declare."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == [], "models and migrations differ; add a migration:\n" + "\n".join(
        map(str, differences)
    )


def alembic_cli(*args: str, env_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWCANARY_")}
    if env_url is not None:
        env["SHADOWCANARY_DATABASE_URL"] = env_url
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_alembic_cli_upgrades_and_downgrades_from_repo_root(empty_database_url: str) -> None:
    """`alembic upgrade head` (URL from the env) creates the tables; `downgrade base` drops them."""
    plain_url = empty_database_url.replace("postgresql+psycopg://", "postgresql://")
    up = alembic_cli("upgrade", "head", env_url=plain_url)
    assert up.returncode == 0, up.stderr
    assert tables(empty_database_url) >= STORE_TABLES

    down = alembic_cli("-x", f"url={plain_url}", "downgrade", "base")
    assert down.returncode == 0, down.stderr
    assert tables(empty_database_url) == {"alembic_version"}


def test_alembic_cli_without_url_says_how_to_set_it() -> None:
    """With no URL configured, alembic fails naming SHADOWCANARY_DATABASE_URL."""
    result = alembic_cli("upgrade", "head")
    assert result.returncode != 0
    assert "SHADOWCANARY_DATABASE_URL" in result.stderr


def test_migrate_from_several_processes_at_once(empty_database_url: str) -> None:
    """Workers starting together may all call migrate(); one migrates, the others find head."""
    code = "import sys; from shadowcanary.store.db import migrate; migrate(sys.argv[1])"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWCANARY_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, empty_database_url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
    assert all(code == 0 for code, _ in results), results
    engine = make_engine(empty_database_url, pool_size=1)
    try:
        assert database_ready(engine)
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_heads() == (head_revision(),)
    finally:
        engine.dispose()


def test_migrate_from_several_threads_at_once(empty_database_url: str) -> None:
    """Concurrent migrate() calls inside one process are serialised, not interleaved."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate(empty_database_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    engine = make_engine(empty_database_url, pool_size=1)
    try:
        assert database_ready(engine)
    finally:
        engine.dispose()


def test_migrate_rejects_a_non_postgres_url() -> None:
    """migrate() refuses a non-Postgres URL with a ConfigError."""
    with pytest.raises(ConfigError, match="PostgreSQL only"):
        migrate("mysql://root@localhost/db")


def test_the_newest_migration_file_is_alembics_head() -> None:
    """migrate()'s fast path compares with the newest file: it must be Alembic's head."""
    assert newest_revision_file() == head_revision()
