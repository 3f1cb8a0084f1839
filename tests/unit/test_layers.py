"""The layers of docs/architecture.md, enforced: imports point one way only.

The contract lives in pyproject.toml (``[tool.importlinter]``); ``lint-imports`` builds
the import graph of every package (imports inside functions included) and fails on any
import from a lower layer into a higher one, directly or through a chain.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shadowcanary", "flags", "workers", "runbooks")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_import_follows_the_layers() -> None:
    """No module imports from a layer above its own (the contract in pyproject.toml)."""
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("module", "upward_import"),
    [
        ("shadowcanary/controller/tick.py", "import runbooks.hook"),
        ("shadowcanary/store/rollouts.py", "import shadowcanary.replay.service"),
        ("flags/router.py", "import shadowcanary.tap.openai_wrapper"),
        ("shadowcanary/judge/decide.py", "import time"),
    ],
)
def test_an_upward_import_breaks_the_check(tmp_path: Path, module: str, upward_import: str) -> None:
    """The check fails, naming the import, when one module imports against the order."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / module).open("a", encoding="utf-8") as source:
        source.write(f"\n{upward_import}  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout, result.stdout
