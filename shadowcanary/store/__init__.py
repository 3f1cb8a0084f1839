"""Postgres store: SQLAlchemy models, idempotent batched writes, per-minute rollups.

Wiring::

    engine = make_engine(settings.database_url)
    migrate(settings.database_url)          # alembic upgrade head, safe from many processes
    store = Store(engine)
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Imported on first use (PEP 562): a command that reads one table (`rollout status`)
# must not pay for every query module, and the judge's SciPy, at start-up.
_EXPORTS = {
    "database_ready": "shadowcanary.store.db",
    "make_engine": "shadowcanary.store.db",
    "migrate": "shadowcanary.store.db",
    "AssessedCapture": "shadowcanary.store.inputs",
    "Store": "shadowcanary.store.repository",
    "QuantileSketch": "shadowcanary.store.sketch",
    "ArmHeadline": "shadowcanary.store.totals",
    "Headline": "shadowcanary.store.totals",
    "LiveTotals": "shadowcanary.store.totals",
    "ShadowTotals": "shadowcanary.store.totals",
    "StoreCounts": "shadowcanary.store.totals",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value  # looked up once
    return value


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
