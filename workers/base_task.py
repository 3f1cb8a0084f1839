"""The base class of every shadowcanary task: a retry that cannot be published is not lost.

Celery's ``Task.retry`` publishes a copy of the task and then acks the original. When
that publish fails (Redis restarting, a connection refused), Celery raises
``Reject(requeue=False)``: with ``acks_late`` the worker then deletes the original
message too, and the work is gone although nothing settled it. On Redis that happens
whenever the broker blips between the task's start and its retry.

Here the publish first gets kombu's retry policy (a few seconds of reconnecting, long
enough for a Redis restart from its AOF). If it still fails, the original message is
rejected *with* requeue: it goes back to its queue, or, when Redis cannot even take
that, it stays in Redis's unacked set and kombu restores it after the visibility
timeout. Either way the message is redelivered, and the tasks are idempotent by
event id, so running it again is safe.
"""

from __future__ import annotations

from typing import Any

import structlog
from celery import Task
from celery.exceptions import Reject

log = structlog.get_logger(__name__)

# kombu's ``ensure`` policy for the retry's publish: about 6 s of reconnecting, then
# give up (and requeue the original) rather than hold a task thread for longer.
PUBLISH_RETRY_POLICY: dict[str, float] = {
    "max_retries": 8,
    "interval_start": 0.0,
    "interval_step": 0.5,
    "interval_max": 1.0,
}


class RedeliveredOnFailedRetryTask(Task):  # type: ignore[misc]  # Celery is untyped
    """A ``Task`` whose ``retry`` never drops the message when the retry cannot be sent."""

    abstract = True

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("retry_policy", PUBLISH_RETRY_POLICY)
        try:
            return super().retry(*args, **kwargs)
        except Reject as exc:
            if exc.requeue:
                raise
            # Celery could not publish the retry (the only Reject(requeue=False) that
            # retry raises): hand the original back to the broker instead of deleting it.
            log.warning(
                "task.retry_unpublished_requeued",
                task=self.name,
                error=type(exc.reason).__name__,
                detail=str(exc.reason)[:200],
            )
            raise Reject(exc.reason, requeue=True) from exc
