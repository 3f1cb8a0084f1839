"""Run a real Celery worker process: its command line (CLI, up, demo) and a supervised child."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from shadowcanary import constants
from shadowcanary.launcher.processes import PACKAGE_ROOT, ChildProcess, child_env

REPO_ROOT = PACKAGE_ROOT  # the checkout: workers run from it


def worker_command(
    *,
    name: str = "worker",
    queues: Sequence[str] = (constants.QUEUE_INGEST, constants.QUEUE_REPLAY),
    pool: str | None = None,
    concurrency: int | None = None,
) -> list[str]:
    """The ``celery worker`` command line for shadowcanary's app (CLI, tests, benchmarks)."""
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "worker",
        "-Q",
        ",".join(queues),
        "-n",
        f"{name}@%h",
        "-l",
        "info",
        # Workers share nothing but Redis and Postgres: no need for peer chatter.
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if pool:
        cmd += ["-P", pool]
    if concurrency:
        cmd += ["-c", str(concurrency)]
    return cmd


@dataclass
class WorkerProcess(ChildProcess):
    """A ``celery worker`` subprocess whose output is collected for assertions."""

    proc: subprocess.Popen[str]
    # The most recent output only: a long-running worker must not grow without bound.
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=5000))

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(text in line for line in list(self.lines)):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.proc.returncode}:\n{self.output()[-4000:]}"
                )
            time.sleep(0.05)
        raise TimeoutError(
            f"worker did not print {text!r} in {timeout_s}s:\n{self.output()[-4000:]}"
        )


@contextmanager
def run_worker(
    env: Mapping[str, str],
    *,
    name: str = "worker",
    queues: Sequence[str] = (constants.QUEUE_INGEST, constants.QUEUE_REPLAY),
    pool: str | None = None,
    concurrency: int | None = None,
    ready_timeout_s: float = 60.0,
) -> Iterator[WorkerProcess]:
    """Start a worker with ``env`` added to the environment; wait until it is ready."""
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        worker_command(name=name, queues=queues, pool=pool, concurrency=concurrency),
        cwd=REPO_ROOT,
        env=child_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    worker = WorkerProcess(proc)
    pump = threading.Thread(target=worker._pump, daemon=True)
    pump.start()
    try:
        worker.wait_for("ready.", timeout_s=ready_timeout_s)
        yield worker
    finally:
        worker.stop()
        # The pipe ends when the worker (and any child holding it) has exited; close it
        # here rather than leave it to the garbage collector (a ResourceWarning).
        pump.join(timeout=5)
        if proc.stdout is not None and not pump.is_alive():
            proc.stdout.close()
