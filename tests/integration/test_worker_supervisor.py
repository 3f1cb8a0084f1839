"""``shadowcanary worker`` keeps a worker running through Redis restarts and worker crashes."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from shadowcanary.launcher.processes import child_env, spawn_logged
from shadowcanary.launcher.sim import SimHandle
from shadowcanary.store.db import make_engine
from shadowcanary.testing.chaos import celery_pid
from shadowcanary.testing.factories import make_event
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.servers import RedisServer
from tests.integration.pipeline import scalar, send_ingest

_CLI = "from shadowcanary.cli.main import app; app()"


def test_the_worker_command_restarts_a_worker_that_dies_and_keeps_the_flow_going(
    worker_env: dict[str, str],
    own_redis: RedisServer,
    database_url: str,
    sim: SimHandle,
    tmp_path: Path,
) -> None:
    """Redis shut down and back, then the Celery worker killed: it is restarted, events flow."""
    engine = make_engine(database_url)
    env = child_env({**worker_env, "SHADOWCANARY_REDIS_URL": own_redis.url})
    log = tmp_path / "worker.log"
    supervisor = spawn_logged([sys.executable, "-c", _CLI, "worker"], env, log)

    def compared() -> int:
        return int(scalar(engine, "select count(*) from comparisons where kind = 'candidate'"))

    def flows(total: int) -> None:
        events = [make_event(model="gpt-5.2", rollout="supervised") for _ in range(5)]
        send_ingest(own_redis.url, [e.model_dump(mode="json") for e in events])
        wait_until(
            lambda: compared() == total,
            timeout_s=60,
            what=f"{total} events compared; worker output in {log}",
        )

    try:
        wait_until(lambda: "ready." in log.read_text(), timeout_s=60, what="the worker ready")
        flows(5)
        own_redis.stop(graceful=True)
        own_redis.start()
        flows(10)
        first = celery_pid(supervisor)
        assert first is not None, f"no Celery worker under the worker command; output in {log}"
        os.kill(first, signal.SIGKILL)
        wait_until(
            lambda: (
                celery_pid(supervisor) not in (None, first) and log.read_text().count("ready.") >= 2
            ),
            timeout_s=60,
            what=f"the worker restarted after kill -9 of {first}; output in {log}",
        )
        flows(15)
        assert supervisor.poll() is None, f"the worker command exited; output in {log}"
    finally:
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(timeout=30)
    assert code == 0, f"a requested stop ends the worker cleanly, got {code}; output in {log}"
