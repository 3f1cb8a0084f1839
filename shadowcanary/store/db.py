"""Connecting to Postgres (psycopg 3) and bringing its schema to the Alembic head."""

from __future__ import annotations

import json
import math
import re
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from shadowcanary.errors import ConfigError, ServiceUnavailable

if TYPE_CHECKING:  # Alembic is imported by the functions that migrate (CLI start-up time)
    from alembic.config import Config

log = structlog.get_logger(__name__)

DRIVER = "postgresql+psycopg"
# migrations/ sits at the repository root, next to the shadowcanary package.
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
_POSTGRES_BACKENDS = {"postgresql", "postgres"}
# Alembic's `context`/`op` are process-wide proxies, so two migrations in one process
# must not overlap. Across processes, env.py serialises them with an advisory lock.
_ALEMBIC_IN_PROCESS = threading.Lock()


def normalise_database_url(database_url: str) -> URL:
    """Parse a Postgres URL and pin the psycopg 3 driver.

    Accepts ``postgresql://``, ``postgres://``, ``postgresql+<any driver>://`` and
    unix-socket URIs such as pgserver's ``postgresql://postgres:@/postgres?host=/tmp/dir``.

    Raises:
        ConfigError: not a URL, or not a PostgreSQL one.
    """
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise ConfigError(
            "SHADOWCANARY_DATABASE_URL is not a database URL",
            hint="use postgresql://user:password@host:5432/dbname",
        ) from exc
    backend = url.drivername.split("+", 1)[0]
    if backend not in _POSTGRES_BACKENDS:
        raise ConfigError(
            f"database URL uses {backend!r}; shadowcanary stores its data in PostgreSQL only",
            hint="set SHADOWCANARY_DATABASE_URL=postgresql://user:password@host:5432/dbname, "
            "or leave it unset to use the embedded Postgres",
        )
    return url.set(drivername=DRIVER)


# A JSON-escaped NUL (\u0000) not itself preceded by an escaping backslash.
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def json_for_postgres(value: Any) -> str:
    """JSON text Postgres accepts: jsonb rejects NUL characters, so they become U+FFFD.

    Model output can contain NUL; without this one such event would fail its whole batch
    forever (a poison batch). For the same reason NaN/Infinity (which Python's JSON
    decoder lets into a dead letter's raw payload) become null and lone surrogates
    U+FFFD: jsonb refuses them too.
    """
    try:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):  # ints past 64 bits, lone surrogates, depth
        text = json.dumps(_storable(value))
    return _ESCAPED_NUL.sub(r"\1\\ufffd", text)


def _storable(value: Any) -> Any:
    """``value`` with what jsonb refuses replaced (the rare slow path of json_for_postgres)."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {_storable(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def make_engine(database_url: str, *, pool_size: int = 10) -> Engine:
    """An engine on psycopg 3 with a connection pool sized for one worker process."""
    url = normalise_database_url(database_url)
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # A restarted or failed-over Postgres leaves dead connections in the pool.
        pool_pre_ping=True,
        pool_recycle=1800,
        json_serializer=json_for_postgres,
        connect_args={"application_name": "shadowcanary", "connect_timeout": 10},
    )
    # An engine dropped without dispose() (a CLI command's, run in-process) would leave
    # its pooled connections to the garbage collector: close them when it goes.
    weakref.finalize(engine, engine.pool.dispose)
    return engine


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic Config built in code (no alembic.ini needed), optionally bound to a URL."""
    from alembic.config import Config

    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise ConfigError(
            f"Alembic migrations not found at {MIGRATIONS_DIR}",
            hint="run shadowcanary from a source checkout (or an editable install) "
            "that contains migrations/",
        )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url is not None:
        # Passed as an attribute, not a main option: configparser would choke on '%'.
        url = normalise_database_url(database_url)
        config.attributes["database_url"] = url.render_as_string(hide_password=False)
    return config


def migrate(database_url: str) -> None:
    """``alembic upgrade head`` on ``database_url``; safe to run from many processes at once.

    Raises:
        ServiceUnavailable: Postgres could not be reached.
    """
    if _already_at_head(database_url):
        return  # the usual case, answered without importing Alembic (CLI start-up time)
    from alembic import command

    config = alembic_config(database_url)
    try:
        with _ALEMBIC_IN_PROCESS:
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise ServiceUnavailable(
            f"could not migrate the database: {exc.__class__.__name__}: {exc}",
            hint="check that Postgres is running and SHADOWCANARY_DATABASE_URL is right",
        ) from exc
    log.info("database migrated", head=head_revision())


_REVISION_LINE = re.compile(r'^revision(?:: str)? = "([^"]+)"', re.MULTILINE)


def newest_revision_file() -> str | None:
    """The revision id declared in the newest file of migrations/versions/.

    Files are numbered (``0004_outcomes.py``); the id is read from the file's
    ``revision = "..."`` line, since ids may name their issue (``0004_outcomes``).
    tests/integration/test_migrations.py checks that this is Alembic's head, so the
    fast path below cannot skip a migration.
    """
    paths = sorted((MIGRATIONS_DIR / "versions").glob("[0-9]*_*.py"), key=lambda p: p.name)
    if not paths:
        return None
    # The id the file declares (e.g. "0005_judge"), else the number its name starts with.
    declared = _REVISION_LINE.search(paths[-1].read_text(encoding="utf-8"))
    return declared.group(1) if declared else paths[-1].name.split("_", 1)[0]


def _already_at_head(database_url: str) -> bool:
    """True when the database's alembic_version is the newest revision: nothing to migrate.

    Any doubt (no such table, another revision, an error) means False: Alembic then runs
    and reports what is wrong.
    """
    newest = newest_revision_file()
    if newest is None:
        return False
    engine = create_engine(normalise_database_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            return list(versions) == [newest]
    except (SQLAlchemyError, ConfigError):
        return False
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest revision in migrations/."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def database_ready(engine: Engine) -> bool:
    """True when Postgres answers and its schema is at the migrations' head."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except SQLAlchemyError as exc:
        log.warning("database not ready", error=exc.__class__.__name__)
        return False
    expected = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    if current != expected:
        log.warning("database schema not at head", current=sorted(current), head=sorted(expected))
        return False
    return True
