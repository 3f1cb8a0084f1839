"""Helpers shared by the data-path tests (not fixtures: plain functions)."""

from __future__ import annotations

from typing import Any

from celery import Celery
from sqlalchemy import text
from sqlalchemy.engine import Engine

from shadowcanary import constants


def send_ingest(redis_url: str, events: list[Any]) -> None:
    """Publish one ingest batch exactly as the tap does (by task name)."""
    app = Celery("test-producer", broker=redis_url, set_as_current=False)
    with app.connection_for_write() as conn:
        app.send_task(
            constants.TASK_INGEST, args=[events], queue=constants.QUEUE_INGEST, connection=conn
        )


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params))


def sim_calls(sim: Any, model: str, status: int | None = None) -> int:
    """Requests the simulator answered for ``model`` (all statuses, or one)."""
    counts = sim.stats()["requests"].get(model, {})
    if status is not None:
        return int(counts.get(str(status), 0))
    return int(sum(counts.values()))
