"""Child processes for tests and benchmarks: start them, wait until they serve, stop them.

The simulator, the gateway, Celery workers and the controller all run as real
subprocesses; this module holds what they have in common so each helper only says
what differs (its command, its readiness check, its handle).

Servers that pick their own port (``--port 0``) write it to a ``--port-file``; the
launcher polls that file and then a health endpoint, so parallel runs never race for
a port. Every server is also started with ``--exit-with-parent``: a crashed or killed
test run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import shadowcanary

PACKAGE_ROOT = Path(shadowcanary.__file__).resolve().parent.parent


def child_env(env: Mapping[str, str], *, inherit_settings: bool = False) -> dict[str, str]:
    """This process's environment plus ``env``, with the repository importable.

    Unless ``inherit_settings``, our own ``SHADOWCANARY_*`` settings are left out: the
    child gets exactly the settings the test gives it, whatever the developer's shell has.
    """
    full = {
        k: v for k, v in os.environ.items() if inherit_settings or not k.startswith("SHADOWCANARY_")
    }
    full.update(env)
    full["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_ROOT), full.get("PYTHONPATH")) if p
    )
    return full


def spawn_logged(
    cmd: Sequence[str], env: Mapping[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in the repository with stdout and stderr going to ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            list(cmd),
            cwd=PACKAGE_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_process(proc: subprocess.Popen[Any], *, grace_s: float) -> None:
    """SIGTERM (a clean shutdown), then SIGKILL if it is not gone within ``grace_s``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        kill_process(proc)


def kill_process(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL: no shutdown hooks, no acks, no flush: the crash case."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


@dataclass
class ChildProcess:
    """A subprocess a test owns: stopped cleanly or killed outright."""

    proc: subprocess.Popen[Any]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill9(self) -> None:
        kill_process(self.proc)

    def stop(self, grace_s: float = 15.0) -> None:
        stop_process(self.proc, grace_s=grace_s)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass(frozen=True, slots=True)
class Served:
    """A server started by ``serve_with_port_file``: its process, port and log."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder for a server's port file, log and configuration."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def serve_with_port_file(
    module: str,
    args: Sequence[str],
    *,
    workdir: Path,
    env: Mapping[str, str],
    ready_path: str,
    what: str,
    failure: type[RuntimeError],
    startup_timeout_s: float,
    stop_grace_s: float,
) -> Iterator[Served]:
    """Run ``python -m module args`` until the block exits, once ``ready_path`` answers 200.

    Raises ``failure`` (with the log's tail) when the server exits during start-up or
    is not ready within ``startup_timeout_s``.
    """
    port_file = workdir / "port"
    log_path = workdir / f"{what}.log"
    cmd = [sys.executable, "-m", module, *args, "--port-file", str(port_file)]
    cmd.append("--exit-with-parent")
    proc = spawn_logged(cmd, env, log_path)
    try:
        deadline = time.monotonic() + startup_timeout_s
        port = _wait_until_ready(proc, port_file, ready_path, deadline)
        if port is None:
            raise failure(
                f"{what} exited with code {proc.returncode} during start-up:\n{log_tail(log_path)}"
                if proc.poll() is not None
                else f"{what} not ready within {startup_timeout_s:g}s:\n{log_tail(log_path)}"
            )
        yield Served(proc, port, log_path)
    finally:
        stop_process(proc, grace_s=stop_grace_s)


def _wait_until_ready(
    proc: subprocess.Popen[bytes], port_file: Path, ready_path: str, deadline: float
) -> int | None:
    """The port once the server answers ``ready_path``; None if it died or the time ran out."""
    port: int | None = None
    while time.monotonic() < deadline and proc.poll() is None:
        if port is None and port_file.exists():
            text = port_file.read_text().strip()
            port = int(text) if text.isdigit() else None
        if port is not None:
            with contextlib.suppress(httpx.HTTPError):
                url = f"http://127.0.0.1:{port}{ready_path}"
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return port
        time.sleep(0.02)
    return None
