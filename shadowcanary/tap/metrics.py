"""Prometheus metrics of the tap.

These are the only module-level objects of the tap (Prometheus wants one collector
per name per registry). They are updated from the tap's background thread only, from
the plain counters the hot path keeps, so ``Tap.emit`` never touches a Prometheus lock.
Every ``Tap`` in a process adds to the same counters.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_EMITTED = Counter(
    "shadowcanary_tap_events_emitted_total",
    "Events handed to Tap.emit (before sampling).",
)
EVENTS_DROPPED = Counter(
    "shadowcanary_tap_events_dropped_total",
    "Events the tap dropped instead of delivering, by reason.",
    ["reason"],
)
EVENTS_PUBLISHED = Counter(
    "shadowcanary_tap_events_published_total",
    "Events published to the ingest queue.",
)
BUFFER_DEPTH = Gauge(
    "shadowcanary_tap_buffer_depth",
    "Events waiting in the tap's in-memory buffer.",
)
PUBLISH_SECONDS = Histogram(
    "shadowcanary_tap_publish_seconds",
    "Time to publish one batch to Redis (failed attempts included).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
