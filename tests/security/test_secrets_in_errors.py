"""Error messages name what is wrong without echoing a secret (CLI, real processes).

Each case runs a ``shadowcanary`` command with a secret in a misconfigured or
unreachable setting: the command fails with exit code 1, a one-line error that names
the variable and a hint, no traceback, and the secret value nowhere in its output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shadowcanary.launcher.worker import REPO_ROOT
from shadowcanary.testing.servers import free_port

pytestmark = pytest.mark.integration

SECRET = "S3cr3t-value-Zq81x"


def _run(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shadowcanary.cli.main", *args],
        env={"PATH": "/usr/bin:/bin", "SHADOWCANARY_DATA_DIR": str(tmp_path), **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _dead_port() -> int:
    return free_port()  # nothing listens there


CASES = [
    pytest.param(
        {
            "SHADOWCANARY_DATABASE_URL": f"postgresql://app:{SECRET}@127.0.0.1:{_dead_port()}/db",
            "SHADOWCANARY_REDIS_URL": f"redis://:{SECRET}@127.0.0.1:{_dead_port()}/0",
        },
        ["status"],
        "SHADOWCANARY_DATABASE_URL",
        id="unreachable-postgres-with-password",
    ),
    pytest.param(
        {
            "SHADOWCANARY_DATABASE_URL": f"postgresql://app:{SECRET}@127.0.0.1:{_dead_port()}/db",
            "SHADOWCANARY_REDIS_URL": f"redis://:{SECRET}@127.0.0.1:{_dead_port()}/0",
        },
        ["rollout", "status", "checkout-gpt55"],
        "SHADOWCANARY_DATABASE_URL",
        id="rollout-status-unreachable-postgres",
    ),
    pytest.param(
        {"SHADOWCANARY_MODELS": '{"gpt-5.2": {"api_key": "' + SECRET + '"'},
        ["status"],
        "SHADOWCANARY_MODELS",
        id="models-not-json",
    ),
    pytest.param(
        {
            "SHADOWCANARY_MODELS": json.dumps(
                {"gpt-5.2": {"api_key": SECRET, "base_url": 5}, "gpt-5.5": {"api_key": SECRET}}
            )
        },
        ["status"],
        "SHADOWCANARY_MODELS__GPT-5.2__BASE_URL",
        id="models-field-wrong-type",
    ),
    pytest.param(
        {"SHADOWCANARY_STICKINESS_SALT": "short" + SECRET[:4]},
        ["status"],
        "SHADOWCANARY_STICKINESS_SALT must be at least 12 characters",
        id="salt-too-short",
    ),
    pytest.param(
        {"SHADOWCANARY_FLAGS": "unleash", "SHADOWCANARY_UNLEASH_ADMIN_TOKEN": SECRET},
        ["status"],
        "SHADOWCANARY_UNLEASH_URL",
        id="unleash-token-without-url",
    ),
    pytest.param(
        {"SHADOWCANARY_UNLEASH_ADMIN_TOKEN": SECRET, "SHADOWCANARY_UNLEASH_ADMN_TOKEN": SECRET},
        ["status"],
        "did you mean SHADOWCANARY_UNLEASH_ADMIN_TOKEN",
        id="misspelt-secret-variable",
    ),
]


@pytest.mark.parametrize(("env", "args", "names"), CASES)
def test_errors_name_the_setting_and_never_echo_its_secret(
    env: dict[str, str], args: list[str], names: str, tmp_path: Path
) -> None:
    """Exit 1, the variable named, a hint, no traceback, no secret."""
    result = _run(env, tmp_path, *args)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-2000:]
    assert names in " ".join(output.split()), output[-2000:]
    assert "hint" in output
    assert "Traceback" not in output
    # The password and keys, whole or in the pieces a line wrap could cut them into.
    for piece in (SECRET, SECRET[:9], SECRET[9:]):
        assert piece not in output, output[-2000:]
    for secret in [v for v in env.values() if SECRET[:9] in v]:
        assert secret not in output
