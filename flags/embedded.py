"""The embedded backend: the flag as Unleash feature JSON in Postgres (table ``flags``).

For the local stack and for teams without an Unleash server. Each row holds one
entry of the Unleash client API's ``features`` list, exactly what Unleash would serve
to UnleashClient for that flag (``flags.unleash.rollout_strategy``), so the evaluator
(``flags.router.EmbeddedEvaluator``) can hand it to yggdrasil-engine, the engine
inside UnleashClient, and a user lands in the same arm with either backend.

Changes edit only the rollout percentage and the enabled bit, under the row lock of
``shadowcanary.store.flag_table`` (which also says how database errors surface).
"""

from __future__ import annotations

import copy
from typing import Any

import structlog
from sqlalchemy import Engine

from flags.base import FlagChange, FlagSpec, FlagState
from flags.unleash import (
    check_percent,
    pick_rollout_strategy,
    rollout_strategy,
    state_from_strategy,
)
from shadowcanary.errors import FlagNotFound
from shadowcanary.store.flag_table import Feature, FlagTable, StoredFeatures, read_features

log = structlog.get_logger(__name__)


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


class EmbeddedFlags:
    """FlagBackend keeping Unleash feature JSON in Postgres (migration 0002)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._table = FlagTable(engine)

    def __repr__(self) -> str:
        return f"EmbeddedFlags(database={self._engine.url.render_as_string(hide_password=True)})"

    def ensure_flag(self, spec: FlagSpec) -> FlagState:
        # Born on at 0 % like the Unleash backend's flags: nobody gets the candidate
        # until set_rollout, and the first step then needs no separate "turn on".
        if self._table.insert_if_absent(
            spec.name, spec.project, spec.environment, feature_json(spec)
        ):
            log.info("flag_created", backend="embedded", flag=spec.name)
        return self.read(spec.name)

    def read(self, flag: str) -> FlagState:
        row = self._table.read(flag)
        if row is None:
            raise _not_found(flag)
        return _state(flag, *row)

    def set_rollout(self, flag: str, percent: int) -> FlagState:
        check_percent(percent)
        state = self._change(flag, f"set flag {flag!r} to {percent}%", percent, enabled=True)
        log.info("flag_rollout_set", backend="embedded", flag=flag, percent=percent)
        return state

    def disable(self, flag: str) -> FlagState:
        state = self._change(flag, f"disable flag {flag!r}", 0, enabled=False)
        log.info("flag_disabled", backend="embedded", flag=flag)
        return state

    def last_change(self, flag: str) -> FlagChange | None:
        """Unknown: the embedded store keeps no event log (people change it with SQL)."""
        return None

    def features(self, environment: str | None = None) -> StoredFeatures:
        """Every flag's feature JSON (of one environment, if given), for evaluators."""
        return read_features(self._engine, environment)

    def _change(self, flag: str, what: str, percent: int, *, enabled: bool) -> FlagState:
        def edit(stored: Feature) -> Feature:
            feature = copy.deepcopy(stored)
            strategy = pick_rollout_strategy(flag, feature.get("strategies") or [])
            if strategy is None:
                raise _no_strategy(flag)
            strategy.setdefault("parameters", {})["rollout"] = str(percent)
            feature["enabled"] = enabled
            return feature

        row = self._table.change(flag, what, edit)
        if row is None:
            raise _not_found(flag)
        return _state(flag, *row)


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
