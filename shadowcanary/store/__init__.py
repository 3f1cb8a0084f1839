"""Postgres store: SQLAlchemy models, idempotent batched writes, per-minute rollups.

Wiring::

    engine = make_engine(settings.database_url)
    migrate(settings.database_url)          # alembic upgrade head, safe from many processes
    store = Store(engine)

Every SQL statement lives in a module of this package, one per concern (see
docs/architecture.md). Import from those modules: this package re-exports nothing, so
a command that reads one table does not load every query module.
"""
