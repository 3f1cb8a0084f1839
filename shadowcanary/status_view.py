"""Rich rendering of ``shadowcanary status`` data (shared by the command and the live view)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table


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
        _section("Shadow comparisons (candidate vs live baseline, and the noise floor)", headline),
    ]
    if isinstance(arms, dict) and arms:
        parts.append(_arms(arms))
    return Group(*parts)
