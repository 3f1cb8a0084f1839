"""Helpers for the deployment tests: paths of deploy/ and the CI-only tools they run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def require_tool(name: str, package: str) -> str:
    """Path of executable ``name``; skips locally, fails under CI (installed by .ci/run)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install {package}; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide it: {message}")
        pytest.skip(message)
    return path


def check_command(words: list[str]) -> None:
    """Fail unless ``words`` is a real shadowcanary command (options parsed, nothing run)
    or a celery command on our app and queues."""
    import shlex

    import typer

    from shadowcanary import constants
    from shadowcanary.cli.main import app

    if words[0] == "shadowcanary":
        command: Any = typer.main.get_command(app)
        rest = words[1:]
        while hasattr(command, "commands") and rest and rest[0] in command.commands:
            command, rest = command.commands[rest[0]], rest[1:]
        assert not hasattr(command, "commands"), f"not a command: {shlex.join(words)}"
        command.make_context(command.name, list(rest))  # raises on an unknown option
        return
    assert words[:3] == ["celery", "-A", "workers.app"], words
    assert words[3] in {"worker", "beat"}, words
    for word in words:
        if word.startswith("--queues="):
            queues = set(word.split("=", 1)[1].split(","))
            assert queues == {constants.QUEUE_INGEST, constants.QUEUE_REPLAY}, word
