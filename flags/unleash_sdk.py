"""``UnleashClientEvaluator``: the official Unleash SDK, started without waiting on Unleash.

Three things the SDK does not do on its own, and how this module gets them from the
SDK's own extension points rather than a hand-written fetch loop:

- **Start at once.** ``UnleashClient.initialize_client()`` registers and fetches before
  it returns: two request timeouts against a hung Unleash, during which a service
  serves nothing. We hand the client our own APScheduler (its ``scheduler`` option)
  and run ``initialize_client`` as a one-off job on it, so ``start()`` returns
  immediately; everyone gets the baseline until the first fetch lands.
- **Keep the disk copy synchronous.** The flags the SDK kept on disk from an earlier
  run are loaded before ``start()`` returns, through the cache's ``bootstrap_from_dict``
  (a fast local read), so a restart during an outage serves the last known flags.
- **Quiet outage logs.** While Unleash is down the SDK logs a full traceback on every
  poll. A filter on the SDK's logger, limited to this client's scheduler threads,
  turns that into one warning when Unleash becomes unreachable and one info line when
  it answers again (a requests response hook, passed in the SDK's ``custom_options``,
  sees the answer, 304s included); the SDK's own lines, tracebacks included, and its
  scheduler's per-run lines are kept at debug.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import uuid
from typing import TYPE_CHECKING, Any, Self

import structlog

from flags.base import evaluation_context
from flags.unleash import model_from_payload

if TYPE_CHECKING:
    from UnleashClient.cache import FileCache

log = structlog.get_logger(__name__)

SDK_LOGGER = "UnleashClient"
# What the SDK logs when it cannot reach Unleash (fetch, register, metrics) and, with
# nothing on disk, after every failed poll. Matched on the format string, which is
# stable across calls (the arguments carry the exception).
OUTAGE_MESSAGES = (
    "Unleash Client feature fetch failed",
    "Unleash Client registration failed",
    "Unleash Client metrics submission",
    "Unleash client does not have cached features",
)
# Of those, the ones that say Unleash did not answer a fetch or registration (a refused
# metrics post can be a token without that right: demoted, but no outage).
REACHABILITY_MESSAGES = OUTAGE_MESSAGES[:2]
_serial = itertools.count(1)


class Reachability:
    """Whether Unleash answered this client's last request; logs only the transitions."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self.reachable: bool | None = None  # None: no request finished yet
        self.outages = 0  # how many times Unleash became unreachable
        self._lock = threading.Lock()

    def failed(self, error: str) -> None:
        with self._lock:
            if self.reachable is False:
                return
            self.reachable = False
            self.outages += 1
        log.warning(
            "unleash_unreachable",
            url=self.api_url,
            error=error,
            hint="routing keeps the last flags it fetched (none yet: the baseline) and "
            "the SDK keeps polling; check that Unleash is up, its URL, and (on HTTP "
            "401/403) the client token",
        )

    def answered(self) -> None:
        with self._lock:
            was = self.reachable
            self.reachable = True
        if was is False:
            log.info("unleash_reachable_again", url=self.api_url)


class _SdkLogFilter(logging.Filter):
    """On the SDK's logger: this client's outage lines become one state change + debug."""

    def __init__(self, thread_prefix: str, reachability: Reachability) -> None:
        super().__init__()
        self._thread_prefix = thread_prefix
        self._reachability = reachability

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.threadName or "").startswith(self._thread_prefix):
            return True  # another client's thread, or the caller's own: not ours to judge
        outage = record.levelno >= logging.WARNING and str(record.msg).startswith(OUTAGE_MESSAGES)
        if outage and str(record.msg).startswith(REACHABILITY_MESSAGES):
            exc = record.exc_info[1] if record.exc_info else None
            self._reachability.failed(type(exc).__name__ if exc else record.getMessage()[:200])
        if outage or record.levelno < logging.WARNING:
            # Per-poll chatter ("Getting feature flag.") and outage tracebacks: debug only.
            log.debug("unleash_sdk_log", message=record.getMessage(), exc_info=record.exc_info)
            return False
        return True


class _SchedulerChatter(logging.Filter):
    """On our scheduler's loggers: per-run lines ("Running job", "skipped: maximum number
    of running instances", every second while a poll hangs) at debug; errors stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        log.debug("unleash_scheduler_log", message=record.getMessage())
        return False


SCHEDULER_LOGGER = "flags.unleash_sdk.scheduler"
EXECUTOR = "shadowcanary-unleash"
_scheduler_chatter = _SchedulerChatter()
for _name in (SCHEDULER_LOGGER, f"apscheduler.executors.{EXECUTOR}"):
    logging.getLogger(_name).addFilter(_scheduler_chatter)


# Statuses that mean Unleash answered: features (200, 304 not modified), register and
# metrics (200/202). A 401 or 5xx is no recovery: the SDK logs it as a failure.
ANSWERED_STATUSES = frozenset({200, 202, 304})


def _response_hook(reachability: Reachability) -> Any:
    """A requests response hook: a request of this client got an answer from Unleash.

    Passed through the SDK's ``custom_options`` (extra arguments of every request it
    makes). A 304 leaves no other trace: no log line, no cache write, no event.
    """

    def on_response(response: Any, *_args: Any, **_kwargs: Any) -> None:
        if response.status_code in ANSWERED_STATUSES:
            reachability.answered()

    return on_response


def _disk_cache(name: str, directory: str | None) -> FileCache:
    """The SDK's FileCache, bootstrapped from the copy an earlier run left on disk."""
    from UnleashClient.cache import FileCache
    from UnleashClient.constants import FEATURES_URL

    cache = FileCache(name, directory=directory)
    on_disk = cache.get(FEATURES_URL)
    if on_disk:
        try:
            # Marks the cache bootstrapped: the client's constructor hands it to the
            # engine synchronously, before any request to Unleash.
            cache.bootstrap_from_dict(json.loads(on_disk))
        except ValueError:
            log.warning("unleash_disk_cache_unreadable", hint="ignored; the next fetch replaces it")
    return cache


