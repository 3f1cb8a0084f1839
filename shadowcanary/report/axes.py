"""Scales and tick marks for the report's SVG charts: linear, log and UTC time axes.

Hand-written rather than a plotting library: the charts are a few lines and bars, and
owning the forty lines of tick arithmetic keeps the page small, deterministic (same
figures, same bytes) and free of scripts, with every label real SVG text that prints
sharply and can be searched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

_STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)
# Time tick spacings in seconds: 1, 2, 5, 10, 15, 30 min; 1, 2, 3, 6, 12 h; 1, 2, 7 days.
_TIME_STEPS = (
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    172800,
    604800,
)


@dataclass(frozen=True, slots=True)
class Scale:
    """Maps data values in [lo, hi] to pixels in [start, end] (linear or log10)."""

    lo: float
    hi: float
    start: float
    end: float
    log: bool = False

    def __call__(self, value: float) -> float:
        lo, hi, v = self.lo, self.hi, min(max(value, self.lo), self.hi)
        if self.log:
            lo, hi, v = math.log10(lo), math.log10(hi), math.log10(v)
        if hi == lo:
            return (self.start + self.end) / 2
        return self.start + (v - lo) / (hi - lo) * (self.end - self.start)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi], about ``count`` of them; the range grows to fit."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, count)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(s * power for s in _STEPS if s * power >= raw)
    first = math.floor(lo / step + 1e-9) * step
    ticks: list[float] = []
    value = first
    while value < hi + step * 0.5 and len(ticks) < 50:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten covering [lo, hi] (both > 0), thinned to at most seven."""
    low = math.floor(math.log10(lo))
    high = max(low + 1, math.ceil(math.log10(hi)))
    every = max(1, math.ceil((high - low) / 6))
    return [10.0**e for e in range(low, high + 1, every)] + (
        [10.0**high] if (high - low) % every else []
    )


def time_ticks(t0: float, t1: float, max_ticks: int = 7) -> list[tuple[float, str]]:
    """UTC tick positions (epoch seconds) on round minutes/hours/days, with labels."""
    span = max(t1 - t0, 60.0)
    step = next((s for s in _TIME_STEPS if span / s <= max_ticks), _TIME_STEPS[-1])
    first = math.ceil(t0 / step) * step
    with_date = span > 86400 or _day(t0) != _day(t1)
    ticks = []
    t = float(first)
    while t <= t1:
        moment = datetime.fromtimestamp(t, UTC)
        ticks.append((t, moment.strftime("%m-%d %H:%M" if with_date else "%H:%M")))
        t += step
    return ticks


def _day(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def extent(values: Sequence[float], *, include: Sequence[float] = ()) -> tuple[float, float]:
    """Min and max of the finite values (and ``include``); (0, 1) when there are none."""
    finite = [v for v in (*values, *include) if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    return min(finite), max(finite)


def format_number(value: float) -> str:
    """Short tick labels: 0.25, 1.5k, 2M, 1e-05."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:g}k"
    if magnitude < 1e-3:
        return f"{value:.0e}"
    return f"{value:.4g}"


def format_percent(value: float) -> str:
    return f"{value * 100:.3g} %"


def format_power(value: float) -> str:
    """Tick labels on a log axis: 1, 10, 100, 1e3 ... and 0.1, 0.01, 1e-3 ..."""
    exponent = round(math.log10(value))
    if -2 <= exponent <= 2:
        return f"{value:g}"
    return f"1e{exponent}"
