"""QuantileSketch bins computed by Postgres, so a sketch of raw rows needs no row in Python.

``GROUP BY sketch_key(latency_ms)`` with ``count(*)`` yields exactly the bins
``QuantileSketch.of`` builds from the same values (the rollups' sketches): a report
over raw rows (one tenant's calls) transfers O(bins) rows, not O(calls).

The key is DDSketch's ``LogarithmicMapping.key``: ``ceil(log2(v) * multiplier)``,
where Python computes ``log2(v)`` as ``ln(v) / ln(2)``. Postgres' ``ln`` and Python's
``math.log`` are both the C library's ``log``, and the two constants are sent as the
very doubles Python uses, so the keys agree to the bit (a test checks values on and
around bin boundaries against ``QuantileSketch.of``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Double, Integer, case, cast, func, literal
from sqlalchemy.sql.elements import ColumnElement

from shadowcanary.store.sketch import MAPPING, QuantileSketch

_LN2 = math.log(2)
# ddsketch keeps its multiplier private; read from the rollups' own mapping, it is the
# very double ``MAPPING.key`` multiplies by (as bench/controller_tick.py uses it).
_MULTIPLIER: float = MAPPING._multiplier


def sketch_key(value: ColumnElement[Any]) -> ColumnElement[int | None]:
    """The sketch bin of a non-negative ``value``; NULL for the zero bin (as ``of`` does)."""
    log2 = func.ln(cast(value, Double)) / literal(_LN2, Double)
    key = cast(func.ceil(log2 * literal(_MULTIPLIER, Double)), Integer)
    return case((value > literal(MAPPING.min_possible, Double), key), else_=None)


def sketch_of_bins(bins: Iterable[tuple[int | None, int]]) -> QuantileSketch:
    """The sketch of ``(sketch_key, count)`` pairs (repeated keys add up)."""
    zero = 0
    counts: Counter[int] = Counter()
    for key, count in bins:
        if key is None:
            zero += count
        else:
            counts[key] += count
    return QuantileSketch(zero_count=zero, bins=dict(counts))
