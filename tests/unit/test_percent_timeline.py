"""The flag percentage per evidence minute, from the audit timeline (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shadowcanary.store.rollup_reads import percent_per_minute, points_signature

M0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(minute: int, second: int = 0) -> datetime:
    return M0 + timedelta(minutes=minute, seconds=second)


MINUTES = [at(m) for m in range(4)]


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        pytest.param([], [0.0, 0.0, 0.0, 0.0], id="no-entries-means-0"),
        pytest.param([(at(0), 0)], [0.0, 0.0, 0.0, 0.0], id="start-only"),
        pytest.param([(at(1), 10)], [10.0, 10.0, 10.0, 10.0], id="before-first-point-it-holds"),
        pytest.param([(at(0), 0), (at(2), 30)], [0.0, 0.0, 30.0, 30.0], id="on-the-boundary"),
        pytest.param([(at(0), 10), (at(1, 30), 30)], [10.0, 20.0, 30.0, 30.0], id="mid-minute"),
        pytest.param(
            [(at(0), 0), (at(1, 15), 10), (at(1, 45), 30)],
            [0.0, (15 * 0 + 30 * 10 + 15 * 30) / 60, 30.0, 30.0],
            id="two-changes-in-a-minute",
        ),
        pytest.param(
            [(at(0), 30), (at(2, 30), 0)], [30.0, 30.0, 15.0, 0.0], id="rollback-mid-minute"
        ),
    ],
)
def test_percent_per_minute(points: list[tuple[datetime, int]], expected: list[float]) -> None:
    """Each minute gets the percentage in force, time-weighted when it changed within."""
    assert percent_per_minute(points, MINUTES) == pytest.approx(expected)


def test_points_signature_names_what_shapes_a_chunk() -> None:
    """A chunk's signature is the % in force at its start plus the changes inside it."""
    points = [(at(0), 0), (at(1), 10), (at(3), 30)]
    assert points_signature(points, at(0), at(2)) == (0, ((at(1), 10),))
    assert points_signature(points, at(2), at(3)) == (10, ())
    assert points_signature(points, at(3), at(4)) == (30, ())
    assert points_signature([], at(0), at(1)) == (0, ())
    assert points_signature([(at(5), 50)], at(0), at(1)) == (50, ())
