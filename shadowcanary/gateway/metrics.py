"""Prometheus metrics of the gateway (served on its own ``/metrics``).

Module-level because Prometheus wants one collector per name per registry. Label
children are looked up once per (labels) and cached by the callers' dicts, so a
request costs a few lock-protected additions.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Sub-millisecond buckets: the gateway's own overhead is measured in fractions of a ms.
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
_UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REQUESTS = Counter(
    "shadowcanary_gateway_requests_total",
    "Model calls answered by the gateway, by endpoint, arm and HTTP status.",
    ["endpoint", "arm", "status"],
)
REJECTED = Counter(
    "shadowcanary_gateway_rejected_total",
    "Requests the gateway answered itself without calling a model, by reason.",
    ["reason"],
)
ADDED_LATENCY = Histogram(
    "shadowcanary_gateway_added_latency_seconds",
    "Time spent in the gateway itself (total minus waiting for the upstream).",
    ["endpoint"],
    buckets=_OVERHEAD_BUCKETS,
)
UPSTREAM_LATENCY = Histogram(
    "shadowcanary_gateway_upstream_latency_seconds",
    "Upstream call duration (whole body, or whole stream), by arm.",
    ["arm"],
    buckets=_UPSTREAM_BUCKETS,
)
TTFT = Histogram(
    "shadowcanary_gateway_ttft_seconds",
    "Time to first content chunk of streamed calls, as the client saw it, by arm.",
    ["arm"],
    buckets=_UPSTREAM_BUCKETS,
)
STREAM_CHUNKS = Counter(
    "shadowcanary_gateway_stream_chunks_total",
    "Chunks of streamed responses forwarded to clients.",
)
FALLBACKS = Counter(
    "shadowcanary_gateway_fallbacks_total",
    "Candidate calls served by the baseline instead, by reason.",
    ["reason"],
)
BREAKER_STATE = Gauge(
    "shadowcanary_gateway_breaker_state",
    "Circuit breaker per upstream model: 0 closed, 1 half-open, 2 open.",
    ["upstream"],
)
INGESTED = Counter(
    "shadowcanary_gateway_ingested_events_total",
    "Events posted to /v1/tap/events, by outcome (accepted, rejected).",
    ["outcome"],
)
