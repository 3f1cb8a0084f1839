"""A real Unleash server (npm ``unleash-server``) for tests and CI.

``run_unleash(postgres)`` creates a fresh database on the given PostgreSQL, starts
``node .ci/unleash/start.mjs`` on a free loopback port and waits for ``/health``. The
handle can stop and start the server again (same port, same database) so tests can
simulate "Unleash is down". Nothing here is a fake: it is the server production runs.

Install it once with ``npm ci --prefix .ci/unleash`` (``make test`` and ``.ci/run``
do that); without it ``run_unleash`` raises ``ServerUnavailable``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

import shadowcanary
from shadowcanary.testing.servers import PostgresServer, ServerUnavailable, free_port

# The checkout's .ci/unleash (package.json, package-lock.json, start.mjs).
UNLEASH_DIR = Path(shadowcanary.__file__).resolve().parents[1] / ".ci" / "unleash"
# A fresh database takes ~3.5 s to migrate; a slow CI machine gets plenty more.
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0


def unleash_dir() -> Path:
    """Where unleash-server is installed: $SHADOWCANARY_UNLEASH_DIR or .ci/unleash."""
    return Path(os.environ.get("SHADOWCANARY_UNLEASH_DIR") or UNLEASH_DIR)


def check_installed(directory: Path | None = None) -> tuple[str, Path]:
    """The node binary and the start script, or ServerUnavailable saying how to install."""
    directory = directory or unleash_dir()
    node = shutil.which("node")
    if node is None:
        raise ServerUnavailable("node not found; Unleash needs Node 20 (apt-get install nodejs)")
    if not (directory / "node_modules" / "unleash-server" / "package.json").exists():
        raise ServerUnavailable(
            f"unleash-server is not installed in {directory}; run: npm ci --prefix {directory}"
        )
    return node, directory / "start.mjs"


@dataclass
class UnleashHandle:
    """A running Unleash server. Tokens are secrets: they are kept out of the repr."""

    url: str  # http://127.0.0.1:PORT (the UI and /health)
    admin_token: str = field(repr=False)  # for the Admin API (flags/unleash.py)
    backend_token: str = field(repr=False)  # for UnleashClient (environment "development")
    port: int
    database_url: str = field(repr=False)
    log_path: Path
    _command: list[str] = field(repr=False)
    _env: dict[str, str] = field(repr=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def api_url(self) -> str:
        """The base URL UnleashClient wants (``.../api``)."""
        return f"{self.url}/api"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the server (again) and return once /health answers 200."""
        if self.running:
            return
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - our own fixed command
            self._command,
            cwd=Path(self._command[1]).parent,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in pytest is ours to forward, not node's
        )
        self._wait_healthy(timeout_s)

    def stop(self) -> None:
        """Stop the server and wait until its port is closed ("Unleash is down")."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._process is None or self._process.poll() is not None:
                    code = None if self._process is None else self._process.returncode
                    self.stop()
                    raise RuntimeError(
                        f"unleash-server exited with code {code} while starting; "
                        f"its log ({self.log_path}) ends with:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/health").status_code == 200:
                        return
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(
            f"unleash-server not healthy at {self.url}/health after {timeout_s}s; "
            f"its log ({self.log_path}) ends with:\n{self.log_tail()}"
        )


def _admin_execute(maintenance_url: URL, statement: str) -> None:
    # AUTOCOMMIT: CREATE/DROP DATABASE cannot run inside a transaction.
    engine = create_engine(maintenance_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def _node_database_url(url: URL) -> str:
    """The libpq-style URL node-postgres understands (no SQLAlchemy driver suffix)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def run_unleash(
    postgres: PostgresServer | str, *, port: int | None = None
) -> Iterator[UnleashHandle]:
    """Start Unleash on its own new database of ``postgres``; drop it all afterwards.

    ``postgres`` is a PostgresServer or the SQLAlchemy URL of any database on the server
    (the new database ``unleash_<hex>`` is created next to it).
    """
    node, script = check_installed()
    maintenance = make_url(postgres.url if isinstance(postgres, PostgresServer) else postgres)
    database = f"unleash_{uuid.uuid4().hex}"
    _admin_execute(maintenance, f'CREATE DATABASE "{database}"')
    work = Path(tempfile.mkdtemp(prefix="sc-unleash-"))
    port = port or free_port()
    node_url = _node_database_url(maintenance.set(database=database))
    env = {
        **os.environ,
        "DATABASE_URL": node_url,
        "UNLEASH_HOST": "127.0.0.1",
        "UNLEASH_PORT": str(port),
        "UNLEASH_URL": f"http://127.0.0.1:{port}",
        "UNLEASH_PARENT_PID": str(os.getpid()),  # start.mjs exits if we die unannounced
        "SEND_TELEMETRY": "false",
        "CHECK_VERSION": "false",
        "INIT_ADMIN_API_TOKENS": f"*:*.{secrets.token_hex(24)}",
        "INIT_BACKEND_API_TOKENS": f"default:development.{secrets.token_hex(24)}",
    }
    handle = UnleashHandle(
        url=f"http://127.0.0.1:{port}",
        admin_token=env["INIT_ADMIN_API_TOKENS"],
        backend_token=env["INIT_BACKEND_API_TOKENS"],
        port=port,
        database_url=node_url,
        log_path=work / "unleash.log",
        _command=[node, str(script)],
        _env=env,
    )
    try:
        handle.start()
        yield handle
    finally:
        handle.stop()
        with contextlib.suppress(Exception):  # the server may be gone already
            _admin_execute(maintenance, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)
