"""One active controller per rollout: a Postgres session advisory lock per rollout name.

The lock lives on a dedicated connection held for as long as the controller acts on
the rollout. Postgres releases a session lock when its connection ends, so a
controller that dies (crash, SIGKILL, lost machine once TCP gives up) frees the
rollout for a standby at once, with no lease to expire and no clock to trust. A
standby calls ``try_acquire`` every tick and takes over on its first success.

Because losing the connection also loses the lock, the holder checks the connection
before each tick (``still_held``): after a Postgres restart another controller may
already hold the lock, so the old holder must stop acting until it wins it again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum

import structlog
from psycopg import errors as pg_errors
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from shadowcanary.errors import ServiceUnavailable, TransientError
from shadowcanary.store.db import normalise_database_url

log = structlog.get_logger(__name__)

_CONTROLLER = b"shadowcanary.controller.rollout/"
_OPERATION = b"shadowcanary.operation.rollout/"


def lock_key(rollout: str, namespace: bytes = _CONTROLLER) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock``, the same in every process."""
    digest = hashlib.blake2b(namespace + rollout.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class LockState(StrEnum):
    HELD = "held"  # this process is the active controller of the rollout
    TAKEN = "taken"  # another controller holds it: stand by
    UNREACHABLE = "unreachable"  # Postgres did not answer: nobody here may act


def lock_engine(database_url: str) -> Engine:
    """An engine for lock connections: no pool, so closing really ends the session.

    TCP keepalives let Postgres notice a vanished controller host (and free its locks)
    within about a minute instead of the kernel's two hours.
    """
    return create_engine(
        normalise_database_url(database_url),
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={
            "application_name": "shadowcanary-controller-lock",
            "connect_timeout": 5,
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        },
    )


class RolloutLock:
    """The advisory lock of one rollout, on its own connection."""

    def __init__(
        self,
        engine: Engine,
        rollout: str,
        on_held_change: Callable[[bool], None] = lambda _held: None,
    ) -> None:
        self._engine = engine
        self.rollout = rollout
        # The controller's metrics hook: the store does not know about Prometheus.
        self._on_held_change = on_held_change
        self.key = lock_key(rollout)
        self._conn: Connection | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    def try_acquire(self) -> LockState:
        """Keep or take the lock; never blocks. Only HELD allows acting on the rollout."""
        if self._conn is not None and self.still_held():
            return LockState.HELD
        try:
            conn = self._engine.connect()
        except DBAPIError as exc:
            log.warning("lock connection failed", rollout=self.rollout, error=type(exc).__name__)
            return LockState.UNREACHABLE
        try:
            got = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar()
            )
        except DBAPIError as exc:
            log.warning("lock attempt failed", rollout=self.rollout, error=type(exc).__name__)
            conn.invalidate()
            return LockState.UNREACHABLE
        if not got:
            conn.close()
            return LockState.TAKEN
        self._conn = conn
        self._on_held_change(True)
        log.info("controller lock acquired", rollout=self.rollout, key=self.key)
        return LockState.HELD

    def still_held(self) -> bool:
        """True while our session is alive and holds the lock; forgets a lost lock."""
        if self._conn is None:
            return False
        try:
            held = bool(
                self._conn.execute(
                    text(
                        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                        "AND pid = pg_backend_pid() AND granted AND objsubid = 1 "
                        "AND ((classid::bigint << 32) | objid::bigint) = :key)"
                    ),
                    {"key": self.key},
                ).scalar()
            )
        except DBAPIError as exc:
            log.warning("controller lock lost", rollout=self.rollout, error=type(exc).__name__)
            held = False
        if not held:
            self._forget()
        return held

    def release(self) -> None:
        """Give the lock back (graceful shutdown) so a standby takes over at once."""
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        except DBAPIError as exc:
            log.warning("lock release failed", rollout=self.rollout, error=type(exc).__name__)
        self._forget()
        log.info("controller lock released", rollout=self.rollout)

    def _forget(self) -> None:
        conn, self._conn = self._conn, None
        self._on_held_change(False)
        if conn is not None:
            try:
                conn.close()
            except DBAPIError:
                conn.invalidate()


@contextmanager
def operation_lock(engine: Engine, rollout: str, *, timeout_s: float = 15.0) -> Iterator[None]:
    """Serialise changes to one rollout: every tick and every operator command takes it.

    Without it an operator's rollback could land between a tick's read and its flag
    write, and the tick would set the flag back up. ``engine`` is a ``lock_engine``.

    Raises:
        ServiceUnavailable: Postgres cannot be reached.
        TransientError: someone else held the lock for ``timeout_s``.
    """
    key = lock_key(rollout, _OPERATION)
    try:
        conn = engine.connect()
    except DBAPIError as exc:
        raise ServiceUnavailable(
            f"Postgres is unreachable ({type(exc.orig).__name__})",
            hint="check that Postgres is up and SHADOWCANARY_DATABASE_URL points at it",
        ) from exc
    try:
        try:
            conn.execute(text(f"SET lock_timeout = {max(1, int(timeout_s * 1000))}"))
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        except DBAPIError as exc:
            if isinstance(exc.orig, pg_errors.LockNotAvailable):
                raise TransientError(
                    f"rollout {rollout!r} is being changed by another command or the "
                    f"controller (waited {timeout_s:g} s)",
                    hint="try again in a few seconds",
                ) from exc
            raise ServiceUnavailable(
                f"Postgres failed while locking rollout {rollout!r} ({type(exc.orig).__name__})",
                hint="check that Postgres is up",
            ) from exc
        yield
    finally:
        try:
            conn.close()  # ends the session, which releases the lock
        except DBAPIError:
            conn.invalidate()
