"""docker-compose.yml runs a real rollout, with no Docker engine (see compose_stack.py).

Every shadowcanary service starts with its compose command and environment (.env from
.env.example), its compose healthcheck passes, traffic sent to the gateway with the
example service's key is routed by the Unleash flag, and the controller (admin token,
``--all``) steps the rollout in Unleash. Then every metric name that the alert rules
and the Grafana dashboard query is served by one of the real processes' /metrics.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from flags.unleash import UnleashFlags
from shadowcanary.launcher.processes import child_env, log_tail
from shadowcanary.testing.poll import wait_until
from shadowcanary.testing.servers import ServerUnavailable
from tests.deploy.compose_stack import (
    BIN,
    ENV_EXAMPLE,
    OURS,
    ComposeStack,
    infrastructure,
    load_compose,
    read_dotenv,
)
from tests.deploy.conftest import DEPLOY

# Under a loaded CI machine the stack alone takes minutes to start: 300 s is not enough.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

# What a team changes in its .env for a small, fast run; everything else is .env.example.
ENV_OVERRIDES = {
    "SHADOWCANARY_CONTROLLER_INTERVAL_S": "1",
    "GATEWAY_FLAG_REFRESH_S": "1",
    # One server process: prometheus_client's default registry then lists every declared
    # metric (multi-process mode lists only the ones some process has touched).
    "GATEWAY_WORKERS": "1",
}
GATEWAY_KEY = "local-only-gateway-key"  # the key whose hash .env.example configures
PLAN = """
name: chat-gpt55
flag: chat-model
baseline: gpt-5.2
candidate: gpt-5.5
unleash: {environment: production}
exposure: {min_canary_requests: 50, min_events_per_arm: 20, min_duration: 5s, deadline: 1h}
sample_ratio: {grace: 0s}
# The topology is under test, not the phases (tests/integration/test_rollout_phases.py):
# no week-long shadow gate before the first step, no watch after 100 %.
shadow: off
watch: off
# The simulator's default candidate is measurably less similar to the baseline: its
# quality trigger would (rightly) roll back. This test is about the topology, so quality
# only observes; the judge has its own tests.
triggers:
  error_rate: {margin: 0.05}
  p99_latency: {margin_ms: 2000, quantile: 0.95}
  quality: {margin: 0.05, mode: dry-run}
