"""How to start a worker process (one place for the CLI, the tests and the benchmarks)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from shadowcanary import constants


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
