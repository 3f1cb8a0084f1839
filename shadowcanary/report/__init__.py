"""Rollout reports: charts and figures for people (HTML, Markdown) and machines (JSON).

::

    data = load_report(engine, settings, "checkout-gpt55", now=datetime.now(UTC))
    Path("report.html").write_text(render_html(data))   # self-contained, no network
    render_markdown(data); render_json(data)

``render(data, "html" | "md" | "json")`` picks the renderer by format name.
"""

from __future__ import annotations

from typing import Literal

from shadowcanary.report.html import render_html
from shadowcanary.report.jsonable import REPORT_FORMAT, render_json, report_dict
from shadowcanary.report.load import load_report
from shadowcanary.report.markdown import render_markdown
from shadowcanary.report.model import ReportData

ReportFormat = Literal["html", "md", "json"]
FORMATS: tuple[ReportFormat, ...] = ("html", "md", "json")


def render(data: ReportData, format: ReportFormat) -> str:
    """The report in ``format``."""
    if format == "html":
        return render_html(data)
    if format == "md":
        return render_markdown(data)
    return render_json(data)


__all__ = [
    "FORMATS",
    "REPORT_FORMAT",
    "ReportData",
    "ReportFormat",
    "load_report",
    "render",
    "render_html",
    "render_json",
    "render_markdown",
    "report_dict",
]
