"""The Prometheus and Alertmanager configuration in deploy/ load in the real tools.

``promtool test rules`` runs deploy/prometheus/alerts_test.yml: each alert fires on its
fault with the exact labels, numbers and runbook link, and stays quiet on healthy series.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from runbooks.generator import ALERTS_DIR, STATIC_RUNBOOKS
from tests.deploy.conftest import DEPLOY, require_tool

ALERTS = DEPLOY / "prometheus" / "alerts.yml"


def _run(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=120, check=False
    )


def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    """Every alert in alerts.yml fires (and only fires) as alerts_test.yml expects."""
    promtool = require_tool("promtool", "prometheus")
    checked = _run(promtool, "check", "rules", ALERTS)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _run(promtool, "test", "rules", DEPLOY / "prometheus" / "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_is_unit_tested() -> None:
    """No alert in alerts.yml lacks a promtool case that expects it to fire."""
    rules = yaml.safe_load(ALERTS.read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    cases = yaml.safe_load((DEPLOY / "prometheus" / "alerts_test.yml").read_text())
    fired = {
        t["alertname"]
        for case in cases["tests"]
        for t in case["alert_rule_test"]
        if t.get("exp_alerts")
    }
    assert names - fired == set()


def test_every_alert_links_a_runbook_the_controller_writes() -> None:
    """Each runbook_url is the rollout's own runbook or a static runbook the controller copies."""
    rules = yaml.safe_load(ALERTS.read_text())
    base = "{{ $externalLabels.runbook_base_url }}/"
    for group in rules["groups"]:
        for rule in group["rules"]:
            annotations = rule["annotations"]
            assert {"summary", "description", "runbook_url"} <= set(annotations), rule["alert"]
            assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
            url = annotations["runbook_url"]
            assert url.startswith(base), rule["alert"]
            target = url.removeprefix(base)
            if target != "{{ $labels.rollout }}.md":
                folder, name = target.split("/")
                assert folder == ALERTS_DIR and name in STATIC_RUNBOOKS, rule["alert"]


def test_prometheus_config_loads_with_the_rules(tmp_path: Path) -> None:
    """prometheus.yml (with its rule file beside it) passes `promtool check config`."""
    promtool = require_tool("promtool", "prometheus")
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text())
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/alerts.yml", str(tmp_path / "alerts.yml"))
    )
    checked = _run(promtool, "check", "config", tmp_path / "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 13 rules found" in checked.stdout


def test_alertmanager_config_is_valid() -> None:
    """alertmanager.yml passes `amtool check-config`."""
    amtool = require_tool("amtool", "prometheus-alertmanager")
    checked = _run(amtool, "check-config", DEPLOY / "alertmanager" / "alertmanager.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
