"""How long a replay waits before retrying a 429, a 5xx or a timeout.

Pure functions: the jitter and the clock are arguments, so a retry schedule seen in a
log can be recomputed exactly.

The rules, in order:

1. Exponential: ``base_s * 2 ** (attempt - 1)``, capped at ``max_s``.
2. "Equal jitter": the delay is drawn from the upper half, ``[d/2, d]``. Full jitter
   (``[0, d]``) would sometimes retry at once, which against a provider that just
   said 429 only earns another 429; half the delay still spreads the workers out.
3. Retry-After wins when it is longer: the server knows when it will take us again.
   It may exceed ``max_s`` (our cap is a guess, the server's answer is not) but only
   up to ``RETRY_AFTER_CEILING_FACTOR * max_s``, so a broken or hostile header
   ("retry in a week") cannot park a worker for good; the retry will then see a fresh
   429 and a fresh Retry-After.

Retries that all honour the same Retry-After are not spread here; the shared rate
limiter (``RedisRateLimiter.penalize``) pauses every worker and then hands out slots
one emission interval apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRY_AFTER_CEILING_FACTOR = 10.0

# Beyond this many doublings every realistic cap is reached; stops 2**n overflowing.
_MAX_DOUBLINGS = 64


def retry_delay(
    attempt: int,
    *,
    base_s: float,
    max_s: float,
    retry_after_s: float | None,
    jitter: float,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry).

    Args:
        jitter: a uniform random number in [0, 1] chosen by the caller
            (``random.random()`` in production, fixed in tests).
    """
    if attempt < 1:
        raise ValueError(f"attempt counts retries from 1, got {attempt}")
    if not 0 < base_s <= max_s or math.isinf(max_s):
        raise ValueError(f"need 0 < base_s <= max_s < inf, got base_s={base_s}, max_s={max_s}")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be in [0, 1], got {jitter}")
    if retry_after_s is not None and not retry_after_s >= 0:
        raise ValueError(f"retry_after_s must be >= 0 or None, got {retry_after_s}")

    exponential = min(max_s, math.ldexp(base_s, min(attempt - 1, _MAX_DOUBLINGS)))
    delay = exponential * (0.5 + 0.5 * jitter)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, RETRY_AFTER_CEILING_FACTOR * max_s))
    return delay


def parse_retry_after(headers: Mapping[str, str], *, now: datetime) -> float | None:
    """Seconds the server asked us to wait, or ``None`` when it did not say (usably).

    Reads, first match wins: ``retry-after-ms`` (OpenAI's, milliseconds, may be
    fractional), then ``retry-after`` as delta-seconds or as an HTTP-date (RFC 9110),
    the latter measured from ``now`` (timezone-aware). Header names match in any case.
    A date in the past means 0. Garbage, negative or non-finite values are ignored.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware (got naive {now.isoformat()})")
    lowered = {name.lower(): value for name, value in headers.items()}

    millis = _non_negative_number(lowered.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0

    raw = lowered.get("retry-after")
    if raw is None:
        return None
    seconds = _non_negative_number(raw)
    if seconds is not None:
        return seconds
    return _seconds_until_http_date(raw, now)


def _non_negative_number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _seconds_until_http_date(raw: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # "-0000" parses as naive; HTTP-dates are always GMT (RFC 9110 section 5.6.7).
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
