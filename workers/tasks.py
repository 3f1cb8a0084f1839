"""Thin Celery tasks: decode arguments, call the services in shadowcanary/, handle retries."""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

import structlog
from celery import Celery, Task

from shadowcanary import constants
from shadowcanary.errors import TransientError
from shadowcanary.replay.backoff import retry_delay
from workers import metrics

if TYPE_CHECKING:
    from workers.app import WorkerContext

log = structlog.get_logger(__name__)


def register_tasks(app: Celery, context: WorkerContext) -> None:
    """Define the tasks on ``app``; they reach their services through ``context``."""
    replay_settings = context.settings.replay

    # shared=False: each app's tasks close over its own context. Shared (Celery's
    # default) they would be added to every app made later in the process, and a second
    # app (tests run several) would run the first one's tasks against its databases.
    @app.task(
        name=constants.TASK_INGEST,
        shared=False,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        max_retries=None,  # only outages are retried, and they must not run out
    )
    def ingest(
        self: Task, raw_events: list[Any], outage_retries: int = 0, journal_id: str | None = None
    ) -> dict[str, int]:
        context.journal.touch(journal_id)  # alive: not for the sweep to republish
        try:
            result = context.ingest_service.ingest(raw_events)
        except TransientError as exc:
            # Postgres (or Redis) is down: a failed task would be acked and its events
            # lost. Re-queue the batch (the broker keeps it) until the service is back.
            raise retry_outage(
                self, exc, [raw_events], outage_retries, journal_id=journal_id
            ) from exc
        context.journal.settle(journal_id)
        metrics.EVENTS_INGESTED.labels("accepted").inc(result.accepted)
        metrics.EVENTS_INGESTED.labels("duplicate").inc(result.duplicates)
        metrics.EVENTS_INGESTED.labels("rejected").inc(result.rejected)
        if result.rejected:
            metrics.DEAD_LETTERS.labels("ingest").inc(result.rejected)
        return {"accepted": result.accepted, "rejected": result.rejected}

    @app.task(
        name=constants.TASK_REPLAY,
        shared=False,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        # No Celery limit: max_attempts is enforced below (then the dead letter), and
        # retries that wait out an outage of Postgres or Redis must never run out.
        max_retries=None,
    )
    def replay(self: Task, event_ids: list[str], outage_retries: int = 0) -> dict[str, int]:
        # Retries spent waiting out our own outages are not attempts at the model.
        attempt = self.request.retries + 1 - outage_retries
        started = time.perf_counter()
        try:
            outcome = context.replay_service.replay(event_ids, attempt=attempt)
        except TransientError as exc:
            # Postgres or Redis (budget, rate limiter) is down: retry the whole batch
            # later rather than fail it (a failed task is acked: its events were lost).
            raise retry_outage(self, exc, [event_ids], outage_retries) from exc
        metrics.REPLAY_BATCH_SECONDS.observe(time.perf_counter() - started)
        for record in outcome.records:
            metrics.REPLAYS.labels(record.kind.value, record.status.value).inc()
            if record.output is not None and record.output.latency_ms is not None:
                metrics.REPLAY_SECONDS.labels(record.kind.value).observe(
                    record.output.latency_ms / 1000
                )
            if record.output is not None and record.output.cost_usd:
                metrics.SHADOW_COST_USD.labels(record.kind.value, record.output.model).inc(
                    record.output.cost_usd
                )
        if outcome.retry:
            for error in outcome.retry.values():
                metrics.RETRIES.labels(type(error).__name__).inc()
            if attempt >= replay_settings.max_attempts:
                letters = context.replay_service.give_up(outcome, attempts=attempt)
                metrics.DEAD_LETTERS.labels("replay").inc(letters)
                log.warning(
                    "replay.dead_lettered",
                    count=letters,
                    noise_failed=len(outcome.noise_only),
                    attempts=attempt,
                )
            else:
                delay = retry_delay(
                    attempt,
                    base_s=replay_settings.backoff_base_s,
                    max_s=replay_settings.backoff_max_s,
                    retry_after_s=outcome.retry_after_s,
                    jitter=random.random(),
                )
                log.info(
                    "replay.retry",
                    count=len(outcome.retry),
                    attempt=attempt,
                    delay_s=round(delay, 2),
                )
                # Only the events that failed go back, with Celery's retry count advanced.
                raise self.retry(
                    args=[list(outcome.retry)],
                    kwargs={"outage_retries": outage_retries},
                    countdown=delay,
                )
        if context.settings.judge.model is not None:
            answered = sorted({r.event_id for r in outcome.records if r.output is not None})
            if answered:
                context.schedule_judging(answered)
        return {"recorded": outcome.recorded, "retry": len(outcome.retry)}

    @app.task(
        name=constants.TASK_JUDGE,
        shared=False,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        max_retries=None,
    )
    def judge(self: Task, event_ids: list[str], outage_retries: int = 0) -> dict[str, int]:
        service = context.judge_service
        if service is None:
            return {"judged": 0}
        try:
            judged = service.judge(event_ids)
        except TransientError as exc:
            # Postgres or Redis is down: judge the batch later (verdicts are idempotent).
            raise retry_outage(self, exc, [event_ids], outage_retries) from exc
        metrics.JUDGED_PAIRS.inc(judged)
        return {"judged": judged}

    @app.task(name=constants.TASK_PURGE, shared=False)
    def purge() -> dict[str, int]:
        return context.purge()


# Waiting out an outage of Postgres or Redis: backoff capped here, never given up.
_OUTAGE_BACKOFF_BASE_S = 0.5
OUTAGE_BACKOFF_MAX_S = 10.0


def retry_outage(
    task: Task,
    exc: TransientError,
    args: list[Any],
    outage_retries: int,
    **kwargs: Any,
) -> Any:
    """``task.retry`` (the task has no retry limit), counted as an outage retry.

    ``kwargs`` are the task's other keyword arguments, carried over to the retry.
    """
    delay = retry_delay(
        outage_retries + 1,
        base_s=_OUTAGE_BACKOFF_BASE_S,
        max_s=OUTAGE_BACKOFF_MAX_S,
        retry_after_s=None,
        jitter=random.random(),
    )
    metrics.RETRIES.labels(type(exc).__name__).inc()
    log.warning(
        "task.outage_retry",
        task=task.name,
        error=type(exc).__name__,
        retries=outage_retries + 1,
        delay_s=round(delay, 2),
    )
    return task.retry(
        args=args,
        kwargs={**kwargs, "outage_retries": outage_retries + 1},
        countdown=delay,
        exc=exc,
    )
