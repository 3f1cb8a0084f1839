"""The Prometheus exporters listen on SHADOWCANARY_METRICS_ADDR only (loopback by default).

On Linux all of 127.0.0.0/8 is loopback, so a second loopback address stands in for
"another interface": an exporter bound to every interface (0.0.0.0) answers on both
127.0.0.1 and 127.0.0.2; one bound to a single address answers on that one only.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from shadowcanary.launcher.worker import run_worker
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.servers import free_port
from tests.faults.stack import controller_process

pytestmark = pytest.mark.integration

OTHER_ADDRESS = "127.0.0.2"


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _serves_metrics(host: str, port: int, name: str) -> bool:
    try:
        return name in httpx.get(f"http://{host}:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return False


def test_the_worker_exporter_listens_on_loopback_only_by_default(
    worker_env: dict[str, str],
) -> None:
    port = free_port()
    with run_worker({**worker_env, "SHADOWCANARY_METRICS_PORT": str(port)}):
        wait_until(
            lambda: _serves_metrics("127.0.0.1", port, "shadowcanary_worker_replays_in_flight"),
            timeout_s=30,
            what="the worker's /metrics on 127.0.0.1",
        )
        assert not _accepts(OTHER_ADDRESS, port), "the worker's metrics answer beyond 127.0.0.1"


def test_the_controller_exporter_listens_on_the_configured_address_only(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "SHADOWCANARY_DATABASE_URL": database_url,
        "SHADOWCANARY_FLAGS": "embedded",
        "SHADOWCANARY_METRICS_PORT": str(port),
        "SHADOWCANARY_METRICS_ADDR": OTHER_ADDRESS,
    }
    log = tmp_path / "controller.log"
    with controller_process(env, "unused", log, all_rollouts=True) as controller:
        wait_until(
            lambda: (
                _serves_metrics(OTHER_ADDRESS, port, "shadowcanary_controller")
                or controller.proc.poll() is not None
            ),
            timeout_s=30,
            what=f"the controller's /metrics on {OTHER_ADDRESS}",
        )
        assert controller.proc.poll() is None, controller.output()[-3000:]
        assert not _accepts("127.0.0.1", port), f"metrics answer beyond {OTHER_ADDRESS}"
