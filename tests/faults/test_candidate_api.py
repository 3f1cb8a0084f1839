"""The candidate's API misbehaves under steady traffic: every event still ends accounted for.

429 storms and 5xx bursts come from the simulator's fault profile (admin endpoint);
hangs beyond the client timeout, truncated streams and invalid JSON bodies from the
loopback fault proxy between the workers and the simulator's candidate.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.store.db import make_engine
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.tcp_proxy import tcp_proxy
from tests.faults.stack import assert_balanced, read_books, settle, steady_traffic
from tests.integration.conftest import models_setting
from tests.integration.pipeline import rows, sim_calls

pytestmark = pytest.mark.integration

PHASE_S = 4.0  # how long each fault lasts at least


def _phase(count: Callable[[], int], what: str) -> None:
    """Keep the current fault for PHASE_S, and until it has hit at least 5 calls."""
    started = time.monotonic()
    wait_until(
        lambda: count() >= 5 and time.monotonic() - started >= PHASE_S,
        timeout_s=30,
        interval_s=0.1,
        what=f"the workers to meet the fault ({what})",
    )


def test_429_5xx_hangs_cut_streams_and_garbage_bodies_leave_nothing_unaccounted(
    worker_env: dict[str, str], redis_url: str, database_url: str, sim: SimHandle
) -> None:
    """Each fault in turn for a few seconds; afterwards every event is compared or dead-lettered."""
    engine = make_engine(database_url)
    rollout = "fault-candidate"
    with tcp_proxy(sim.port) as proxy:
        env = {
            **worker_env,
            "SHADOWCANARY_MODELS": models_setting(
                f"http://127.0.0.1:{proxy.port}/v1", timeout_s=1.0
            ),
            # Streamed replays, so a cut connection is a truncated SSE stream.
            "SHADOWCANARY_REPLAY__STREAM": "true",
            "SHADOWCANARY_REPLAY__MAX_ATTEMPTS": "6",
            "SHADOWCANARY_REPLAY__BACKOFF_BASE_S": "0.3",
            "SHADOWCANARY_REPLAY__BACKOFF_MAX_S": "2",
        }
        limited, failed = sim_calls(sim, "gpt-5.5", 429), sim_calls(sim, "gpt-5.5", 500)
        try:
            with run_worker(env) as worker, steady_traffic(redis_url, rollout, rate=25) as traffic:
                wait_until(
                    lambda: read_books(engine, rollout).compared >= 30,
                    timeout_s=60,
                    what="replays flowing before the faults",
                )
                # Each fault lasts PHASE_S and at least until the workers have met it.
                sim.set_profile("gpt-5.5", rate_limit_rate=0.7, retry_after_s=0.2)
                _phase(lambda: sim_calls(sim, "gpt-5.5", 429) - limited, "429s")
                sim.set_profile("gpt-5.5", rate_limit_rate=0.0, error_rate=1.0)
                _phase(lambda: sim_calls(sim, "gpt-5.5", 500) - failed, "500s")
                sim.set_profile("gpt-5.5", error_rate=0.0)
                for fault, counter in (
                    ({"hang": True}, "hung"),
                    ({"garbage": True}, "garbage"),
                    ({"cut_after_bytes": 700}, "cut"),
                ):
                    proxy.clear()
                    proxy.set_fault(**fault)
                    proxy.drop_connections()  # pooled keep-alive connections see it too
                    _phase(lambda c=counter: getattr(proxy.stats, c), counter)
                proxy.clear()
                proxy.drop_connections()
                stats = traffic.stop()
                books = settle(engine, rollout, stats.published, diagnostics=worker.output)
        finally:
            sim.set_profile("gpt-5.5", rate_limit_rate=0.0, error_rate=0.0)

    assert sim_calls(sim, "gpt-5.5", 429) > limited, "the 429 storm happened"
    assert sim_calls(sim, "gpt-5.5", 500) > failed, "the 5xx burst happened"
    assert proxy.stats.hung > 0 and proxy.stats.garbage > 0 and proxy.stats.cut > 0
    assert_balanced(books, traffic.emitted, stats)
    # Every error was classified: retried (then compared) or dead-lettered with its cause.
    letters = rows(engine, "select error_class, message from dead_letters where stage = 'replay'")
    assert all(cls and message for cls, message in letters)
    statuses = dict(
        rows(engine, "select status, count(*) from replays where kind = 'candidate' group by 1")
    )
    # A cut or garbled stream is never taken for an answer: every recorded replay is whole.
    assert not rows(
        engine, "select kind from replays where status = 'ok' and output->>'finish_reason' is null"
    )
    assert statuses.get("ok", 0) > 0, statuses
