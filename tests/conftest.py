"""Shared fixtures: real Redis and PostgreSQL servers, started once per test session.

A missing server binary skips the integration tests on a laptop but fails them in CI
(``CI`` set), so CI can never go green by running nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shadowcanary.testing.servers import PostgresServer, RedisServer, ServerUnavailable


def _unavailable(exc: ServerUnavailable) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide this server: {exc}")
    pytest.skip(str(exc))


def _scratch(prefix: str) -> Path:
    # Under /tmp rather than pytest's tmp_path: the postgres OS user must traverse it.
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the whole session."""
    server = RedisServer(_scratch("sc-redis-"))
    try:
        server.start()
    except ServerUnavailable as exc:
        _unavailable(exc)
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


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
    server = RedisServer(_scratch("sc-redis-own-"))
    try:
        server.start()
    except ServerUnavailable as exc:
        _unavailable(exc)
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


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
