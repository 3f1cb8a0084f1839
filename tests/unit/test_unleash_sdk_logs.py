"""While Unleash is unreachable, UnleashClientEvaluator logs one warning, not a traceback per poll.

The real SDK polls a loopback port nobody listens on, every second. Its own failure
lines (ERROR with a traceback, on every poll) must not reach the log handlers; our
evaluator says once, at warning, that Unleash is unreachable, and keeps the SDK's
lines at debug. ``start()`` returns without waiting on the unreachable server.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from flags.router import ModelRouter, UnleashClientEvaluator
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.servers import free_port

FAILED_POLLS = 3  # enough to show that later failures stay quiet


def test_an_unreachable_unleash_is_one_warning_and_tracebacks_stay_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    evaluator = UnleashClientEvaluator(
        f"http://127.0.0.1:{free_port()}",
        "default:development.not-a-real-token",
        refresh_interval_s=1,
        request_timeout_s=1,
        cache_directory=str(tmp_path),
        send_metrics=False,
    )
    with capture_logs() as events:
        began = time.perf_counter()
        evaluator.start()
        start_s = time.perf_counter() - began
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

    assert start_s < 0.5, f"start() took {start_s:.2f}s against a closed port"
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
