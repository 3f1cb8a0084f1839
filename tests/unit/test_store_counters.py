"""The rollup counters are named once, by the rollup tables; everything else follows them."""

from __future__ import annotations

import dataclasses

from shadowcanary.judge.types import OutputFlags
from shadowcanary.store.models import LIVE_COUNTERS, SHADOW_COUNTERS, CaptureRow, ComparisonRow
from shadowcanary.store.totals import LiveTotals, ShadowTotals


def _counter_fields(totals: type) -> list[str]:
    # buckets is the number of rows merged; sketches are merged, not summed.
    fields = dataclasses.fields(totals)
    return [f.name for f in fields if f.name != "buckets" and not f.name.endswith("_sketch")]


def test_live_totals_have_exactly_the_live_rollup_counters() -> None:
    """A counter added to live_rollups without LiveTotals (or the reverse) fails here."""
    assert _counter_fields(LiveTotals) == list(LIVE_COUNTERS)


def test_shadow_totals_have_exactly_the_shadow_rollup_counters() -> None:
    """A counter added to shadow_rollups without ShadowTotals (or the reverse) fails here."""
    assert _counter_fields(ShadowTotals) == list(SHADOW_COUNTERS)


def test_every_output_flag_has_its_columns() -> None:
    """Each OutputFlags field is a capture column and a reference_/other_ comparison column."""
    columns = set(CaptureRow.__table__.columns.keys())
    compared = set(ComparisonRow.__table__.columns.keys())
    for flag in (f.name for f in dataclasses.fields(OutputFlags)):
        assert flag in columns, flag
        assert {f"reference_{flag}", f"other_{flag}"} <= compared, flag
