"""``shadowcanary status`` data and its rich rendering (shared by the command and ``up``)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table

if TYPE_CHECKING:
    from shadowcanary.launcher.embedded_services import ServiceUrls
    from shadowcanary.settings import Settings


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items()) or "-"
    return "-" if value is None else str(value)


def _section(title: str, data: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left", min_width=50)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in data.items():
        table.add_row(key.replace("_", " "), _fmt(value))
    return table


def _arms(arms: dict[str, dict[str, Any]]) -> Table:
    """Live figures side by side: one column per arm."""
    table = Table(title="Live traffic per arm", title_justify="left", min_width=50)
    names = list(arms)
    table.add_column("")
    for name in names:
        table.add_column(str(name), justify="right")
    metrics = list(next(iter(arms.values()), {}))
    for metric in metrics:
        table.add_row(metric.replace("_", " "), *(_fmt(arms[n].get(metric)) for n in names))
    return table


def render_status(data: dict[str, Any]) -> Group:
    """Counts, tap health and headline comparison figures as tables."""
    headline = dict(data.get("headline", {}))
    arms = headline.pop("arms", None)
    parts: list[Table] = [
        _section("Pipeline counts", data.get("counts", {})),
        _section("Tap (live path)", data.get("tap", {})),
        _section(
            "User outcome reports, last day (unknown: no call matched the event id)",
            data.get("outcomes", {}),
        ),
        _section("Shadow comparisons (candidate vs live baseline, and the noise floor)", headline),
    ]
    if isinstance(arms, dict) and arms:
        parts.append(_arms(arms))
    return Group(*parts)


def collect_status(settings: Settings, urls: ServiceUrls, rollout: str | None) -> dict[str, Any]:
    """Counts and headline figures, as plain data (for --json and the live view)."""
    import redis

    from shadowcanary.events import now_utc
    from shadowcanary.store.db import make_engine
    from shadowcanary.store.outcomes import OutcomeStore
    from shadowcanary.store.repository import Store
    from shadowcanary.tap.stats import read_shared_tap_stats

    engine = make_engine(urls.database_url, pool_size=1)
    store = Store(engine)
    client = redis.Redis.from_url(urls.redis_url, socket_timeout=2)
    now = now_utc()
    try:
        return {
            "counts": dataclasses.asdict(store.counts()),
            "headline": dataclasses.asdict(store.headline(rollout)),
            "tap": read_shared_tap_stats(client),
            "outcomes": dataclasses.asdict(
                OutcomeStore(engine).summary(
                    since=now - timedelta(days=1),
                    now=now,
                    unknown_after=timedelta(seconds=settings.outcomes.unknown_after_s),
                    rollout=rollout,
                )
            ),
        }
    finally:
        client.close()
