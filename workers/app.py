"""The Celery app: where the worker process is wired to Redis, Postgres and the models.

``celery -A workers.app worker`` finds ``app`` here. It is built on first access (not
at import) from ``Settings``, so importing this module starts nothing.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
import structlog
from celery import Celery, signals
from kombu.entity import Queue
from kombu.exceptions import OperationalError

from shadowcanary import constants
from shadowcanary.errors import ServiceUnavailable
from shadowcanary.events import now_utc
from shadowcanary.ingest.journal import IngestJournal
from shadowcanary.ingest.outcomes import OutcomeIngest
from shadowcanary.ingest.service import IngestService
from shadowcanary.launcher.embedded_services import ServiceUrls, resolve_urls
from shadowcanary.limits.replay_rate import ReplayRates
from shadowcanary.logging import configure_logging
from shadowcanary.replay.event_loop import ReplayRuntime
from shadowcanary.replay.judging import JudgeService, PlanJudging
from shadowcanary.replay.service import ReplayService
from shadowcanary.settings import Settings, load_settings
from shadowcanary.store.candidates import RolloutCandidates
from shadowcanary.store.db import make_engine
from shadowcanary.store.judge_store import JudgeStore
from shadowcanary.store.outcomes import OutcomeStore
from shadowcanary.store.repository import Store
from shadowcanary.urls import redis_py_url
from workers import metrics
from workers.base_task import PUBLISH_RETRY_POLICY, RedeliveredOnFailedRetryTask
from workers.outcome_tasks import OutcomeSweeper, register_outcome_tasks
from workers.sweeper import ReplaySweeper
from workers.tasks import OUTAGE_BACKOFF_MAX_S, register_tasks

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Services:
    store: Store
    runtime: ReplayRuntime
    ingest: IngestService
    replay: ReplayService
    outcomes: OutcomeIngest
    judge: JudgeService | None  # None: no judge model configured


class WorkerContext:
    """The services tasks use, built once per worker process on first use.

    Task threads race for the first task; the lock makes sure one asyncio runtime
    and one connection pool are built, not one per thread.
    """

    def __init__(self, settings: Settings, urls: ServiceUrls, app: Celery) -> None:
        self.settings = settings
        self.urls = urls
        self._app = app
        self._lock = threading.Lock()
        self._services: _Services | None = None
        # Connects on first use; every call on it is best effort (see the module).
        self.journal = IngestJournal(
            redis.Redis.from_url(redis_py_url(urls.redis_url), socket_timeout=5)
        )

    def _get(self) -> _Services:
        with self._lock:
            if self._services is None:
                engine = make_engine(self.urls.database_url, pool_size=self.thread_count + 2)
                store = Store(engine)
                runtime = ReplayRuntime(self.settings, self.urls.redis_url)
                candidates = RolloutCandidates(engine, self.settings.candidate_model)
                judge = None
                if self.settings.judge.model is not None:
                    judge_store = JudgeStore(engine)
                    judge = JudgeService(
                        self.settings,
                        judge_store,
                        runtime,
                        plans=PlanJudging(judge_store.plan_judging),
                    )
                self._services = _Services(
                    store=store,
                    runtime=runtime,
                    ingest=IngestService(
                        self.settings,
                        store,
                        self.schedule_replays,
                        replay_rates=ReplayRates.from_url(self.urls.redis_url).rates,
                    ),
                    replay=ReplayService(
                        self.settings,
                        store,
                        runtime,
                        candidates=candidates,
                        baseline_again=judge.needs_baseline_again if judge else None,
                    ),
                    outcomes=OutcomeIngest(store, OutcomeStore(engine)),
                    judge=judge,
                )
            return self._services

    @property
    def store(self) -> Store:
        return self._get().store

    @property
    def runtime(self) -> ReplayRuntime:
        return self._get().runtime

    @property
    def ingest_service(self) -> IngestService:
        return self._get().ingest

    @property
    def replay_service(self) -> ReplayService:
        return self._get().replay

    @property
    def outcome_ingest(self) -> OutcomeIngest:
        return self._get().outcomes

    @property
    def judge_service(self) -> JudgeService | None:
        return self._get().judge

    def schedule_judging(self, event_ids: list[str]) -> None:
        """Queue the judge for replayed events (a lost message only loses judgements)."""
        try:
            self._app.send_task(
                constants.TASK_JUDGE,
                args=[event_ids],
                queue=constants.QUEUE_REPLAY,
                retry_policy=PUBLISH_RETRY_POLICY,
            )
        except OperationalError as exc:
            # The replays are recorded; their verdicts are a sample, missing some is fine.
            log.warning("judge.schedule_failed", count=len(event_ids), error=type(exc).__name__)

    @property
    def thread_count(self) -> int:
        """Task threads: twice the batches that fill the in-flight budget, plus ingest.

        A batch holds its thread until its slowest replay answers (the latency tail),
        while its other slots are already free. With only enough batches to fill the
        budget, the slots then sit idle behind the tails; the second set of batches
        waits on the in-flight semaphore and takes each slot as soon as it frees.
        """
        replay = self.settings.replay
        return 2 * math.ceil(replay.max_in_flight / replay.batch_size) + 2

    def schedule_replays(self, event_ids: list[str]) -> None:
        try:
            self._app.send_task(
                constants.TASK_REPLAY,
                args=[event_ids],
                queue=constants.QUEUE_REPLAY,
                retry_policy=PUBLISH_RETRY_POLICY,
            )
        except OperationalError as exc:
            # The captures are committed but Redis would not take their replays: a
            # transient fault, so the ingest task is re-queued and schedules them again
            # (ingest schedules every valid event of the batch, new or not).
            raise ServiceUnavailable(
                f"could not schedule replays on the broker: {exc}",
                hint="Redis is down or restarting; the ingest batch is retried",
            ) from exc

    def republish_ingest(self, raw_events: list[Any], journal_id: str) -> None:
        """Send a journalled batch to the ingest queue again (the sweep found it lost)."""
        self._app.send_task(
            constants.TASK_INGEST,
            args=[raw_events],
            kwargs={"journal_id": journal_id},
            queue=constants.QUEUE_INGEST,
            retry_policy=PUBLISH_RETRY_POLICY,
        )

    def purge(self) -> dict[str, int]:
        return self.store.purge(now_utc() - timedelta(days=self.settings.retention_days))


def transport_options(visibility_timeout_s: int) -> dict[str, int]:
    # kombu redelivers a dead worker's unacked tasks once they are older than the
    # visibility timeout, checked every interval x throttle seconds; check often
    # (throttle 1) so recovery takes about the visibility timeout, not ten times it.
    # The check runs under a Redis lock (unacked_mutex) that kombu keeps for 300 s by
    # default: a worker killed while holding it stopped every other worker restoring
    # for five minutes. The check itself takes milliseconds (and restoring one message
    # twice is guarded by a WATCH), so the lock only has to outlive one interval.
    restore_interval_s = max(1, min(10, visibility_timeout_s // 4))
    return {
        "visibility_timeout": visibility_timeout_s,
        "unacked_restore_interval": restore_interval_s,
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": restore_interval_s + 1,
    }


def recovery_bound_s(visibility_timeout_s: int) -> int:
    """Worst case before a dead worker's tasks are redelivered: timeout, lock, one interval."""
    options = transport_options(visibility_timeout_s)
    return (
        visibility_timeout_s + options["unacked_mutex_expire"] + options["unacked_restore_interval"]
    )


