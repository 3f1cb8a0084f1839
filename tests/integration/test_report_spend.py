"""The report's shadow spend per decision: replays, tokens and dollars behind each one."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from shadowcanary.report.html import render_html
from shadowcanary.report.load import load_report
from shadowcanary.report.markdown import render_markdown
from shadowcanary.settings import load_settings
from shadowcanary.store.models import CaptureRow, ReplayRow
from tests.integration.test_report import engine, seed_rollout  # noqa: F401 - fixture


def test_every_replay_is_counted_once_under_the_decision_it_informed(
    engine: Engine,  # noqa: F811
) -> None:
    """Summed over the decisions, the spend equals the rollout's replays in Postgres."""
    now = datetime.now(UTC)
    seeded = seed_rollout(engine, now=now)
    data = load_report(engine, load_settings({}), seeded.name, now=now)
    joined = ReplayRow.__table__.join(
        CaptureRow.__table__, ReplayRow.event_id == CaptureRow.event_id
    )
    tokens = func.sum(ReplayRow.prompt_tokens + ReplayRow.completion_tokens)
    with engine.connect() as conn:
        replays, total_tokens, cost = conn.execute(
            select(func.count(), tokens, func.sum(ReplayRow.cost_usd))
            .select_from(joined)
            .where(CaptureRow.rollout == seeded.name)
        ).one()
    spend = data.shadow_spend
    assert spend[0].action == "advance" and spend[-1].action == "rollback"
    assert sum(s.replays for s in spend) == replays > 0
    assert sum(s.tokens for s in spend) == total_tokens
    assert abs(sum(s.cost_usd for s in spend) - float(cost or 0.0)) < 1e-9
    assert "## Shadow spend per decision" in render_markdown(data)
    assert '<section id="shadow-spend">' in render_html(data)
