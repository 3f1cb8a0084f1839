"""Helpers for the deployment tests: paths of deploy/ and the CI-only tools they run."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
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


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (as tests/e2e/test_report_browser.py)."""
    from tests.e2e.test_report_browser import CHROMIUM, CHROMIUM_ARGS

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install playwright")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _unavailable(f"{CHROMIUM} not found: apt-get install chromium (or make test-servers)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide a headless browser: {reason}")
    pytest.skip(reason)


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
