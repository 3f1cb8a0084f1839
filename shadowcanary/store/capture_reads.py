"""Reading captured calls back: the offline suite's cases from live traffic."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError

from shadowcanary.errors import ServiceUnavailable
from shadowcanary.events import Arm, CallStatus, CapturedCall
from shadowcanary.store.models import CaptureRow


def read_captures(
    engine: Engine,
    *,
    route: str,
    since: datetime,
    limit: int,
    rollout: str | None = None,
) -> list[CapturedCall]:
    """The route's newest successful baseline-arm captures started at or after ``since``.

    Raises:
        ServiceUnavailable: Postgres cannot be read.
    """
    table = CaptureRow.__table__
    stmt = (
        select(table.c.event)
        .where(
            table.c.route == route,
            table.c.started_at >= since,
            table.c.arm == Arm.BASELINE.value,
            table.c.status == CallStatus.OK.value,
        )
        .order_by(table.c.started_at.desc(), table.c.event_id)
        .limit(limit)
    )
    if rollout is not None:
        stmt = stmt.where(table.c.rollout == rollout)
    try:
        with engine.connect() as conn:
            documents = conn.execute(stmt).scalars().all()
    except OperationalError as exc:
        raise ServiceUnavailable(
            f"could not read captures from Postgres: {type(exc.orig).__name__}",
            hint="check that Postgres is up and SHADOWCANARY_DATABASE_URL points at it",
        ) from exc
    # Oldest first: a report reads in the order traffic arrived.
    return [CapturedCall.model_validate(doc) for doc in reversed(documents)]
