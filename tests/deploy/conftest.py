"""Helpers for the deployment tests: paths of deploy/ and the CI-only tools they run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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
