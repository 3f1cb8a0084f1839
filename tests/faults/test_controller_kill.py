"""kill -9 of the active controller in the middle of a step; the standby finishes it once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from flags.embedded import EmbeddedFlags
from shadowcanary.controller.operator import Operator
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.launcher.worker import run_worker
from shadowcanary.rollout_records import AuditAction, RolloutStatus
from shadowcanary.store.db import make_engine
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.tcp_proxy import tcp_proxy
from tests.faults.stack import assert_balanced, controller_process, settle, steady_traffic
from tests.integration.controller_harness import FakeClock, ports_for, small_plan
from tests.integration.pipeline import scalar

pytestmark = pytest.mark.integration

# Per chunk on the controllers' Postgres link: each statement of a tick takes ~0.2 s,
# so the test can see the step half done (intent written, flag or record not yet).
SLOW_LINK_MS = 80.0


@pytest.mark.parametrize("kill_after", ["intent", "flag_write"])
def test_kill9_mid_step_standby_completes_it_exactly_once(
    kill_after: str,
    database_url: str,
    redis_url: str,
    worker_env: dict[str, str],
    sim: SimHandle,
    tmp_path: Path,
) -> None:
    """The holder dies after writing its intent (or the flag); the standby ends at 10 %, once."""
    rollout = f"fault-kill-{kill_after.replace('_', '-')}"
    flag = f"{rollout}-flag"
    engine = make_engine(database_url)
    flags = EmbeddedFlags(engine)
    pg = make_url(database_url)
    clock = FakeClock(datetime.now(UTC))
    store = ports_for(engine, database_url, flags, clock).store
    with tcp_proxy(pg.port or 5432) as slow_pg:
        slow_url = pg.set(port=slow_pg.port).render_as_string(hide_password=False)
        slow_pg.set_fault(delay_ms=SLOW_LINK_MS)
        env = {"SHADOWCANARY_DATABASE_URL": slow_url}
        Operator(ports_for(engine, database_url, flags, clock, actor="cli:sre")).start(
            # No p99 trigger: the first tick takes the first step at once.
            small_plan(rollout, flag, triggers="  p99_latency: off")
        )
        with (
            run_worker(worker_env) as worker,
            steady_traffic(redis_url, rollout, rate=15) as traffic,
            controller_process(env, rollout, tmp_path / "a.log") as a,
            controller_process(env, rollout, tmp_path / "b.log") as b,
        ):

            def half_done() -> bool:
                intent = scalar(
                    engine,
                    "select count(*) from rollout_audit where rollout = :r and actor like "
                    "'controller@%' and to_percent is null and action = 'advance'",
                    r=rollout,
                )
                if kill_after == "intent":
                    return bool(intent)
                return flags.read(flag).effective_percent == 10 and store.get(rollout).percent == 0

            wait_until(half_done, timeout_s=60, interval_s=0.01, what=f"the {kill_after}")
            holder, standby = (a, b) if "lock acquired" in a.output() else (b, a)
            holder_state = (flags.read(flag).effective_percent, store.get(rollout).percent)
            holder.kill9()
            wait_until(
                lambda: "controller lock acquired" in standby.output(),
                timeout_s=30,
                what="the standby taking over",
            )
            # The standby acts, then keeps ticking (HOLDs: no complete minute at 10 % yet).
            wait_until(
                lambda: standby.output().count('"event": "decision"') >= 3,
                timeout_s=60,
                what="the standby deciding",
            )
            stats = traffic.stop()
            books = settle(engine, rollout, stats.published, diagnostics=worker.output)

    assert holder_state == ((0, 0) if kill_after == "intent" else (10, 0))
    record = store.get(rollout)
    assert (record.status, record.percent, record.step_index) == (RolloutStatus.RUNNING, 10, 0)
    assert flags.read(flag).effective_percent == 10
    history = store.history(rollout)
    assert not any(e.action is AuditAction.MANUAL_OVERRIDE for e in history)
    confirmed = [e for e in history if e.action is AuditAction.ADVANCE and e.to_percent]
    assert [e.to_percent for e in confirmed] == [10], "exactly one step, never two"
    # Its save may have landed before it died; if not, the standby recovered the step.
    assert confirmed[0].actor.endswith((f":{holder.pid}", f":{standby.pid}"))
    assert_balanced(books, traffic.emitted, stats)
