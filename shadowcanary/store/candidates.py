"""Which model a captured prompt is replayed against: the candidate of its rollout.

Several rollouts can run at once (gpt-5.5 for chat, a self-hosted model for search);
each event names its rollout, and the rollout's plan names the candidate. Events
outside any known rollout go to ``Settings.candidate_model``. Plans change rarely, so
the lookup is cached for a short while per worker process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

import structlog
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = structlog.get_logger(__name__)

_TTL_S = 30.0


class RolloutCandidates:
    """Maps rollout names to their plan's candidate model, with a per-process cache."""

    def __init__(
        self,
        engine: Engine,
        default_model: str,
        *,
        ttl_s: float = _TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._default = default_model
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, str | None]] = {}

    def models_for(self, rollouts: Iterable[str | None]) -> dict[str | None, str]:
        """The replay model for each rollout name (the default for None or unknown)."""
        names = {r for r in rollouts if r is not None}
        now = self._clock()
        with self._lock:
            stale = {n for n in names if n not in self._cache or self._cache[n][0] < now}
        if stale:
            self._refresh(stale, now)
        with self._lock:
            found = {n: self._cache[n][1] for n in names if n in self._cache}
        result: dict[str | None, str] = {None: self._default}
        for name in names:
            result[name] = found.get(name) or self._default
        return result

    def _refresh(self, names: set[str], now: float) -> None:
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    text("select name, plan->>'candidate' from rollouts where name = any(:names)"),
                    {"names": sorted(names)},
                ).all()
        except SQLAlchemyError as exc:
            # Keep what we knew; unknown names fall back to the default candidate.
            log.warning("replay.rollout_lookup_failed", error=type(exc).__name__)
            return
        known = {str(name): (str(model) if model else None) for name, model in rows}
        with self._lock:
            for name in names:
                self._cache[name] = (now + self._ttl_s, known.get(name))
