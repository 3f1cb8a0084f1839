"""Queue depth as a Prometheus gauge, read from Redis when /metrics is scraped.

Alerts and dashboards need the backlog of the ingest and replay queues without a
separate Redis exporter. The read happens at scrape time (two LLENs in one pipeline,
with a short timeout), not on a timer, so an idle worker costs Redis nothing. When
Redis does not answer the gauge is left out of that scrape rather than reported as
0: an alert must not read "empty queue" from "could not look".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import redis
import redis.exceptions
import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shadowcanary import constants

log = structlog.get_logger(__name__)

QUEUE_DEPTH = "shadowcanary_queue_depth"
QUEUES = (constants.QUEUE_INGEST, constants.QUEUE_REPLAY)


class QueueDepthCollector(Collector):
    """``shadowcanary_queue_depth{queue}``: tasks waiting in each Celery queue."""

    def __init__(
        self, redis_url: str, queues: Iterable[str] = QUEUES, timeout_s: float = 1.0
    ) -> None:
        self._queues = tuple(queues)
        self._client = redis.Redis.from_url(
            redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            QUEUE_DEPTH, "Tasks waiting in a shadowcanary queue in Redis", labels=["queue"]
        )
        try:
            pipe = self._client.pipeline(transaction=False)
            for queue in self._queues:
                pipe.llen(queue)
            depths = pipe.execute()
        except redis.exceptions.RedisError as exc:
            log.warning("metrics.queue_depth_unavailable", error=type(exc).__name__)
            return
        for queue, depth in zip(self._queues, depths, strict=True):
            family.add_metric([queue], float(depth))
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Describing without collecting: registering must not call Redis.
        yield GaugeMetricFamily(QUEUE_DEPTH, "Tasks waiting in a shadowcanary queue in Redis")