def ingest_sweep_grace_s(visibility_timeout_s: int) -> float:
    """How long a journalled batch goes unseen before it counts as lost.

    Each attempt at a batch touches its entry; between two attempts lie at most a
    retry's backoff (capped at ``OUTAGE_BACKOFF_MAX_S``) and a killed worker's
    redelivery (``recovery_bound_s``); one more visibility timeout is the margin.
    """
    return recovery_bound_s(visibility_timeout_s) + OUTAGE_BACKOFF_MAX_S + visibility_timeout_s


def create_app(settings: Settings, urls: ServiceUrls) -> Celery:
    """A Celery app for the shadow data path, with its tasks registered."""
    app = Celery(
        "shadowcanary",
        broker=urls.broker_url,
        set_as_current=False,
        task_cls=RedeliveredOnFailedRetryTask,
    )
    context = WorkerContext(settings, urls, app)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_default_queue=constants.QUEUE_INGEST,
        task_queues=[Queue(constants.QUEUE_INGEST), Queue(constants.QUEUE_REPLAY)],
        task_routes={
            constants.TASK_INGEST: {"queue": constants.QUEUE_INGEST},
            constants.TASK_REPLAY: {"queue": constants.QUEUE_REPLAY},
            constants.TASK_JUDGE: {"queue": constants.QUEUE_REPLAY},
            constants.TASK_PURGE: {"queue": constants.QUEUE_INGEST},
            constants.TASK_OUTCOMES: {"queue": constants.QUEUE_INGEST},
        },
        # Replays are I/O bound and share one asyncio loop per process (ReplayRuntime):
        # a few threads hand batches to it; prefork would waste a process per call.
        worker_pool="threads",
        worker_concurrency=context.thread_count,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options(settings.replay.visibility_timeout_s),
        beat_schedule={
            "purge-daily": {"task": constants.TASK_PURGE, "schedule": timedelta(hours=24)},
        },
    )
    app.shadowcanary_context = context
    register_tasks(app, context)
    register_outcome_tasks(app, context)

    @signals.worker_ready.connect(weak=False)
    def _on_ready(**_: Any) -> None:
        if settings.metrics_port:
            from prometheus_client import REGISTRY, start_http_server

            from workers.queue_metrics import QueueDepthCollector

            REGISTRY.register(QueueDepthCollector(urls.redis_url))
            start_http_server(settings.metrics_port, addr=str(settings.metrics_addr))
        metrics.IN_FLIGHT.set_function(lambda: context.runtime.in_flight())
        # Build the services now rather than in the first task, so the first batch does
        # not pay for the event loop, the clients and the pools. Nothing here connects
        # yet, so a database or Redis that is down still only fails (and retries) tasks.
        context.runtime  # noqa: B018 - the property builds the services
        # Replays lost after their captures were stored get scheduled again.
        # So do ingest batches a killed worker took with it (the journal's copy).
        ReplaySweeper(
            settings.replay,
            context.store,
            urls.redis_url,
            context.schedule_replays,
            journal=context.journal,
            republish_ingest=context.republish_ingest,
            ingest_grace_s=ingest_sweep_grace_s(settings.replay.visibility_timeout_s),
        ).start()
        OutcomeSweeper(settings.outcomes, context.outcome_ingest.outcomes).start()

    return app


def _build_default_app() -> Celery:
    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings, resolve_urls(settings))


_app: Celery | None = None


def __getattr__(name: str) -> Any:
    # Lazy so that importing workers.app (tests, the CLI) starts no servers.
    global _app
    if name == "app":
        if _app is None:
            _app = _build_default_app()
        return _app
    raise AttributeError(name)
