"""Alembic environment for shadowcanary.

The database URL comes from, in order: the ``database_url`` attribute set by
``shadowcanary.store.db.migrate()``, ``alembic -x url=...``, ``sqlalchemy.url`` in the
ini file, then ``SHADOWCANARY_DATABASE_URL`` through the shadowcanary Settings.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from shadowcanary.errors import ConfigError
from shadowcanary.settings import load_settings
from shadowcanary.store.db import normalise_database_url
from shadowcanary.store.models import Base

# Any fixed 64-bit number: all shadowcanary processes take it to migrate one at a time.
MIGRATION_LOCK_KEY = 0x5C_A1A2_0001

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _database_url() -> str:
    url = (
        config.attributes.get("database_url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or load_settings().database_url
    )
    if not url:
        raise ConfigError(
            "no database URL for migrations",
            hint="set SHADOWCANARY_DATABASE_URL, or run "
            "`alembic -x url=postgresql://... upgrade head` from the repository root",
        )
    return normalise_database_url(str(url)).render_as_string(hide_password=False)


def run_migrations_offline() -> None:
    """Print the SQL (``alembic upgrade head --sql``) instead of running it."""
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # NullPool: no connection outlives the migration (a template database must be idle).
    engine = create_engine(_database_url(), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection, target_metadata=target_metadata, compare_type=True
            )
            with context.begin_transaction():
                # Several workers may start together; the second waits, then finds head.
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
