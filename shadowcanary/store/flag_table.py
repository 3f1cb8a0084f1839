"""The embedded flag table (``flags``): one row per flag, its Unleash feature JSON.

The flag semantics (which strategy, what a percentage means) live in
``flags.embedded``; this module only reads and writes rows. Changes take a row lock
(``SELECT ... FOR UPDATE``) so concurrent writers (controller, CLI) serialize and never
lose each other's change; ``revision`` goes up on every change.

Errors: Postgres unreachable -> ServiceUnavailable; the database role lacks rights on
``flags`` -> FlagRejected; the table is missing -> ConfigError (run the migrations).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg.errors
from sqlalchemy import Engine, Table, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from shadowcanary.errors import ConfigError, FlagRejected, ServiceUnavailable
from shadowcanary.store.models import FlagRow

_FLAGS: Table = FlagRow.__table__  # type: ignore[assignment]  # declared as a Table

Feature = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredFeatures:
    """Every flag's feature JSON at one moment, and a fingerprint that changes with it."""

    fingerprint: tuple[tuple[str, int], ...]  # (name, revision) of each row
    features: list[Feature]

    def client_api_document(self) -> dict[str, Any]:
        """What Unleash's ``GET /api/client/features`` would return for these flags."""
        return {"version": 2, "features": self.features}


class FlagTable:
    """Rows of table ``flags`` (migration 0002)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert_if_absent(self, name: str, project: str, environment: str, feature: Feature) -> bool:
        """Add the flag unless a row of that name exists (never reset); True if added."""
        statement = (
            insert(_FLAGS)
            .values(
                name=name,
                project=project,
                environment=environment,
                feature=feature,
                revision=1,
                created_at=func.now(),
                updated_at=func.now(),
            )
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(_FLAGS.c.name)
        )
        with database_errors(self.engine, f"create flag {name!r}"), self.engine.begin() as conn:
            return conn.execute(statement).first() is not None

    def read(self, name: str) -> tuple[str, Feature] | None:
        """(environment, feature JSON) of the flag, or None when there is no such row."""
        query = select(_FLAGS.c.environment, _FLAGS.c.feature).where(_FLAGS.c.name == name)
        with database_errors(self.engine, f"read flag {name!r}"), self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else (row.environment, row.feature)

    def change(
        self, name: str, what: str, edit: Callable[[Feature], Feature]
    ) -> tuple[str, Feature] | None:
        """Rewrite the flag's feature JSON with ``edit`` under a row lock; None if absent."""
        locked = select(_FLAGS.c.environment, _FLAGS.c.feature).where(_FLAGS.c.name == name)
        with database_errors(self.engine, what), self.engine.begin() as conn:
            row = conn.execute(locked.with_for_update()).first()
            if row is None:
                return None
            feature = edit(row.feature)
            conn.execute(
                update(_FLAGS)
                .where(_FLAGS.c.name == name)
                .values(feature=feature, revision=_FLAGS.c.revision + 1, updated_at=func.now())
            )
        return row.environment, feature


def read_features(engine: Engine, environment: str | None = None) -> StoredFeatures:
    """The feature JSON of every stored flag (of one environment, if given), by name."""
    query = select(_FLAGS.c.name, _FLAGS.c.revision, _FLAGS.c.feature).order_by(_FLAGS.c.name)
    if environment is not None:
        query = query.where(_FLAGS.c.environment == environment)
    with database_errors(engine, "read the flags"), engine.connect() as conn:
        rows = conn.execute(query).all()
    return StoredFeatures(
        fingerprint=tuple((row.name, row.revision) for row in rows),
        features=[row.feature for row in rows],
    )


@contextmanager
def database_errors(engine: Engine, what: str) -> Iterator[None]:
    """Translate database failures into the flag backend's errors (never the password)."""

    def describe(exc: DBAPIError) -> str:
        text = f"{type(exc.orig).__name__}: {str(exc.orig).strip()}"
        password = engine.url.password
        return text.replace(str(password), "***") if password else text

    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise ServiceUnavailable(
            f"Postgres unreachable while trying to {what}: {describe(exc)}",
            hint="check that Postgres is up and the database URL points at it; the "
            "controller holds until it answers",
        ) from None
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise ServiceUnavailable(
                f"Postgres connection lost while trying to {what}: {describe(exc)}",
                hint="check that Postgres is up; the controller holds until it answers",
            ) from None
        if isinstance(exc.orig, psycopg.errors.InsufficientPrivilege):
            raise FlagRejected(
                f"Postgres refused to {what}: {describe(exc)}",
                hint="the database role needs SELECT, INSERT and UPDATE on table flags",
            ) from None
        if isinstance(exc.orig, psycopg.errors.UndefinedTable):
            raise ConfigError(
                f"cannot {what}: the flags table does not exist",
                hint="run the database migrations: shadowcanary migrate",
            ) from None
        raise
