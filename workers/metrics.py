"""Prometheus metrics of the workers (served on ``Settings.metrics_port``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_INGESTED = Counter(
    "shadowcanary_worker_events_ingested_total",
    "Captured events processed by ingest, by outcome",
    ["outcome"],  # accepted | duplicate | rejected
)
REPLAYS = Counter(
    "shadowcanary_worker_replays_total",
    "Replays recorded, by kind (candidate/noise) and status",
    ["kind", "status"],
)
RETRIES = Counter(
    "shadowcanary_worker_replay_retries_total",
    "Events sent back for another attempt, by error class",
    ["error_class"],
)
DEAD_LETTERS = Counter(
    "shadowcanary_worker_dead_letters_total",
    "Events given up on, by stage",
    ["stage"],
)
REPLAY_BATCH_SECONDS = Histogram(
    "shadowcanary_worker_replay_batch_seconds",
    "Wall time of one replay batch task",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
REPLAY_SECONDS = Histogram(
    "shadowcanary_worker_replay_seconds",
    "Latency of one replay call to a model, by kind",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
IN_FLIGHT = Gauge(
    "shadowcanary_worker_replays_in_flight",
    "Replays currently waiting on a model in this process",
)
SHADOW_COST_USD = Counter(
    "shadowcanary_worker_replay_cost_usd_total",
    "Dollars spent on shadow replays at the configured prices, by kind and model",
    ["kind", "model"],
)
JUDGED_PAIRS = Counter(
    "shadowcanary_worker_judged_pairs_total",
    "Pairs the LLM judge gave a new verdict on (or recorded as failed/skipped)",
)
