"""docker-compose.yml parses in Compose, reads what .env.example sets, pins what CI tests."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from tests.deploy.compose_stack import COMPOSE_FILE, ENV_EXAMPLE, ROOT, read_dotenv
from tests.deploy.conftest import require_tool

_REFERENCE = re.compile(r"\$\{(\w+)")


def _compose(*args: str, env_file: Path | None = ENV_EXAMPLE) -> subprocess.CompletedProcess[str]:
    binary = require_tool("docker-compose", "docker-compose")
    files = ["--env-file", str(env_file)] if env_file else []
    return subprocess.run(
        [binary, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), *files, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin"},  # no stray POSTGRES_PASSWORD from the caller
    )


def test_compose_config_accepts_the_file_with_env_example() -> None:
    """`docker-compose config` validates the file; the simulator runs only in profile demo."""
    checked = _compose("config", "-q")
    assert checked.returncode == 0, checked.stderr
    resolved = yaml.safe_load(_compose("config").stdout)["services"]
    assert {"controller", "gateway", "worker", "beat", "prometheus", "alertmanager"} <= set(
        resolved
    )
    in_demo_only = {name for name, spec in resolved.items() if spec.get("profiles")}
    assert in_demo_only == {"simulator"}
    assert resolved["simulator"]["profiles"] == ["demo"]
    # The resolved environment carries the .env values (no empty secret reaches a service).
    controller = resolved["controller"]["environment"]
    assert controller["SHADOWCANARY_UNLEASH_ADMIN_TOKEN"].startswith("*:*.")
    assert "SHADOWCANARY_UNLEASH_ADMIN_TOKEN" not in resolved["gateway"]["environment"]


def test_a_missing_secret_stops_compose_with_its_name(tmp_path: Path) -> None:
    """Without POSTGRES_PASSWORD in .env, compose refuses to start and says which one."""
    env = ENV_EXAMPLE.read_text().replace("POSTGRES_PASSWORD=", "#POSTGRES_PASSWORD=")
    (tmp_path / ".env").write_text(env)
    checked = _compose("config", "-q", env_file=tmp_path / ".env")
    assert checked.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in checked.stderr


def test_env_example_sets_every_variable_compose_reads_and_nothing_else() -> None:
    """The variables compose interpolates are exactly the ones .env.example lists."""
    text = COMPOSE_FILE.read_text()
    referenced = set(_REFERENCE.findall(text)) - {"HOSTNAME"}
    listed = set(read_dotenv(ENV_EXAMPLE)) - {"COMPOSE_PROJECT_NAME"}
    assert referenced == listed


def test_unleash_image_is_the_version_ci_tests() -> None:
    """The compose Unleash image tag equals the unleash-server version in .ci/unleash."""
    package = json.loads((ROOT / ".ci" / "unleash" / "package.json").read_text())
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    image = compose["services"]["unleash"]["image"]
    assert image == f"unleashorg/unleash-server:{package['dependencies']['unleash-server']}"
