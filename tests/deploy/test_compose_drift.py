"""docker-compose.yml against the code, without starting anything (seconds, not minutes).

Each of our services' environment, as compose resolves it from .env.example, loads as
``Settings``, and its command is a real command of our CLI or Celery app. The topology
test (test_compose_topology.py) then runs them; this one fails first, and says which
variable or command drifted.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from shadowcanary.errors import ConfigError
from shadowcanary.settings import load_settings
from tests.deploy.compose_stack import ENV_EXAMPLE, OURS, ComposeStack, load_compose, read_dotenv
from tests.deploy.conftest import check_command


def _stack(compose: dict[str, Any] | None = None) -> ComposeStack:
    return ComposeStack(
        compose or load_compose(read_dotenv(ENV_EXAMPLE)), Path(tempfile.gettempdir())
    )


def _check(stack: ComposeStack, name: str) -> None:
    spec = stack.compose["services"][name]
    load_settings({k: str(v) for k, v in spec["environment"].items()})
    command = spec["command"]
    check_command(command.split() if isinstance(command, str) else list(command))


@pytest.mark.parametrize("name", OURS)
def test_each_service_environment_loads_and_its_command_exists(name: str) -> None:
    """The compose environment is valid Settings; the command parses in our CLI/Celery app."""
    _check(_stack(), name)


def test_the_gateway_holds_no_admin_token_and_the_controller_drives_unleash() -> None:
    """Least privilege: the admin token only in the controller; both use the Unleash backend."""
    services = _stack().compose["services"]
    holders = {
        name for name in OURS if "SHADOWCANARY_UNLEASH_ADMIN_TOKEN" in services[name]["environment"]
    }
    assert holders == {"controller"}
    for name in ("gateway", "controller"):
        settings = load_settings(services[name]["environment"])
        assert settings.flags == "unleash" and settings.unleash_url == "http://unleash:4242"
    assert services["controller"]["command"][-1] == "--all"


def test_a_misspelt_variable_is_caught() -> None:
    """Drift check can fail: an unknown SHADOWCANARY_ variable names itself."""
    compose = load_compose(read_dotenv(ENV_EXAMPLE))
    env = compose["services"]["controller"]["environment"]
    env["SHADOWCANARY_UNLEASH_ADMIN_TOKN"] = env.pop("SHADOWCANARY_UNLEASH_ADMIN_TOKEN")
    with pytest.raises(ConfigError, match="SHADOWCANARY_UNLEASH_ADMIN_TOKN"):
        _check(_stack(compose), "controller")


def test_a_wrong_command_is_caught() -> None:
    """Drift check can fail: a command option the CLI does not have."""
    compose = load_compose(read_dotenv(ENV_EXAMPLE))
    compose["services"]["controller"]["command"] = ["shadowcanary", "controller", "run", "--every"]
    with pytest.raises(Exception, match="--every"):
        _check(_stack(compose), "controller")