class UnleashClientEvaluator:
    """FlagEvaluator on UnleashClient: local evaluation, polling Unleash in the background.

    Fails open, as a request path must: ``start()`` never waits on Unleash; until the
    first fetch (or with Unleash unreachable) the SDK evaluates the last state it has
    (the disk copy from an earlier run, or none: everyone gets the baseline) and no
    call raises. Use it as a context manager, or call ``start()`` and ``close()``.
    """

    def __init__(
        self,
        api_url: str,
        backend_token: str,
        *,
        app_name: str = "shadowcanary",
        environment: str = "development",
        refresh_interval_s: int = 15,
        request_timeout_s: int = 5,
        cache_directory: str | None = None,
        send_metrics: bool = True,
    ) -> None:
        # Imported here: the SDK pulls in its scheduler, which the controller never needs.
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler
        from UnleashClient.clients.unleash_client import UnleashClient
        from UnleashClient.utils import InstanceAllowType

        url = api_url.rstrip("/")
        self.api_url = url if url.endswith("/api") else f"{url}/api"
        self.request_timeout_s = request_timeout_s
        self.reachability = Reachability(self.api_url)
        thread_prefix = f"unleash-sdk-{next(_serial)}-"
        self._executor = EXECUTOR
        # The SDK's jobs (the first register + fetch, then polls and metrics) run here.
        self._scheduler = BackgroundScheduler(
            logger=logging.getLogger(SCHEDULER_LOGGER),
            executors={
                self._executor: ThreadPoolExecutor(
                    max_workers=2, pool_kwargs={"thread_name_prefix": thread_prefix}
                )
            },
            # A poll hung on a dead link makes the next ones late: run one, not a burst.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._log_filter = _SdkLogFilter(thread_prefix, self.reachability)
        logging.getLogger(SDK_LOGGER).addFilter(self._log_filter)
        self._client = UnleashClient(
            url=self.api_url,
            app_name=app_name,
            environment=environment,
            instance_id=f"{app_name}-{uuid.uuid4().hex[:12]}",
            refresh_interval=refresh_interval_s,
            request_timeout=request_timeout_s,
            request_retries=0,  # the next poll is the retry
            custom_headers={"Authorization": backend_token},
            cache=_disk_cache(app_name, cache_directory),
            custom_options={"hooks": {"response": _response_hook(self.reachability)}},
            scheduler=self._scheduler,
            scheduler_executor=self._executor,
            disable_metrics=not send_metrics,
            multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
            # The SDK logs each evaluation of a flag it does not know at this level;
            # before a rollout creates its flag that is every request.
            verbose_log_level=logging.DEBUG,
        )

    def __repr__(self) -> str:
        return f"UnleashClientEvaluator(api_url={self.api_url!r})"

    def start(self) -> Self:
        """Start polling in the background and return at once (never waits on Unleash)."""
        self._scheduler.start()  # the SDK's own start() sees it running and leaves it be
        self._scheduler.add_job(
            self._initialize, executor=self._executor, name="unleash-initialize"
        )
        return self

    def _initialize(self) -> None:
        try:
            self._client.initialize_client()
        except Exception as exc:  # noqa: BLE001 - the request path never fails on Unleash
            # Only a malformed URL raises here (the SDK swallows network errors).
            log.warning("unleash_client_start_failed", url=self.api_url, error=type(exc).__name__)

    def close(self) -> None:
        """Stop polling; waits at most about one request timeout for a hung request."""
        # destroy() waits for a running register/fetch, which a hung Unleash holds for
        # its timeout: bounded here so a shutdown is not held hostage by Unleash.
        closer = threading.Thread(target=self._client.destroy, name="unleash-close", daemon=True)
        closer.start()
        closer.join(timeout=self.request_timeout_s + 1.0)
        if not closer.is_alive():  # else its last failure must stay quiet too
            logging.getLogger(SDK_LOGGER).removeFilter(self._log_filter)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def candidate_for(self, flag: str, stickiness_value: str | None) -> str | None:
        if not stickiness_value:
            return None
        try:
            variant: dict[str, Any] = self._client.get_variant(
                flag, evaluation_context(stickiness_value)
            )
        except Exception as exc:  # noqa: BLE001 - fail open to the baseline
            log.warning("unleash_evaluation_failed", flag=flag, error=type(exc).__name__)
            return None
        if not variant.get("feature_enabled"):
            return None
        return model_from_payload(variant.get("payload"))


__all__ = ["OUTAGE_MESSAGES", "Reachability", "UnleashClientEvaluator"]
