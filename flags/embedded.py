"""The embedded backend: the flag as Unleash feature JSON in Postgres (table ``flags``).

For the local stack and for teams without an Unleash server. Each row holds one
entry of the Unleash client API's ``features`` list, exactly what Unleash would serve
to UnleashClient for that flag (``flags.unleash.rollout_strategy``), so the evaluator
(``flags.router.EmbeddedEvaluator``) can hand it to yggdrasil-engine, the engine
inside UnleashClient, and a user lands in the same arm with either backend.

Changes take a row lock (``SELECT ... FOR UPDATE``) and edit only the rollout
percentage and the enabled bit, so concurrent writers (controller, CLI) serialize and
never lose each other's change. ``revision`` goes up on every change.

Errors: Postgres unreachable -> ServiceUnavailable; the database role lacks rights on
``flags`` -> FlagRejected; the table is missing -> ConfigError (run the migrations).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg.errors
import structlog
from sqlalchemy import Connection, Engine, Table, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from flags.base import FlagSpec, FlagState
from flags.unleash import (
    check_percent,
    pick_rollout_strategy,
    rollout_strategy,
    state_from_strategy,
)
from shadowcanary.errors import ConfigError, FlagNotFound, FlagRejected, ServiceUnavailable
from shadowcanary.store.models import FlagRow

log = structlog.get_logger(__name__)

_FLAGS: Table = FlagRow.__table__  # type: ignore[assignment]  # declared as a Table


def feature_json(spec: FlagSpec, percent: int = 0, *, enabled: bool = True) -> dict[str, Any]:
    """The flag as one entry of Unleash's client API ``features`` list."""
    return {
        "name": spec.name,
        "type": "release",
        "enabled": enabled,
        "project": spec.project,
        "stale": False,
        "strategies": [rollout_strategy(spec, percent)],
        "variants": [],
        "description": f"shadowcanary rollout: {spec.baseline_model} -> {spec.candidate_model}",
        "impressionData": False,
    }


@dataclass(frozen=True, slots=True)
class StoredFeatures:
    """Every flag's feature JSON at one moment, and a fingerprint that changes with it."""

    fingerprint: tuple[tuple[str, int], ...]  # (name, revision) of each row
    features: list[dict[str, Any]]

    def client_api_document(self) -> dict[str, Any]:
        """What Unleash's ``GET /api/client/features`` would return for these flags."""
        return {"version": 2, "features": self.features}


class EmbeddedFlags:
    """FlagBackend keeping Unleash feature JSON in Postgres (migration 0002)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __repr__(self) -> str:
        return f"EmbeddedFlags(database={self._engine.url.render_as_string(hide_password=True)})"

    def ensure_flag(self, spec: FlagSpec) -> FlagState:
        # Born on at 0 % like the Unleash backend's flags: nobody gets the candidate
        # until set_rollout, and the first step then needs no separate "turn on".
        statement = (
            insert(_FLAGS)
            .values(
                name=spec.name,
                project=spec.project,
                environment=spec.environment,
                feature=feature_json(spec),
                revision=1,
                created_at=func.now(),
                updated_at=func.now(),
            )
            .on_conflict_do_nothing(index_elements=["name"])  # never reset an existing flag
            .returning(_FLAGS.c.name)
        )
        with self._errors(f"create flag {spec.name!r}"), self._engine.begin() as conn:
            created = conn.execute(statement).first() is not None
        if created:
            log.info("flag_created", backend="embedded", flag=spec.name)
        return self.read(spec.name)

    def read(self, flag: str) -> FlagState:
        query = select(_FLAGS.c.environment, _FLAGS.c.feature).where(_FLAGS.c.name == flag)
        with self._errors(f"read flag {flag!r}"), self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise _not_found(flag)
        return _state(flag, row.environment, row.feature)

    def set_rollout(self, flag: str, percent: int) -> FlagState:
        check_percent(percent)
        state = self._change(flag, f"set flag {flag!r} to {percent}%", percent, enabled=True)
        log.info("flag_rollout_set", backend="embedded", flag=flag, percent=percent)
        return state

    def disable(self, flag: str) -> FlagState:
        state = self._change(flag, f"disable flag {flag!r}", 0, enabled=False)
        log.info("flag_disabled", backend="embedded", flag=flag)
        return state

    def features(self, environment: str | None = None) -> StoredFeatures:
        """Every flag's feature JSON (of one environment, if given), for evaluators."""
        return read_features(self._engine, environment)

    def _change(self, flag: str, what: str, percent: int, *, enabled: bool) -> FlagState:
        locked = select(_FLAGS.c.environment, _FLAGS.c.feature).where(_FLAGS.c.name == flag)
        with self._errors(what), self._engine.begin() as conn:
            row = conn.execute(locked.with_for_update()).first()
            if row is None:
                raise _not_found(flag)
            feature = copy.deepcopy(row.feature)
            strategy = pick_rollout_strategy(flag, feature.get("strategies") or [])
            if strategy is None:
                raise _no_strategy(flag)
            strategy.setdefault("parameters", {})["rollout"] = str(percent)
            feature["enabled"] = enabled
            _update_row(conn, flag, feature)
        return _state(flag, row.environment, feature)

    def _errors(self, what: str) -> AbstractContextManager[None]:
        return database_errors(self._engine, what)


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


def _update_row(conn: Connection, flag: str, feature: dict[str, Any]) -> None:
    conn.execute(
        update(_FLAGS)
        .where(_FLAGS.c.name == flag)
        .values(feature=feature, revision=_FLAGS.c.revision + 1, updated_at=func.now())
    )


def _state(flag: str, environment: str, feature: dict[str, Any]) -> FlagState:
    strategy = pick_rollout_strategy(flag, feature.get("strategies") or [])
    if strategy is None:
        raise _no_strategy(flag)
    return state_from_strategy(flag, environment, bool(feature.get("enabled")), strategy)


def _not_found(flag: str) -> FlagNotFound:
    return FlagNotFound(
        f"flag {flag!r} does not exist in the embedded flag store",
        hint="shadowcanary creates the flag when a rollout starts; check the flag name",
    )


def _no_strategy(flag: str) -> FlagNotFound:
    return FlagNotFound(
        f"flag {flag!r} has no flexibleRollout strategy in the embedded flag store",
        hint="delete the row from table flags and start the rollout again",
    )
