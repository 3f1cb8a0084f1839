"""Postgres store: SQLAlchemy models, idempotent batched writes, per-minute rollups.

Wiring::

    engine = make_engine(settings.database_url)
    migrate(settings.database_url)          # alembic upgrade head, safe from many processes
    store = Store(engine)
"""

from shadowcanary.store.db import database_ready, make_engine, migrate
from shadowcanary.store.inputs import AssessedCapture
from shadowcanary.store.repository import Store
from shadowcanary.store.sketch import QuantileSketch
from shadowcanary.store.totals import (
    ArmHeadline,
    Headline,
    LiveTotals,
    ShadowTotals,
    StoreCounts,
)

__all__ = [
    "ArmHeadline",
    "AssessedCapture",
    "Headline",
    "LiveTotals",
    "QuantileSketch",
    "ShadowTotals",
    "Store",
    "StoreCounts",
    "database_ready",
    "make_engine",
    "migrate",
]
