"""The self-contained HTML report: one file, inline CSS and server-rendered SVG, no scripts.

Every text from the store goes through Jinja's autoescaping; the charts escape their
own labels (``charts``) and are the only markup marked safe.
"""

from __future__ import annotations

from datetime import datetime
from importlib.resources import files

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from shadowcanary.report import formatting as fmt
from shadowcanary.report.axes import format_percent
from shadowcanary.report.charts import (
    BASELINE_COLOR,
    CANDIDATE_COLOR,
    NOISE_COLOR,
    Bars,
    Frame,
    Level,
    Line,
    Mark,
    bar_chart,
    histogram_chart,
    time_chart,
)
from shadowcanary.report.model import QUANTILES, ReportData, SeriesPoint, TriggerSeries

# Trigger charts sit two to a row: a smaller frame keeps their text readable.
TRIGGER_FRAME = Frame(width=520, height=250)
_COLORS = {"baseline": BASELINE_COLOR, "candidate": CANDIDATE_COLOR}

TITLES = {
    "error_rate": "Error rate per arm over time",
    "latency": "Latency per arm over time (p50 and p99)",
    "latency_distribution": "Latency distribution per arm (p50 / p95 / p99)",
    "similarity": "Similarity to the live answer: candidate vs noise floor",
}


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("shadowcanary.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        ms=fmt.ms,
        pct=fmt.percent,
        usd=fmt.usd,
        num=fmt.number,
        count=fmt.count,
        when=fmt.when,
        stat=fmt.statistic,
        step=fmt.step,
    )
    return env


def render_html(data: ReportData) -> str:
    """The report page as one HTML document."""
    css = files("shadowcanary.report").joinpath("templates/report.css").read_text("utf-8")
    template = _environment().get_template("report.html.j2")
    return template.render(
        data=data,
        css=Markup(css),  # noqa: S704 - our own stylesheet, shipped with the package
        charts=_charts(data),
        titles=TITLES,
        trigger_titles={t.name: trigger_title(t) for t in data.triggers},
        quantiles=QUANTILES,
        no_data=fmt.NO_DATA,
        tenant_note=fmt.tenant_note,
        whole_rollout=fmt.whole_rollout,
        triggers_withheld=fmt.TRIGGERS_WITHHELD,
    )


def trigger_title(trigger: TriggerSeries) -> str:
    return f"Trigger {trigger.name}: statistic vs threshold"


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


def _step_marks(data: ReportData) -> list[Mark]:
    return [Mark(_epoch(s.at), f"{s.to_percent} %") for s in data.steps]


def _line(arm: str, points: tuple[SeriesPoint, ...], attr: str, label: str, dashed: bool) -> Line:
    # Plotted at the middle of each bucket: the value describes the whole bucket.
    half = points[1].start.timestamp() - points[0].start.timestamp() if len(points) > 1 else 60
    return Line(
        name=label,
        points=[(p.start.timestamp() + half / 2, getattr(p, attr)) for p in points],
        color=_COLORS[arm],
        dashed=dashed,
    )


def _charts(data: ReportData) -> dict[str, Markup]:
    """Every chart with data, by key; a missing key renders as "no data yet"."""
    charts: dict[str, Markup] = {}
    x_range = (_epoch(data.since), _epoch(data.until))
    marks = _step_marks(data)
    if data.has_live_data:
        charts["error_rate"] = Markup(  # noqa: S704 - charts escape every label themselves
            time_chart(
                TITLES["error_rate"],
                "error_rate",
                [
                    _line(
                        arm,
                        data.series[arm],
                        "error_rate",
                        f"{arm} ({data.arms[arm].model})",
                        False,
                    )
                    for arm in data.series
                ],
                y_label="error rate",
                x_range=x_range,
                marks=marks,
                y_format=format_percent,
            )
        )
        charts["latency"] = Markup(  # noqa: S704
            time_chart(
                TITLES["latency"],
                "latency",
                [
                    _line(arm, data.series[arm], attr, f"{arm} {q}", q == "p50")
                    for arm in data.series
                    for attr, q in (("p99_ms", "p99"), ("p50_ms", "p50"))
                ],
                y_label="latency (ms)",
                x_range=x_range,
                marks=marks,
            )
        )
        charts["latency_distribution"] = Markup(  # noqa: S704
            bar_chart(
                TITLES["latency_distribution"],
                "latency_distribution",
                [f"p{round(q * 100)}" for q in QUANTILES],
                [
                    Bars(
                        f"{arm} ({summary.model})",
                        [summary.latency_ms[q] for q in QUANTILES],
                        _COLORS[arm],
                    )
                    for arm, summary in data.arms.items()
                    if summary.requests
                ],
                y_label="latency (ms)",
                y_format=lambda v: f"{v:,.0f}",
            )
        )
    sim = data.similarity
    if sim.candidate_n or sim.noise_n:
        groups, sim_marks = [], []
        for name, counts, n, mean, color in (
            (
                "candidate vs live",
                sim.candidate,
                sim.candidate_n,
                sim.candidate_mean,
                CANDIDATE_COLOR,
            ),
            (
                "noise floor: baseline vs itself",
                sim.noise,
                sim.noise_n,
                sim.noise_mean,
                NOISE_COLOR,
            ),
        ):
            if n:
                label = f"{name} (n={n:,}, mean {mean:.3f})" if mean is not None else name
                groups.append(Bars(label, [c / n for c in counts], color))
            if mean is not None:  # the mean is named in the legend: no label over the bars
                sim_marks.append(Mark(mean, "", color))
        charts["similarity"] = Markup(  # noqa: S704
            histogram_chart(
                TITLES["similarity"],
                "similarity",
                sim.edges,
                groups,
                x_label="lexical similarity to the live answer (1 = identical)",
                y_label="share of comparisons",
                marks=sim_marks,
            )
        )
    for trigger in data.triggers:
        if not trigger.points:
            continue
        threshold = trigger.points[-1].threshold
        charts[f"trigger:{trigger.name}"] = Markup(  # noqa: S704
            time_chart(
                trigger_title(trigger),
                f"trigger-{trigger.name}",
                [
                    Line(
                        f"{trigger.name} statistic ({trigger.mode})",
                        [
                            (_epoch(p.at), p.statistic if p.statistic > 0 else None)
                            for p in trigger.points
                        ],
                        CANDIDATE_COLOR,
                    )
                ],
                y_label="e-value (log scale)",
                x_range=x_range,
                marks=marks,
                levels=[Level(threshold, f"rolls back at ≥ {fmt.statistic(threshold)}")]
                if threshold != float("inf")
                else [],
                log_y=True,
                frame=TRIGGER_FRAME,
            )
        )
    return charts
