"""Every Redis key, Celery task and queue name in one place (arq's habit).

The tap and the workers run in different processes and often different deployments;
they agree on these names and on ``shadowcanary.events`` and on nothing else.
"""

from __future__ import annotations

# Celery task names (the tap sends by name, so it never imports the worker code).
TASK_INGEST = "shadowcanary.ingest"  # args: [list[event dict]]
TASK_REPLAY = "shadowcanary.replay"  # args: [list[event_id]]
TASK_PURGE = "shadowcanary.purge"
TASK_OUTCOMES = "shadowcanary.outcomes"  # args: [list[outcome report dict]]
TASK_JUDGE = "shadowcanary.judge"  # args: [list[event_id]] (replayed events to judge)

# Queues: ingest is cheap and must never wait behind slow replays.
QUEUE_INGEST = "shadowcanary.ingest"
QUEUE_REPLAY = "shadowcanary.replay"
# The ingest journal (shadowcanary/ingest/journal.py): each published tap batch by id
# until a worker has stored it, and when each was last seen alive.
INGEST_JOURNAL_KEY = "shadowcanary.ingest.journal"
INGEST_JOURNAL_INDEX_KEY = "shadowcanary.ingest.journal.index"

KEY_PREFIX = "shadowcanary:"


def rate_limit_key(model: str, kind: str) -> str:
    """Shared RPM/TPM window for one model; ``kind`` is 'rpm' or 'tpm'."""
    return f"{KEY_PREFIX}ratelimit:{model}:{kind}"


def budget_key(day: str, kind: str) -> str:
    """Today's shadow spend; ``day`` is YYYY-MM-DD (UTC), ``kind`` 'tokens' or 'usd_micros'."""
    return f"{KEY_PREFIX}budget:{day}:{kind}"


def replay_rate_key(rollout: str) -> str:
    """Share of a rollout's baseline answers to replay now (the controller's adaptive rate)."""
    return f"{KEY_PREFIX}replay_rate:{rollout}"


# Each tap process's cumulative counters, one hash field per instance (tap/stats.py).
TAP_STATS_KEY = f"{KEY_PREFIX}tap:stats"
