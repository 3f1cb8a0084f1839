"""Print deploy/prometheus/alerts.yml as the PrometheusRule of deploy/k8s/base.

python -m tests.deploy.prometheusrule > deploy/k8s/base/prometheusrule.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
HEADER = """\
# deploy/prometheus/alerts.yml as a Prometheus Operator PrometheusRule (kept identical by
# tests/deploy/test_k8s_manifests.py: edit alerts.yml, then regenerate this file with
#   python -m tests.deploy.prometheusrule > deploy/k8s/base/prometheusrule.yaml).
# runbook_url needs the external label runbook_base_url on your Prometheus CR
# (spec.externalLabels.runbook_base_url: where the controller's runbooks are published).
"""


def render() -> str:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "shadowcanary"},
        "spec": {"groups": groups},
    }
    return HEADER + yaml.safe_dump(rule, sort_keys=False, width=100)


if __name__ == "__main__":
    sys.stdout.write(render())
