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


def render_status(data: dict[str, Any]) -> Group:
    """Counts, tap health and headline comparison figures as tables."""
    return Group(
        _section("Pipeline counts", data.get("counts", {})),
        _section("Tap (live path)", data.get("tap", {})),
        _section("Headline figures", data.get("headline", {})),
    )
