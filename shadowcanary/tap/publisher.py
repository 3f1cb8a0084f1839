"""Publishes batches of serialised events to the ingest queue as single Celery messages.

The tap sends by task name with a private, minimal ``Celery`` instance (broker only,
short socket timeouts, no connection or publish retries), so a dead or frozen Redis
costs one attempt of about ``timeout_s`` on the tap's own thread and never the caller.
The next batch simply tries again; kombu reconnects on use.

Events arrive already serialised by orjson, many per buffer (pieces of
comma-separated event objects: their byte size had to be checked anyway); the pieces
are spliced into the message's event list as ``orjson.Fragment`` by an encoder
registered under its own name, so nothing is encoded twice. The content type stays
``application/json``: workers decode these messages like any other.

The same encoder also compresses to the zlib format at level 1, and the message
carries kombu's standard ``compression: application/x-gzip`` header, so workers
decompress it as usual (``zlib.decompress`` reads any level and any writer).
kombu's own ``compression="zlib"`` would use level 6 and cannot be told otherwise
without changing it for the whole process. The writer is ISA-L's (``isal``) when
installed: the same zlib stream at ~10x the speed of zlib's own level 1 on prompt
batches (0.3 vs 2.7 us per event, same size), which matters because compression
ran on the tap's thread at a tenth of its time per event.

After the message is sent, the batch is also written to the ingest journal under the
id the message carries (``journal_id``), until a worker has stored it: the copy a worker
killed just after taking the message cannot lose (shadowcanary/ingest/journal.py). That
write costs one more compression of the batch and one Redis round trip per batch; when
it fails the batch is still sent, only without that protection.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
import redis
import structlog
from celery import Celery
from kombu import compression as kombu_compression
from kombu import serialization

from shadowcanary import constants
from shadowcanary.errors import ConfigError, ServiceUnavailable
from shadowcanary.urls import broker_url_for, redis_py_url, without_password

log = structlog.get_logger(__name__)

SERIALIZER = "shadowcanary-orjson-zlib1"
_CONTENT_TYPE = "application/json"
# kombu's content type for zlib bodies: what its decoders look up in the header.
_ZLIB_CONTENT_TYPE = kombu_compression.get_encoder("zlib")[1]  # type: ignore[no-untyped-call]
_ZLIB_LEVEL = 1


try:  # ISA-L writes the same zlib format, much faster; zlib itself when it is absent.
    from isal.isal_zlib import compress
except ImportError:  # pragma: no cover - isal is a dependency; stay correct without it
    from zlib import compress


def _encode(obj: Any) -> bytes:
    """The JSON of ``obj``, zlib-compressed (the header says so, see ``publish``)."""
    return compress(orjson.dumps(obj), _ZLIB_LEVEL)


def _register_serializer() -> None:
    """Make SERIALIZER available to kombu without changing how JSON is decoded."""
    registry = serialization.registry
    previous = registry.type_to_name.get(_CONTENT_TYPE)
    # Encoder only (decoder=None): decoding application/json stays kombu's own json.
    serialization.register(  # type: ignore[no-untyped-call]
        SERIALIZER, _encode, None, content_type=_CONTENT_TYPE
    )
    if previous is not None:
        # register() also makes our name the default *reply* serializer for the content
        # type; restore it so RPC replies elsewhere in the process are unaffected.
        registry.type_to_name[_CONTENT_TYPE] = previous


# The Redis URL spellings the tap takes; anything else is refused when it is built.
_REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+socket", "socket")
_CAUSE_CHARS = 300


class BatchPublisher:
    """Sends one Celery ingest message per batch; raises ``ServiceUnavailable`` on failure."""

    def __init__(self, redis_url: str, *, timeout_s: float) -> None:
        """Raises ``ConfigError`` for a URL that is not a Redis URL (nothing could be sent)."""
        scheme = redis_url.partition("://")[0]
        if "://" not in redis_url or scheme not in _REDIS_SCHEMES:
            raise ConfigError(
                f"the tap's Redis URL {without_password(redis_url)!r} is not a Redis URL",
                hint="use redis://host:port/db, rediss://..., unix:///path/redis.sock "
                "or redis+socket:///path/redis.sock (SHADOWCANARY_REDIS_URL)",
            )
        # kombu has no unix:// transport (the embedded default's redis-py spelling):
        # every process that builds a tap gets the kombu spelling from here.
        self._broker_url = broker_url_for(redis_url)
        self._redis_url = redis_py_url(redis_url)
        self._timeout_s = timeout_s
        self._app: Celery | None = None
        self._journal: redis.Redis | None = None

    def _celery(self) -> Celery:
        if self._app is None:
            _register_serializer()
            app = Celery(
                "shadowcanary-tap", broker=self._broker_url, set_as_current=False, fixups=[]
            )
            app.conf.update(
                broker_connection_timeout=self._timeout_s,
                broker_connection_retry=False,
                broker_connection_retry_on_startup=False,
                broker_connection_max_retries=0,
                broker_transport_options={
                    "socket_timeout": self._timeout_s,
                    "socket_connect_timeout": self._timeout_s,
                    "max_retries": 0,
                },
                task_publish_retry=False,
                task_serializer=SERIALIZER,
            )
            self._app = app
        return self._app

    def publish(self, pieces: Sequence[bytes], count: int) -> None:
        """Publish ``count`` already-serialised events as ONE message on the ingest queue.

        Each piece is one or more event JSON objects separated by commas (a JSON array
        without its brackets): the message's event list is the pieces joined by commas.
        """
        journal_id = uuid.uuid4().hex
        events = [orjson.Fragment(piece) for piece in pieces]
        self._send(constants.TASK_INGEST, events, {"journal_id": journal_id}, f"{count} events")
        self._write_journal(journal_id, events)

    def _write_journal(self, journal_id: str, events: list[orjson.Fragment]) -> None:
        """Journal a sent batch (after sending: a batch never sent is never swept)."""
        try:
            if self._journal is None:
                self._journal = redis.Redis.from_url(
                    self._redis_url,
                    socket_timeout=self._timeout_s,
                    socket_connect_timeout=self._timeout_s,
                )
            pipe = self._journal.pipeline(transaction=True)
            pipe.hset(constants.INGEST_JOURNAL_KEY, journal_id, _encode(events))
            pipe.zadd(constants.INGEST_JOURNAL_INDEX_KEY, {journal_id: time.time()})
            pipe.execute()
        except redis.RedisError as exc:  # sent all the same, only without the journal's copy
            log.info("tap_journal_write_failed", error=type(exc).__name__)

    def publish_outcomes(self, reports: Sequence[dict[str, Any]]) -> None:
        """Publish outcome reports (``OutcomeReport`` JSON) as ONE message on the ingest queue."""
        self._send(constants.TASK_OUTCOMES, list(reports), {}, f"{len(reports)} outcome reports")

    def _send(self, task: str, items: list[Any], kwargs: dict[str, Any], what: str) -> None:
        """One message carrying ``items`` as the task's only argument; raises when not sent."""
        try:
            self._celery().send_task(
                task,
                args=[items],
                kwargs=kwargs,
                queue=constants.QUEUE_INGEST,
                retry=False,
                serializer=SERIALIZER,
                # Prompts repeat (system prompts, JSON keys): zlib shrinks a batch ~5-30x, which
                # costs less CPU than base64 + JSON-wrapping + sending the raw bytes, and keeps
                # Redis small while workers are behind. SERIALIZER already compressed the body;
                # this header (kombu's own) makes workers decompress it transparently.
                compression=None,
                headers={"compression": _ZLIB_CONTENT_TYPE},
                # Celery would otherwise put a repr of every item (prompts!) in the headers.
                argsrepr=f"[<{what}>]",
                kwargsrepr="{}",
            )
        except Exception as exc:  # kombu and redis raise many types; all mean "not sent"
            # redis-py already dropped the broken socket; the next publish reconnects.
            raise ServiceUnavailable(
                f"could not publish {what} to Redis at "
                f"{without_password(self._broker_url)}: {_cause(exc)}",
                hint="check that Redis at the tap's broker URL (SHADOWCANARY_REDIS_URL) is "
                "running and reachable from this process; they are dropped meanwhile",
            ) from exc

    def close(self) -> None:
        """Release the broker connections."""
        if self._app is not None:
            self._app.close()
            self._app = None
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def _cause(exc: BaseException) -> str:
    """The error's class and text, shortened: a log line must say why, not only what.

    The message body is never in kombu's or redis-py's error texts (they name the
    connection), so this is safe to log; any URL in it loses its password.
    """
    text = without_password(str(exc).strip())
    if len(text) > _CAUSE_CHARS:
        text = text[:_CAUSE_CHARS] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def decode_ingest_message(raw: bytes) -> list[dict[str, Any]]:
    """The event dicts inside one ingest message as it sits in the Redis list.

    Celery workers do this themselves; this is for tests, benchmarks and debugging
    (``redis-cli lrange shadowcanary.ingest 0 0``).
    """
    envelope = orjson.loads(raw)
    body = base64.b64decode(envelope["body"])
    compression = envelope["headers"].get("compression")
    if compression:
        body = kombu_compression.decompress(body, compression)  # type: ignore[no-untyped-call]
    args, _kwargs, _embed = orjson.loads(body)
    events: list[dict[str, Any]] = args[0]
    return events
