"""Retry delays and Retry-After parsing (pure, table-driven)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from shadowcanary.replay.backoff import parse_retry_after, retry_delay

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("attempt", "retry_after_s", "jitter", "expected"),
    [
        # exponential, equal jitter: the delay lies in [d/2, d] with d = 1 * 2**(attempt-1)
        (1, None, 0.0, 0.5),
        (1, None, 1.0, 1.0),
        (1, None, 0.5, 0.75),
        (2, None, 0.0, 1.0),
        (2, None, 1.0, 2.0),
        (3, None, 1.0, 4.0),
        (4, None, 0.5, 6.0),
        (5, None, 1.0, 16.0),
        # capped at max_s=30: the jitter range becomes [15, 30]
        (6, None, 1.0, 30.0),
        (6, None, 0.0, 15.0),
        (50, None, 0.5, 22.5),
        (10_000, None, 1.0, 30.0),  # no overflow however many attempts
        # Retry-After shorter than the backoff: the backoff stands
        (3, 1.0, 1.0, 4.0),
        (3, 0.0, 0.0, 2.0),
        # Retry-After longer than the backoff: never retry earlier than the server asked
        (1, 7.0, 0.0, 7.0),
        (1, 7.0, 1.0, 7.0),
        (6, 45.0, 1.0, 45.0),  # beyond max_s: the server's answer beats our cap
        (2, 299.0, 0.3, 299.0),
        # ...up to the hard ceiling, RETRY_AFTER_CEILING_FACTOR (10) * max_s
        (2, 300.0, 0.3, 300.0),
        (2, 86_400.0, 0.3, 300.0),
        (6, 1e12, 1.0, 300.0),
    ],
)
def test_retry_delay_table(
    attempt: int, retry_after_s: float | None, jitter: float, expected: float
) -> None:
    """Delay = max(jittered capped exponential, Retry-After up to 10 x max_s)."""
    got = retry_delay(attempt, base_s=1.0, max_s=30.0, retry_after_s=retry_after_s, jitter=jitter)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("attempt", range(1, 40))
@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.999, 1.0])
def test_retry_delay_bounds(attempt: int, jitter: float) -> None:
    """Without Retry-After a delay is between base_s/2 and max_s and never shrinks with attempts."""
    kwargs: dict[str, Any] = {"base_s": 0.2, "max_s": 10.0, "retry_after_s": None, "jitter": jitter}
    delay = retry_delay(attempt, **kwargs)
    assert 0.1 <= delay <= 10.0
    assert retry_delay(attempt + 1, **kwargs) >= delay


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempt": 0},
        {"attempt": -1},
        {"jitter": -0.01},
        {"jitter": 1.01},
        {"base_s": 0.0},
        {"base_s": 5.0, "max_s": 1.0},
        {"max_s": float("inf")},
        {"retry_after_s": -1.0},
        {"retry_after_s": float("nan")},
    ],
)
def test_retry_delay_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    """Arguments outside their domain raise ValueError instead of producing a delay."""
    args: dict[str, Any] = {
        "attempt": 1,
        "base_s": 1.0,
        "max_s": 30.0,
        "retry_after_s": None,
        "jitter": 0.5,
    }
    args.update(kwargs)
    with pytest.raises(ValueError):
        retry_delay(args.pop("attempt"), **args)


def _http_date(moment: datetime) -> str:
    return moment.strftime("%a, %d %b %Y %H:%M:%S GMT")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"content-type": "application/json"}, None),
        # OpenAI's millisecond header, preferred over retry-after
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "20.5"}, 0.0205),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"Retry-After-Ms": "0"}, 0.0),
        # delta-seconds, any header case
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({"RETRY-AFTER": " 30 "}, 30.0),
        # unusable millisecond values fall through to retry-after
        ({"retry-after-ms": "soon", "retry-after": "4"}, 4.0),
        ({"retry-after-ms": "-5", "retry-after": "4"}, 4.0),
        ({"retry-after-ms": "nan", "retry-after": "4"}, 4.0),
        # HTTP-date, measured from NOW; the past means "now"
        ({"retry-after": _http_date(NOW + timedelta(seconds=90))}, 90.0),
        ({"retry-after": _http_date(NOW - timedelta(hours=1))}, 0.0),
        ({"retry-after": "Sat, 01 Mar 2025 12:00:10 -0000"}, 10.0),
        # garbage and negative values are ignored
        ({"retry-after": "-3"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "tomorrow-ish"}, None),
        ({"retry-after": ""}, None),
    ],
)
def test_parse_retry_after_table(headers: dict[str, str], expected: float | None) -> None:
    """retry-after-ms beats retry-after; seconds and HTTP-dates parse; garbage is None."""
    got = parse_retry_after(headers, now=NOW)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_parse_retry_after_date_uses_the_given_now_in_any_timezone() -> None:
    """The HTTP-date form is measured from the caller's now, whatever its timezone."""
    now_in_paris = NOW.astimezone(timezone(timedelta(hours=1)))
    headers = {"Retry-After": _http_date(NOW + timedelta(seconds=42))}
    assert parse_retry_after(headers, now=now_in_paris) == pytest.approx(42.0)


def test_parse_retry_after_rejects_naive_now() -> None:
    """A naive now is ambiguous for the HTTP-date form, so it is refused."""
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_retry_after({"retry-after": "1"}, now=datetime(2025, 3, 1, 12, 0))
