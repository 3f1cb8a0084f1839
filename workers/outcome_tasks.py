"""The outcome ingest task and the sweep that joins outcomes whose capture came later.

Every worker runs the sweep in a daemon thread: dirty outcome rows of the last day are
taken with ``SKIP LOCKED``, so workers share the work without a lock of their own, and a
sweep costs two queries on the dirty rows' partial index when there is nothing to join.
Each sweep also counts the outcomes whose event id no capture matched (``unknown``),
for the metric and the log.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from celery import Celery, Task
from prometheus_client import Counter, Gauge

from shadowcanary import constants
from shadowcanary.errors import TransientError
from shadowcanary.events import now_utc
from shadowcanary.settings import OutcomeSettings
from shadowcanary.store.outcomes import OutcomeStore
from workers import metrics
from workers.tasks import retry_outage

if TYPE_CHECKING:
    from workers.app import WorkerContext

log = structlog.get_logger(__name__)

OUTCOMES_INGESTED = Counter(
    "shadowcanary_worker_outcomes_ingested_total",
    "Outcome reports processed, by result",
    ["result"],  # accepted | rejected | joined
)
OUTCOMES_UNKNOWN = Gauge(
    "shadowcanary_worker_outcomes_unknown",
    "Outcome reports of the last day whose event id no capture matched after unknown_after_s",
)
# A capture is published before its answer reaches the user: one arriving a day after
# its outcome report will not come. Reports older than this are not looked at again.
_LOOKBACK = timedelta(days=1)


def register_outcome_tasks(app: Celery, context: WorkerContext) -> None:
    """Define the outcome ingest task on ``app`` (shared=False: see workers.tasks)."""

    @app.task(
        name=constants.TASK_OUTCOMES,
        shared=False,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        max_retries=None,
    )
    def ingest_outcomes(
        self: Task, raw_reports: list[Any], outage_retries: int = 0
    ) -> dict[str, int]:
        try:
            result = context.outcome_ingest.ingest(raw_reports)
        except TransientError as exc:
            # Postgres is down: re-queue the batch (merging makes a redelivery harmless).
            raise retry_outage(self, exc, [raw_reports], outage_retries) from exc
        OUTCOMES_INGESTED.labels("accepted").inc(result.accepted)
        OUTCOMES_INGESTED.labels("joined").inc(result.joined)
        if result.rejected:
            OUTCOMES_INGESTED.labels("rejected").inc(result.rejected)
            metrics.DEAD_LETTERS.labels("outcome").inc(result.rejected)
        return {"accepted": result.accepted, "joined": result.joined, "rejected": result.rejected}


class OutcomeSweeper:
    """A daemon thread in each worker process: join late captures, count unknown ids."""

    def __init__(
        self,
        settings: OutcomeSettings,
        outcomes: OutcomeStore,
        *,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self._settings = settings
        self._outcomes = outcomes
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outcome-sweeper", daemon=True)
        self._last_unknown = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._settings.sweep_interval_s):
            try:
                self.sweep_once()
            except TransientError as exc:
                log.warning("outcomes.sweep_skipped", error=type(exc).__name__)
            except Exception as exc:  # a bug must not end the sweeps for good
                log.error("outcomes.sweep_failed", error=type(exc).__name__, exc_info=True)

    def sweep_once(self) -> tuple[int, int]:
        """Join what can be joined; returns (joined, unknown ids of the last day)."""
        since = self._clock() - _LOOKBACK
        joined = 0
        while True:
            batch = self._outcomes.join_pending(since=since)
            joined += batch
            if batch == 0:
                break
        now = self._clock()
        unknown = self._outcomes.count_unknown(
            since=now - _LOOKBACK,
            now=now,
            unknown_after=timedelta(seconds=self._settings.unknown_after_s),
        )
        OUTCOMES_UNKNOWN.set(unknown)
        if unknown > self._last_unknown:
            log.warning(
                "outcomes.unknown_event_ids",
                unknown=unknown,
                hint="outcome reports name event ids no capture matched: check that services "
                "report the id of a captured call (last_event_id() / x-shadowcanary-event-id)",
            )
        self._last_unknown = unknown
        return joined, unknown
