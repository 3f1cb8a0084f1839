"""Throwaway real servers (Redis, PostgreSQL) for tests and benchmarks.

These start the real Debian binaries (``redis-server``, ``initdb``/``pg_ctl``) on a
free loopback port in a private directory and stop them by pid file. Nothing here
is a fake: tests get the same servers production runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


class ServerUnavailable(RuntimeError):
    """The binary for a test server is not installed on this machine."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


@dataclass
class RedisServer:
    """A redis-server process that can be stopped and started again on the same port."""

    directory: Path
    port: int = field(default_factory=free_port)
    # AOF with fsync every second, as docker-compose.yml runs it (outage tests).
    appendonly: bool = False
    # Also listen on a unix socket, as the embedded default does (``unix_url``).
    unix_socket: bool = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def socket_path(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def unix_url(self) -> str:
        """The redis-py spelling of the socket URL, as the embedded default hands it out."""
        if not self.unix_socket:
            raise ValueError("this RedisServer was started without unix_socket=True")
        return f"unix://{self.socket_path}?db=0"

    @property
    def pidfile(self) -> Path:
        return self.directory / "redis.pid"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerUnavailable("redis-server not found (apt-get install redis-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(  # noqa: S603 - our own fixed arguments
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--daemonize",
                "yes",
                "--dir",
                str(self.directory),
                "--pidfile",
                str(self.pidfile),
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "everysec",
                "--logfile",
                str(self.directory / "redis.log"),
                *(["--unixsocket", str(self.socket_path)] if self.unix_socket else []),
            ],
            check=True,
        )
        wait_for_port(self.port)
        # --daemonize writes the pid file a moment after the port opens; stop() and the
        # tests that signal the server need it.
        deadline = time.monotonic() + 10
        while not self.pid():
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server wrote no pid file at {self.pidfile}")
            time.sleep(0.01)
        return self

    def pid(self) -> int | None:
        """The server's pid from its pid file, or None while it is not written."""
        try:
            text = self.pidfile.read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def stop(self, *, graceful: bool = False) -> None:
        """Stop the server and wait until the port is closed.

        ``graceful`` sends SIGTERM (Redis writes its AOF out, like ``docker compose
        stop``); the default SIGKILL is a crash.
        """
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM if graceful else signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        self.pidfile.unlink(missing_ok=True)


@dataclass
class PostgresServer:
    """A PostgreSQL cluster in its own directory, run as the ``postgres`` OS user when root."""

    directory: Path
    port: int = field(default_factory=free_port)
    # synchronous_commit on, as in production: a crash (the immediate stop) then loses
    # no committed transaction. Off by default: tests that never crash it run faster.
    durable: bool = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603

    def _bin(self, name: str) -> str:
        for d in PG_BIN_DIRS:
            if (d / name).exists():
                return str(d / name)
        found = shutil.which(name)
        if found is None:
            raise ServerUnavailable(f"{name} not found (apt-get install postgresql)")
        return found

    def start(self) -> PostgresServer:
        data = self.directory / "data"
        if not (data / "PG_VERSION").exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(self.directory, "postgres", "postgres")
            self._run(
                self._bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
            )
        self._run(
            self._bin("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self.directory / "pg.log"),
            "-w",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.directory} "
            f"-c fsync=off -c synchronous_commit={'on' if self.durable else 'off'} "
            "-c full_page_writes=off -c max_connections=300",
            "start",
        )
        return self

    def stop(self) -> None:
        data = self.directory / "data"
        if (data / "postmaster.pid").exists():
            self._run(self._bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
