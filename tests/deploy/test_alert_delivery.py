"""A fault in a real process pages on-call: Prometheus -> Alertmanager -> webhook, with the runbook.

Real: the gateway process (its /metrics), Debian's Prometheus loading
deploy/prometheus/alerts.yml unchanged (runbook_base_url expanded from RUNBOOK_BASE_URL,
as in compose), Debian's Alertmanager with deploy/alertmanager/alertmanager.yml's route
(only the receiver URL and the waits made test-sized), and an HTTP webhook in this test.
The fault: the model's upstream is down, so the gateway's circuit breaker opens.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from shadowcanary.launcher.gateway import GATEWAY_TEST_KEY, run_gateway
from shadowcanary.launcher.processes import ChildProcess, log_tail, spawn_logged
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.servers import free_port
from tests.deploy.conftest import DEPLOY, require_tool

pytestmark = pytest.mark.integration

BASE_URL = "https://runbooks.example.com/shadowcanary"
INTERVAL_S = 1  # scrape and evaluation interval of this test's Prometheus


class Webhook:
    """An HTTP server keeping every Alertmanager notification it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((time.monotonic(), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, name: str) -> list[tuple[float, dict[str, Any]]]:
        return [
            (at, alert)
            for at, message in self.received
            for alert in message["alerts"]
            if alert["labels"]["alertname"] == name and alert["status"] == "firing"
        ]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.server.shutdown()


def _alertmanager(work: Path, webhook: Webhook) -> tuple[ChildProcess, int]:
    binary = require_tool("prometheus-alertmanager", "prometheus-alertmanager")
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    config["route"].update(group_wait="0s", group_interval="1s")
    for route in config["route"].get("routes", []):
        route["group_wait"] = "0s"
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook.url
    (work / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    cmd = [
        binary,
        f"--config.file={work / 'alertmanager.yml'}",
        f"--storage.path={work / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    return ChildProcess(spawn_logged(cmd, dict(os.environ), work / "alertmanager.log")), port


def _prometheus(work: Path, gateway_port: int, alertmanager_port: int) -> tuple[ChildProcess, int]:
    binary = require_tool("prometheus", "prometheus")
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval=f"{INTERVAL_S}s", evaluation_interval=f"{INTERVAL_S}s")
    config["rule_files"] = [str(DEPLOY / "prometheus" / "alerts.yml")]
    config["alerting"]["alertmanagers"][0]["static_configs"] = [
        {"targets": [f"127.0.0.1:{alertmanager_port}"]}
    ]
    config["scrape_configs"] = [
        {
            "job_name": "shadowcanary-gateway",
            "static_configs": [{"targets": [f"127.0.0.1:{gateway_port}"]}],
        }
    ]
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    cmd = [
        binary,
        f"--config.file={work / 'prometheus.yml'}",
        f"--storage.tsdb.path={work / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--enable-feature=expand-external-labels",
    ]
    env = {**os.environ, "RUNBOOK_BASE_URL": BASE_URL}
    return ChildProcess(spawn_logged(cmd, env, work / "prometheus.log")), port


def _scraped(prom_port: int) -> bool:
    query = 'up{job="shadowcanary-gateway"} == 1'
    answer = httpx.get(
        f"http://127.0.0.1:{prom_port}/api/v1/query", params={"query": query}, timeout=5
    ).json()
    return bool(answer["data"]["result"])


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_an_open_gateway_breaker_reaches_the_webhook_with_its_runbook_link(
    redis_url: str, webhook: Webhook, tmp_path: Path
) -> None:
    """Upstream down -> breaker open -> the alert arrives at the webhook with runbook_url."""
    dead_port = free_port()  # nothing listens: every call fails to connect
    models = {
        name: {"base_url": f"http://127.0.0.1:{dead_port}/v1", "api_key": "sk-test"}
        for name in ("gpt-5.2", "gpt-5.5")
    }
    env = {
        "SHADOWCANARY_REDIS_URL": redis_url,
        "SHADOWCANARY_MODELS": json.dumps(models),
        "SHADOWCANARY_STICKINESS_SALT": "alert-delivery-salt",
        "SHADOWCANARY_GATEWAY__ROUTES": json.dumps({"default": {}}),
        "SHADOWCANARY_GATEWAY__BREAKER_FAILURES": "3",
        "SHADOWCANARY_GATEWAY__BREAKER_OPEN_S": "600",
    }
    with run_gateway(env) as gateway:
        alertmanager, am_port = _alertmanager(tmp_path, webhook)
        prometheus, prom_port = _prometheus(tmp_path, gateway.port, am_port)
        try:
            for name, url in (
                ("alertmanager", f"http://127.0.0.1:{am_port}/-/ready"),
                ("prometheus", f"http://127.0.0.1:{prom_port}/-/ready"),
            ):
                wait_until(lambda u=url: _ready(u), timeout_s=60, interval_s=0.5, what=name)
            # Steady state first: Prometheus scrapes the gateway (target discovery takes a
            # few seconds after start), so the figure is fault -> page, not start-up.
            wait_until(
                lambda: _scraped(prom_port),
                timeout_s=60,
                interval_s=0.5,
                what="Prometheus scraping the gateway",
            )
            # The fault: calls fail until the breaker opens (state 2 on /metrics).
            for _ in range(3):
                httpx.post(
                    f"{gateway.base_url}/chat/completions",
                    headers={"Authorization": f"Bearer {GATEWAY_TEST_KEY}"},
                    json={"model": "gpt-5.2", "messages": [{"role": "user", "content": "hi"}]},
                    timeout=30,
                )
            opened, opened_wall = time.monotonic(), time.time()
            metrics = httpx.get(f"{gateway.root_url}/metrics", timeout=5).text
            assert 'shadowcanary_gateway_breaker_state{upstream="gpt-5.2"} 2.0' in metrics
            try:
                fired = wait_until(
                    lambda: webhook.alerts("ShadowcanaryGatewayBreakerOpen"),
                    timeout_s=150,  # the rule's 1-minute window, then the delivery
                    interval_s=0.2,
                    what="the alert at the webhook",
                )
            except AssertionError:
                raise AssertionError(
                    log_tail(tmp_path / "prometheus.log") + log_tail(tmp_path / "alertmanager.log")
                ) from None
            rules = httpx.get(f"http://127.0.0.1:{prom_port}/api/v1/alerts", timeout=5).json()
            active_at = [
                a["activeAt"]
                for a in rules["data"]["alerts"]
                if a["labels"]["alertname"] == "ShadowcanaryGatewayBreakerOpen"
            ]
        finally:
            prometheus.stop(grace_s=10)
            alertmanager.stop(grace_s=10)
    at, alert = fired[0]
    assert alert["labels"]["upstream"] == "gpt-5.2"
    assert alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["runbook_url"] == f"{BASE_URL}/alerts/gateway-breaker-open.md"
    assert "gpt-5.2" in alert["annotations"]["description"]
    from datetime import datetime

    firing = datetime.fromisoformat(active_at[0].replace("Z", "+00:00")).timestamp()
    # The README figure. The rule asks for a minute without the breaker closing; past
    # that minute the target is 2 evaluation intervals + 1 scrape.
    print(
        f"\nbreaker open -> alert firing in Prometheus {firing - opened_wall:.2f} s -> "
        f"at the webhook {at - opened:.2f} s (rule window 60 s; scrape and evaluation "
        f"interval {INTERVAL_S} s)"
    )
