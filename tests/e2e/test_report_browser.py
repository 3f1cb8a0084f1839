"""The HTML report in a real headless Chromium: charts drawn, no errors, no network.

Debian's ``chromium`` driven by Playwright (``playwright install`` cannot download
browsers here, so the test points Playwright at /usr/bin/chromium). A missing browser
skips the test on a laptop and fails it in CI (``CI`` set): ``make test-servers`` and
``.ci/run`` install it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from shadowcanary.report.html import TITLES
from shadowcanary.store.db import make_engine
from tests.integration.test_report import seed_rollout

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=2)
    yield engine
    engine.dispose()


def _write_report(database_url: str, rollout: str, path: Path) -> None:
    import typer

    from shadowcanary.cli.report import report_command

    app = typer.Typer()
    app.command()(report_command)
    result = CliRunner().invoke(
        app,
        [rollout, "--format", "html", "--output", str(path)],
        env={"SHADOWCANARY_DATABASE_URL": database_url, "SHADOWCANARY_LOG_LEVEL": "warning"},
    )
    assert result.exit_code == 0, result.stderr


def test_report_renders_its_charts_in_chromium(
    browser: Any, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Every chart is a visible SVG with drawn marks; no console errors, no network, printable."""
    seeded = seed_rollout(engine, now=datetime.now(UTC))
    report = tmp_path / "report.html"
    _write_report(database_url, seeded.name, report)

    page = browser.new_page(viewport={"width": 1366, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report.as_uri(), wait_until="load")
    screenshot = tmp_path / "report.png"
    page.screenshot(path=str(screenshot), full_page=True)

    assert screenshot.stat().st_size > 50_000
    assert errors == []
    assert requests == [report.as_uri()]  # the page itself, nothing else

    captions = page.locator("figcaption").all_inner_texts()
    for title in TITLES.values():
        assert title in captions
    assert "Trigger error_rate: statistic vs threshold" in captions

    charts = page.locator("svg.chart")
    assert charts.count() >= 6
    for i in range(charts.count()):
        chart = charts.nth(i)
        box = chart.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100, i
        drawn = chart.locator("polyline.series, rect.bar, circle")
        assert drawn.count() > 0, chart.get_attribute("data-chart")
        mark_box = drawn.first.bounding_box()
        assert mark_box is not None and (mark_box["width"] > 0 or mark_box["height"] > 0)

    # Step changes are drawn on the time charts: 0 -> 10 -> 30 -> 0 %.
    error_chart = page.locator('svg[data-chart="error_rate"]')
    assert error_chart.locator("line.mark").count() == 4
    assert page.locator("text=no data yet").count() == 0

    # Printable: the print stylesheet lays it out on pages without losing the charts.
    page.emulate_media(media="print")
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") >= 3
    page.close()


def test_empty_report_renders_no_data_yet(
    browser: Any, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A rollout that just started shows "no data yet" blocks in the browser, with no errors."""
    from shadowcanary.plan import RolloutPlan
    from shadowcanary.store.rollouts import RolloutStore

    plan = RolloutPlan(name="just-started", flag="f", baseline="gpt-5.2", candidate="gpt-5.5")
    RolloutStore(engine).create_rollout(plan, now=datetime.now(UTC), actor="cli:sre")
    report = tmp_path / "empty.html"
    _write_report(database_url, "just-started", report)

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(report.as_uri())
    page.screenshot(path=str(tmp_path / "empty.png"), full_page=True)
    assert errors == []
    assert page.locator("svg.chart").count() == 0
    assert page.locator(".empty", has_text="no data yet").count() >= 6
    assert page.locator(".empty").first.is_visible()
    page.close()
