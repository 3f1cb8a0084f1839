"""Keep a Celery worker running: restart it when it exits on its own.

kombu can kill a worker when the Redis connection drops (a race in its reconnect,
``AttributeError: 'NoneType' object has no attribute 'hostname'`` in
``restore_unacked``, celery/kombu#582), and a worker killed by the OOM killer or a
stray ``kill -9`` is gone too. Nothing is lost when that happens (its unacked tasks
stay in Redis and are redelivered after the visibility timeout), but the pipeline
stops until someone starts a worker again. ``shadowcanary worker`` therefore runs the
Celery worker as a child and restarts it, with backoff, unless it was asked to stop.

A worker that keeps dying right after it starts (a bad setting, Postgres refusing the
password) is not restarted forever: after ``max_quick_failures`` in a row the
supervisor exits with the worker's code, so the error is seen.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How the supervisor restarts: backoff between starts, and when to give up."""

    backoff_start_s: float = 1.0
    backoff_max_s: float = 30.0
    # A run shorter than this counts as a failure to start, not a crash in service.
    quick_failure_s: float = 10.0
    max_quick_failures: int = 5


def supervise(
    cmd: Sequence[str],
    env: Mapping[str, str],
    *,
    policy: RestartPolicy = RestartPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run ``cmd`` until it is asked to stop (SIGTERM/SIGINT, passed on); returns its code."""
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        backoff = policy.backoff_start_s
        quick_failures = 0
        while True:
            started = time.monotonic()
            child = subprocess.Popen(list(cmd), env=dict(env))  # noqa: S603 - our own command
            log.info("worker.started", pid=child.pid)
            code = child.wait()
            if stopping:
                return code
            ran_s = time.monotonic() - started
            quick_failures = quick_failures + 1 if ran_s < policy.quick_failure_s else 0
            if quick_failures >= policy.max_quick_failures:
                log.error(
                    "worker.gave_up",
                    code=code,
                    failures=quick_failures,
                    hint="the worker keeps exiting right after it starts; see its output above",
                )
                return code or 1
            if ran_s >= policy.quick_failure_s:
                backoff = policy.backoff_start_s
            log.warning("worker.exited_restarting", code=code, ran_s=round(ran_s, 1), in_s=backoff)
            sleep(backoff)
            if stopping:
                return code
            backoff = min(policy.backoff_max_s, backoff * 2)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
