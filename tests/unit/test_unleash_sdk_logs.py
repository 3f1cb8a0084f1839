"""While Unleash is unreachable, UnleashClientEvaluator logs one warning, not a traceback per poll.

The real SDK polls a loopback port nobody listens on, every second. Its own failure
lines (ERROR with a traceback, on every poll) must not reach the log handlers; our
evaluator says once, at warning, that Unleash is unreachable, and keeps the SDK's
lines at debug. ``start()`` returns without waiting on the server, even one that hangs.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from flags.router import ModelRouter, UnleashClientEvaluator
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.servers import free_port

FAILED_POLLS = 3  # enough to show that later failures stay quiet


def _evaluator(port: int, *, seconds: int, cache: Path) -> UnleashClientEvaluator:
    """The real SDK against a local port, polling and timing out every ``seconds``."""
    return UnleashClientEvaluator(
        f"http://127.0.0.1:{port}",
        "default:development.not-a-real-token",
        refresh_interval_s=seconds,
        request_timeout_s=seconds,
        cache_directory=str(cache),
        send_metrics=False,
    )


def test_an_unreachable_unleash_is_one_warning_and_tracebacks_stay_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    evaluator = _evaluator(free_port(), seconds=1, cache=tmp_path)
    with capture_logs() as events:
        evaluator.start()
        try:
            router = ModelRouter(evaluator, "any-flag", "gpt-5.2", stickiness="userId")
            routed = {router.model_for({"user_id": f"user-{i}"}) for i in range(200)}

            def failed_fetches() -> int:
                return sum(
                    e["event"] == "unleash_sdk_log" and "feature fetch failed" in e["message"]
                    for e in list(events)
                )

            wait_until(
                lambda: failed_fetches() >= FAILED_POLLS,
                timeout_s=FAILED_POLLS * 2 + 10,
                interval_s=0.1,
                what=f"{FAILED_POLLS} failed polls",
            )
        finally:
            evaluator.close()

    assert routed == {"gpt-5.2"}
    warnings = [e for e in events if e["log_level"] == "warning"]
    assert [e["event"] for e in warnings] == ["unleash_unreachable"], warnings
    assert warnings[0]["error"] == "ConnectionError"
    assert evaluator.reachability.reachable is False
    assert evaluator.reachability.outages == 1
    # The SDK's own lines kept at debug, with their traceback for whoever turns debug on...
    debug = [e for e in events if e["event"] == "unleash_sdk_log"]
    assert any(e.get("exc_info") for e in debug)
    # ...and nothing of the SDK or its scheduler reached a log handler at warning or above.
    loud = [(r.name, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == []


def test_start_returns_while_a_hanging_unleash_has_not_answered(tmp_path: Path) -> None:
    """start() leaves the first fetch to the background; flags fail open meanwhile."""
    # A listening socket that never answers: the SDK's request connects and then hangs
    # for its whole 20 s timeout. Had start() waited on it, it would return only after
    # that fetch failed, with the outage already recorded.
    with socket.create_server(("127.0.0.1", 0)) as hanging:
        evaluator = _evaluator(hanging.getsockname()[1], seconds=20, cache=tmp_path)
        evaluator.start()
        outages_at_return = evaluator.reachability.outages
        router = ModelRouter(evaluator, "any-flag", "gpt-5.2", stickiness="userId")
        routed = {router.model_for({"user_id": f"user-{i}"}) for i in range(20)}
        _hang_up(hanging)
    evaluator.close()  # waits at most one request timeout for a request still hanging
    assert outages_at_return == 0, "start() returned only after the fetch had failed"
    assert routed == {"gpt-5.2"}


def _hang_up(server: socket.socket) -> None:
    """Accept and close what the SDK has connected so far: its hung requests fail now."""
    server.settimeout(0.2)
    with contextlib.suppress(OSError):  # the timeout: nothing more is waiting
        while True:
            connection, _ = server.accept()
            connection.close()
