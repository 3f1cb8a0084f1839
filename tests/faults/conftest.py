"""Fixtures of the fault-injection suite: servers the tests stop, start and slow down.

The simulator, worker environment and Unleash fixtures are the data-path ones
(tests/integration/conftest.py); here are the servers a test owns outright.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shadowcanary.testing.servers import PostgresServer, RedisServer, ServerUnavailable
from tests.conftest import _unavailable, started_redis
from tests.integration.conftest import sim, worker_env  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def runbooks_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runbooks the controller writes go to the test's directory, not the checkout."""
    directory = tmp_path / "runbooks"
    monkeypatch.setenv("SHADOWCANARY_RUNBOOKS_DIR", str(directory))
    return directory


@pytest.fixture
def persistent_redis() -> Iterator[RedisServer]:
    """A Redis with AOF (appendfsync everysec) as docker-compose runs it; the test may stop it."""
    with started_redis("sc-redis-aof-", appendonly=True) as server:
        yield server


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of this test alone (it gets stopped), migrated to head."""
    from shadowcanary.store.db import migrate

    # Under /tmp, not tmp_path: the postgres OS user must traverse the directory.
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="sc-pg-fault-")), durable=True)
    try:
        server.start()
    except ServerUnavailable as exc:
        _unavailable(exc)
    migrate(server.url)
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)
