"""Inline SVG charts, rendered on the server: time lines with step marks, bars, histograms.

Each function returns one ``<svg>`` element as text with a ``<title>`` (what screen
readers and the browser test read), a legend, and every label escaped. No scripts,
no external references: the page works from a file, offline and on paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from shadowcanary.report.axes import (
    Scale,
    extent,
    format_number,
    format_power,
    log_ticks,
    nice_ticks,
    time_ticks,
)

WIDTH, HEIGHT = 720, 270  # the default frame; small multiples use a smaller one
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 34, 42
BASELINE_COLOR = "#1f5fa8"
CANDIDATE_COLOR = "#d4570b"
NOISE_COLOR = "#6b7280"
THRESHOLD_COLOR = "#b91c1c"
MARK_COLOR = "#7c3aed"


@dataclass(frozen=True, slots=True)
class Frame:
    """The chart's size in SVG units; it scales to the page width, so a smaller frame
    draws the same text relatively larger (for charts shown side by side)."""

    width: int = WIDTH
    height: int = HEIGHT

    @property
    def right(self) -> int:
        return self.width - RIGHT

    @property
    def bottom(self) -> int:
        return self.height - BOTTOM


@dataclass(frozen=True, slots=True)
class Line:
    """A series; ``None`` values break the line (a gap is shown as a gap)."""

    name: str
    points: Sequence[tuple[float, float | None]]
    color: str
    dashed: bool = False


@dataclass(frozen=True, slots=True)
class Mark:
    """A vertical line at ``x`` (a step change, a mean) with a short label (or none)."""

    x: float
    label: str
    color: str = MARK_COLOR


@dataclass(frozen=True, slots=True)
class Level:
    """A horizontal line at ``y`` (a threshold) with a label."""

    y: float
    label: str
    color: str = THRESHOLD_COLOR


@dataclass(frozen=True, slots=True)
class Bars:
    """One group of bars: one value per category (or per histogram bin)."""

    name: str
    values: Sequence[float | None]
    color: str


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def _f(value: float) -> str:
    return f"{value:.1f}"


def _open(fr: Frame, title: str, slug: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{_attr(slug)}" '
        f'viewBox="0 0 {fr.width} {fr.height}" role="img" aria-label="{_attr(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{fr.right - LEFT}" '
        f'height="{fr.bottom - TOP}" fill="#fff" stroke="#d1d5db"/>',
    ]


def _legend(entries: Sequence[tuple[str, str, bool]]) -> list[str]:
    """Swatches along the top: (name, color, dashed)."""
    out, x = [], float(LEFT)
    for name, color, dashed in entries:
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        out.append(
            f'<line x1="{_f(x)}" y1="14" x2="{_f(x + 22)}" y2="14" stroke="{color}" '
            f'stroke-width="3"{dash}/>'
        )
        out.append(f'<text x="{_f(x + 27)}" y="18" class="legend">{escape(name)}</text>')
        x += 40 + 6.6 * len(name)
    return out


def _y_axis(
    fr: Frame, y: Scale, ticks: Sequence[float], label: str, fmt: Callable[[float], str]
) -> list[str]:
    out = []
    for tick in ticks:
        py = y(tick)
        out.append(f'<line x1="{LEFT}" y1="{_f(py)}" x2="{fr.right}" y2="{_f(py)}" class="grid"/>')
        out.append(
            f'<text x="{LEFT - 6}" y="{_f(py + 4)}" text-anchor="end" class="tick">'
            f"{escape(fmt(tick))}</text>"
        )
    mid = (TOP + fr.bottom) / 2
    out.append(
        f'<text x="14" y="{_f(mid)}" transform="rotate(-90 14 {_f(mid)})" '
        f'text-anchor="middle" class="axis-label">{escape(label)}</text>'
    )
    return out


def _x_ticks(fr: Frame, x: Scale, ticks: Sequence[tuple[float, str]], label: str) -> list[str]:
    out = []
    base = fr.bottom
    for value, text in ticks:
        px = x(value)
        out.append(f'<line x1="{_f(px)}" y1="{base}" x2="{_f(px)}" y2="{base + 5}" class="axis"/>')
        out.append(
            f'<text x="{_f(px)}" y="{base + 18}" text-anchor="middle" class="tick">'
            f"{escape(text)}</text>"
        )
    out.append(
        f'<text x="{(LEFT + fr.right) / 2}" y="{fr.height - 6}" text-anchor="middle" '
        f'class="axis-label">{escape(label)}</text>'
    )
    return out


def _marks(fr: Frame, x: Scale, marks: Sequence[Mark]) -> list[str]:
    out = []
    for i, mark in enumerate(marks):
        px = x(mark.x)
        out.append(
            f'<line x1="{_f(px)}" y1="{TOP}" x2="{_f(px)}" y2="{fr.bottom}" '
            f'stroke="{mark.color}" stroke-width="1.5" stroke-dasharray="4 3" class="mark"/>'
        )
        if not mark.label:
            continue
        # Alternate heights so labels of close marks do not sit on each other.
        ty = TOP + 12 + (i % 2) * 12
        anchor = "end" if px > fr.right - 60 else "start"
        dx = -3 if anchor == "end" else 3
        out.append(
            f'<text x="{_f(px + dx)}" y="{ty}" text-anchor="{anchor}" fill="{mark.color}" '
            f'class="mark-label">{escape(mark.label)}</text>'
        )
    return out


def _levels(fr: Frame, y: Scale, levels: Sequence[Level]) -> list[str]:
    # Labelled in the legend, not in the plot, where they would collide with step marks.
    return [
        f'<line x1="{LEFT}" y1="{_f(y(level.y))}" x2="{fr.right}" y2="{_f(y(level.y))}" '
        f'stroke="{level.color}" stroke-width="1.5" stroke-dasharray="6 4" class="level">'
        f"<title>{escape(level.label)}</title></line>"
        for level in levels
    ]


def _paths(line: Line, x: Scale, y: Scale, dots: bool) -> list[str]:
    segments: list[list[tuple[float, float]]] = [[]]
    for px, value in line.points:
        if value is None or math.isnan(value):
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append((x(px), y(value)))
    dash = ' stroke-dasharray="6 4"' if line.dashed else ""
    out = []
    for segment in segments:
        if len(segment) > 1:
            points = " ".join(f"{_f(a)},{_f(b)}" for a, b in segment)
            out.append(
                f'<polyline points="{points}" fill="none" stroke="{line.color}" '
                f'stroke-width="2"{dash} class="series"/>'
            )
        if dots or len(segment) == 1:
            out.extend(
                f'<circle cx="{_f(a)}" cy="{_f(b)}" r="3" fill="{line.color}"/>' for a, b in segment
            )
    return out


def time_chart(
    title: str,
    slug: str,
    lines: Sequence[Line],
    *,
    y_label: str,
    x_range: tuple[float, float],
    marks: Sequence[Mark] = (),
    levels: Sequence[Level] = (),
    log_y: bool = False,
    y_format: Callable[[float], str] = format_number,
    y_floor: float | None = 0.0,
    frame: Frame | None = None,
) -> str:
    """Lines over UTC time (x in epoch seconds), with step marks and threshold levels."""
    fr = frame or Frame()
    values = [v for line in lines for _, v in line.points if v is not None]
    bounds = [level.y for level in levels]
    x = Scale(x_range[0], max(x_range[1], x_range[0] + 60), LEFT, fr.right)
    if log_y:
        positive = [v for v in (*values, *bounds) if v > 0 and math.isfinite(v)]
        lo, hi = extent(positive) if positive else (0.1, 10.0)
        # Headroom: a threshold on a power of ten would otherwise sit on the frame.
        ticks = log_ticks(max(lo, 1e-12), max(hi * 1.5, lo * 10))
        y = Scale(ticks[0], ticks[-1], fr.bottom, TOP, log=True)
        fmt: Callable[[float], str] = format_power
    else:
        lo, hi = extent(values, include=bounds)
        if y_floor is not None:
            lo = min(lo, y_floor)
        ticks = nice_ticks(lo, hi)
        y = Scale(ticks[0], ticks[-1], fr.bottom, TOP)
        fmt = y_format
    dots = max((len(line.points) for line in lines), default=0) <= 40
    out = _open(fr, title, slug)
    out += _y_axis(fr, y, ticks, y_label, fmt)
    out += _x_ticks(fr, x, time_ticks(x.lo, x.hi), "time (UTC)")
    out += _levels(fr, y, levels)
    out += _marks(fr, x, [m for m in marks if x.lo <= m.x <= x.hi])
    for line in lines:
        out += _paths(line, x, y, dots)
    out += _legend(
        [(line.name, line.color, line.dashed) for line in lines]
        + [(level.label, level.color, True) for level in levels]
    )
    out.append("</svg>")
    return "\n".join(out)


def _bars_open(
    fr: Frame,
    title: str,
    slug: str,
    groups: Sequence[Bars],
    y_label: str,
    y_format: Callable[[float], str],
) -> tuple[Scale, list[str]]:
    """The value scale from zero up (with headroom for the labels over the bars), the
    opened SVG and its y axis: what the bar and histogram charts start with."""
    values = [v for group in groups for v in group.values if v is not None]
    low, high = extent(values, include=[0.0])
    ticks = nice_ticks(low, high * 1.1)
    y = Scale(ticks[0], ticks[-1], fr.bottom, TOP)
    return y, [*_open(fr, title, slug), *_y_axis(fr, y, ticks, y_label, y_format)]


def bar_chart(
    title: str,
    slug: str,
    categories: Sequence[str],
    groups: Sequence[Bars],
    *,
    y_label: str,
    y_format: Callable[[float], str] = format_number,
    frame: Frame | None = None,
) -> str:
    """Grouped bars: for each category, one bar per group (e.g. p50/p95/p99 per arm)."""
    fr = frame or Frame()
    y, out = _bars_open(fr, title, slug, groups, y_label, y_format)
    slot = (fr.right - LEFT) / max(1, len(categories))
    bar = slot * 0.7 / max(1, len(groups))
    base = fr.bottom
    for c, category in enumerate(categories):
        x0 = LEFT + c * slot + slot * 0.15
        for g, group in enumerate(groups):
            value = group.values[c] if c < len(group.values) else None
            if value is None:
                continue
            top = y(value)
            bx = x0 + g * bar
            out.append(
                f'<rect x="{_f(bx)}" y="{_f(top)}" width="{_f(bar - 2)}" '
                f'height="{_f(max(base - top, 0.5))}" fill="{group.color}" class="bar">'
                f"<title>{escape(f'{group.name} {category}: {y_format(value)}')}</title></rect>"
            )
            out.append(
                f'<text x="{_f(bx + (bar - 2) / 2)}" y="{_f(top - 4)}" text-anchor="middle" '
                f'class="value">{escape(y_format(value))}</text>'
            )
        out.append(
            f'<text x="{_f(LEFT + (c + 0.5) * slot)}" y="{base + 18}" text-anchor="middle" '
            f'class="tick">{escape(category)}</text>'
        )
    out += _legend([(group.name, group.color, False) for group in groups])
    out.append("</svg>")
    return "\n".join(out)


def histogram_chart(
    title: str,
    slug: str,
    edges: Sequence[float],
    groups: Sequence[Bars],
    *,
    x_label: str,
    y_label: str,
    marks: Sequence[Mark] = (),
    frame: Frame | None = None,
) -> str:
    """Side-by-side histograms over the same bins (shares of each group, so sizes differ)."""
    fr = frame or Frame()
    y, out = _bars_open(fr, title, slug, groups, y_label, format_number)
    x = Scale(edges[0], edges[-1], LEFT, fr.right)
    base = fr.bottom
    for i in range(len(edges) - 1):
        left, right = x(edges[i]), x(edges[i + 1])
        width = (right - left - 2) / max(1, len(groups))
        for g, group in enumerate(groups):
            value = group.values[i] if i < len(group.values) else None
            if not value:
                continue
            top = y(value)
            out.append(
                f'<rect x="{_f(left + 1 + g * width)}" y="{_f(top)}" width="{_f(width)}" '
                f'height="{_f(max(base - top, 0.5))}" fill="{group.color}" class="bar">'
                f"<title>{escape(f'{group.name} {edges[i]:g}-{edges[i + 1]:g}: {value:.3g}')}"
                "</title></rect>"
            )
    out += _x_ticks(
        fr, x, [(e, f"{e:g}") for e in edges[:: max(1, (len(edges) - 1) // 10)]], x_label
    )
    out += _marks(fr, x, marks)
    out += _legend([(group.name, group.color, False) for group in groups])
    out.append("</svg>")
    return "\n".join(out)
