"""Shared fixtures: real Redis and PostgreSQL servers, started once per test session.

A missing server binary skips the integration tests on a laptop but fails them in CI
(``CI`` set), so CI can never go green by running nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

import shadowcanary.logging
from shadowcanary.testing.servers import PostgresServer, RedisServer, ServerUnavailable
from shadowcanary.testing.unleash import UnleashHandle
from tests.browser import browser  # noqa: F401 - the headless-browser fixture, for every test

# In-process CLI runs configure logging; capture_logs must still see every logger.
shadowcanary.logging.CACHE_LOGGERS = False

# In CI the fuzz tests replay the same examples every run, so a red build always
# reproduces; locally they explore new examples each run to find new bugs.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


def _unavailable(exc: ServerUnavailable) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide this server: {exc}")
    pytest.skip(str(exc))


def _scratch(prefix: str) -> Path:
    # Under /tmp rather than pytest's tmp_path: the postgres OS user must traverse it.
    return Path(tempfile.mkdtemp(prefix=prefix))


@contextmanager
def started_redis(prefix: str, **options: Any) -> Iterator[RedisServer]:
    """A redis-server in a scratch directory, removed with it afterwards."""
    server = RedisServer(_scratch(prefix), **options)
    try:
        server.start()
    except ServerUnavailable as exc:
        _unavailable(exc)
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the whole session."""
    with started_redis("sc-redis-") as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of the session Redis, flushed before each test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis this test may stop and start (for outage tests)."""
    with started_redis("sc-redis-own-") as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL cluster for the whole session."""
    server = PostgresServer(_scratch("sc-pg-"))
    try:
        server.start()
    except ServerUnavailable as exc:
        _unavailable(exc)
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


# --- Postgres databases for store tests (shadowcanary.store) --------------------------

SC_TEMPLATE_DB = "sc_template"


def _pg_admin(server: PostgresServer, *statements: str) -> None:
    """Run statements on the server's 'postgres' database outside any transaction."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    # AUTOCOMMIT: CREATE/DROP DATABASE cannot run inside a transaction.
    engine = create_engine(server.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def _database_url(server: PostgresServer, name: str) -> str:
    return server.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def migrated_template(postgres_server: PostgresServer) -> str:
    """URL of database sc_template on the session Postgres, migrated to head (a TEMPLATE)."""
    from shadowcanary.store.db import migrate

    _pg_admin(
        postgres_server,
        f'DROP DATABASE IF EXISTS "{SC_TEMPLATE_DB}" WITH (FORCE)',
        f'CREATE DATABASE "{SC_TEMPLATE_DB}"',
    )
    url = _database_url(postgres_server, SC_TEMPLATE_DB)
    # migrate() uses a NullPool engine: no session is left on the template afterwards.
    migrate(url)
    return url


@pytest.fixture
def database_url(postgres_server: PostgresServer, migrated_template: str) -> Iterator[str]:
    """A fresh migrated database for this test (a copy of sc_template), dropped afterwards."""
    import uuid

    name = f"test_{uuid.uuid4().hex}"
    _pg_admin(postgres_server, f'CREATE DATABASE "{name}" TEMPLATE "{SC_TEMPLATE_DB}"')
    yield _database_url(postgres_server, name)
    _pg_admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database with no schema at all (for migration tests), dropped afterwards."""
    import uuid

    name = f"empty_{uuid.uuid4().hex}"
    _pg_admin(postgres_server, f'CREATE DATABASE "{name}"')
    yield _database_url(postgres_server, name)
    _pg_admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Unleash: the real server from npm, ONE per session for every test folder ---------


@pytest.fixture(scope="session")
def unleash(postgres_server: PostgresServer) -> Iterator[UnleashHandle]:
    """A real Unleash server (.ci/unleash) on its own database of the session Postgres.

    Shared by the session: use unique flag names. A test that calls ``stop()`` must
    ``start()`` it again (same port, same data). Skips when unleash-server is not
    installed (``npm ci --prefix .ci/unleash``), fails instead under CI.
    """
    from shadowcanary.testing.servers import ServerUnavailable
    from shadowcanary.testing.unleash import check_installed, run_unleash

    try:
        check_installed()
    except ServerUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide the Unleash server: {exc}")
        pytest.skip(str(exc))
    with run_unleash(postgres_server) as handle:
        yield handle