escalation: "#llm-oncall"
"""


class Traffic:
    """Chat calls to the gateway from many users, until stopped; counts answers."""

    def __init__(self, url: str, rate: float = 15.0) -> None:
        self.url, self.rate = url, rate
        self.answered = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _call(self, client: httpx.Client, i: int) -> None:
        try:
            response = client.post(
                f"{self.url}/v1/chat/completions",
                headers={"Authorization": f"Bearer {GATEWAY_KEY}"},
                json={
                    "model": "gpt-5.2",
                    "messages": [{"role": "user", "content": f"Summarise ticket {i}"}],
                    "user": f"user-{i % 3000}",
                },
                timeout=30,
            )
        except httpx.HTTPError as exc:
            self.failed.append(type(exc).__name__)
            return
        if response.status_code == 200:
            self.answered += 1
        else:
            self.failed.append(f"{response.status_code} {response.text[:200]}")

    def _run(self) -> None:
        with httpx.Client() as client, ThreadPoolExecutor(4) as pool:
            i = 0
            while not self._stop.wait(1 / self.rate):
                pool.submit(self._call, client, i)
                i += 1


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    env = {**read_dotenv(ENV_EXAMPLE), **ENV_OVERRIDES}
    work = Path(tempfile.mkdtemp(prefix="sc-compose-"))
    os.chmod(work, 0o755)
    stack = ComposeStack(load_compose(env), work)
    try:
        with infrastructure(stack):
            stack.started_monotonic = time.monotonic()
            try:
                stack.run_once("migrate")
                for name in OURS[1:]:
                    stack.start(name)
                for name in OURS[1:]:
                    stack.wait_healthy(name)
                stack.healthy_s = time.monotonic() - stack.started_monotonic
                yield stack
            finally:
                stack.stop()
    except ServerUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide this server: {exc}")
        pytest.skip(str(exc))
    finally:
        shutil.rmtree(work, ignore_errors=True)  # databases and logs (tails are in failures)


def _cli(stack: ComposeStack, service: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``shadowcanary ARGS`` with a service's environment (`docker compose exec SERVICE`)."""
    return subprocess.run(
        [str(BIN / "shadowcanary"), *args],
        env=child_env(stack.environment(service)),
        cwd=stack.work,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _flags(stack: ComposeStack) -> UnleashFlags:
    token = stack.environment("controller")["SHADOWCANARY_UNLEASH_ADMIN_TOKEN"]
    return UnleashFlags(stack.url("unleash", 4242), token, environment="production", timeout_s=5)


def _rollout_stepped_in_unleash(stack: ComposeStack) -> None:
    """Compose's controller moves the flag in Unleash; its gateway routes users by that flag."""
    plan = stack.work / "chat-gpt55.yaml"
    plan.write_text(PLAN)
    started = _cli(stack, "controller", "rollout", "start", str(plan))
    assert started.returncode == 0, started.stdout + started.stderr
    flags = _flags(stack)
    gateway = stack.url("gateway", 8080)
    with Traffic(gateway) as traffic:
        try:
            wait_until(
                lambda: flags.read("chat-model").effective_percent >= 10,
                timeout_s=240,
                interval_s=1.0,
                what="the controller's first step in Unleash",
            )
        except AssertionError:
            controller = stack.services["controller"].log
            raise AssertionError(
                f"no step; answered={traffic.answered} failed={traffic.failed[:5]}\n"
                f"{log_tail(controller) if controller else ''}"
            ) from None
        first_step_at = time.monotonic()

        def candidate_served() -> bool:
            body = httpx.get(f"{gateway}/metrics", timeout=5).text
            return bool(
                re.search(
                    r'shadowcanary_gateway_requests_total\{[^}]*arm="candidate"[^}]*\} [1-9]', body
                )
            )

        # The gateway holds only the client token; it sees the step by polling Unleash.
        wait_until(candidate_served, timeout_s=60, interval_s=1.0, what="a candidate call")
    # The simulator fails a small share of calls on purpose (HTTP 500, passed through);
    # the gateway itself must refuse nothing (a 4xx would be a wrong key or route).
    refused = [f for f in traffic.failed if f.startswith("4")]
    assert refused == [], refused[:5]
    assert traffic.answered >= 9 * len(traffic.failed), traffic.failed[:5]
    history = _cli(stack, "controller", "rollout", "history", "chat-gpt55", "--json")
    assert history.returncode == 0, history.stderr
    actions = [entry["action"] for entry in json.loads(history.stdout)]
    assert "advance" in actions, actions
    print(  # the README figure: compose start to the first rollout step
        f"\ncompose start -> all healthy {stack.healthy_s:.1f} s; "
        f"-> first step {first_step_at - stack.started_monotonic:.1f} s"
    )


_METRIC = re.compile(r"\b(shadowcanary_[a-z0-9_]+|up)\b")


def _queried_metrics() -> set[str]:
    """Every metric name in the alert rules' and the dashboard's queries."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads((DEPLOY / "grafana" / "shadowcanary-rollout.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    templating = dashboard["templating"]["list"]
    exprs += [v["definition"] for v in templating if "definition" in v]
    return {name for expr in exprs for name in _METRIC.findall(expr)}


def _served_metrics(body: str) -> set[str]:
    names: set[str] = set()
    for line in body.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()[:4]
            names.add(name)
            if kind == "histogram":
                names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
            if kind == "counter" and not name.endswith("_total"):
                names.add(f"{name}_total")
    return names


def _every_queried_metric_served(stack: ComposeStack) -> None:
    """Each metric name queried by alerts.yml and the dashboard is on some process's /metrics."""
    served: set[str] = set()
    for host, port in (("gateway", 8080), ("worker", 9100), ("controller", 9100)):
        served |= _served_metrics(httpx.get(stack.url(host, port, "/metrics"), timeout=5).text)
    queried = _queried_metrics() - {"up"}  # `up` is Prometheus's own, per scrape target
    assert len(queried) >= 20, queried
    assert queried - served == set()


def _k8s_probe_paths_answer(stack: ComposeStack) -> None:
    """Every liveness/readiness/startup path in deploy/k8s answers 200 on the running process."""
    from tests.deploy.test_k8s_manifests import probes

    where = {"shadowcanary-gateway": ("gateway", 8080)}
    where |= {f"shadowcanary-{n}": (n, 9100) for n in ("worker", "controller")}
    checked = probes()
    assert {(w, p) for w, _, p in checked} >= {
        ("shadowcanary-gateway", "/healthz"),
        ("shadowcanary-gateway", "/readyz"),
    }
    for workload, _port, path in checked:
        host, port = where[workload]
        assert httpx.get(stack.url(host, port, path), timeout=5).status_code == 200, path


def _status(stack: ComposeStack) -> dict[str, Any]:
    shown = _cli(stack, "controller", "rollout", "status", "chat-gpt55", "--json")
    assert shown.returncode == 0, shown.stderr
    return dict(json.loads(shown.stdout)[0])


def _ui_override_then_rollback(stack: ComposeStack, browser: Any) -> None:
    """Slider moved and saved in Unleash's UI -> manual override; `rollout rollback` -> UI 0 %."""
    flags = _flags(stack)
    assert flags.read("chat-model").effective_percent >= 10, "runs after the first step"
    from tests.deploy import unleash_ui  # imports playwright: only where a browser runs

    unleash = stack.url("unleash", 4242)
    page = browser.new_page()
    try:
        unleash_ui.log_in(page, unleash)
        unleash_ui.open_strategy(page, unleash, "chat-model", "production")
        target = 20 if unleash_ui.rollout_shown(page) != 20 else 25
        unleash_ui.move_rollout(page, target)
        saved = flags.read("chat-model").effective_percent
        assert saved == target, f"the UI saved {saved} %, not {target} %"
        # The controller sees a flag it did not set: it records the override and stops.
        wait_until(
            lambda: _status(stack)["status"] == "overridden",
            timeout_s=60,
            interval_s=1.0,
            what="the controller recording the manual override",
        )
        # The gauge follows the tick after the one that recorded the override: poll it.
        overridden = (
            'shadowcanary_controller_rollout_status{rollout="chat-gpt55",status="overridden"} 1.0'
        )
        wait_until(
            lambda: (
                overridden in httpx.get(stack.url("controller", 9100, "/metrics"), timeout=5).text
            ),
            timeout_s=30,
            interval_s=1.0,
            what="the overridden status on the controller's /metrics",
        )
        rolled = _cli(
            stack, "controller", "rollout", "rollback", "chat-gpt55", "--reason", "ui test"
        )
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr

        # A fresh load of the strategy page (the UI caches what it showed before).
        def shown_after_rollback() -> bool:
            unleash_ui.open_strategy(page, unleash, "chat-model", "production")
            return unleash_ui.rollout_shown(page) == 0

        wait_until(shown_after_rollback, timeout_s=60, interval_s=1.0, what="the UI at 0 %")
    finally:
        page.close()


def test_the_compose_deployment_runs_a_rollout_end_to_end(
    stack: ComposeStack, browser: Any
) -> None:
    """Stepped by the controller, observable as alerts/dashboard expect, steered in the UI.

    One test, phases in order, so that one stack serves them all whatever the xdist
    distribution (`--dist loadgroup` did not group tests here: pytest 9.2, xdist 3.8).
    """
    _rollout_stepped_in_unleash(stack)
    _every_queried_metric_served(stack)
    _k8s_probe_paths_answer(stack)
    _ui_override_then_rollback(stack, browser)
