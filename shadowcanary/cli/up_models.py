"""What ``shadowcanary up`` simulates and which rollout it feeds.

- The simulator's profiles: the shipped ones or ``--profiles FILE``; every model the
  traffic calls must have one (else every call would 404).
- Prices are set once: a profile without a price takes the one configured in
  SHADOWCANARY_MODELS, and the worker's models take the profile's when none is
  configured, so live cost and replay cost agree.
- The worker replays against the same simulator (``--sim-port`` moves both).
- The rollout written to exists: ``--rollout NAME`` must have been started (its flag
  routes the traffic); without it, ``local-demo`` is started and paused, as its traffic
  is split at a fixed ``--canary-percent`` the controller must not act on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shadowcanary.errors import ConfigError
from shadowcanary.plan import RolloutPlan
from shadowcanary.rollout_records import RolloutRecord
from shadowcanary.settings import Settings
from shadowcanary.sim.profiles import load_profiles

DEFAULT_ROLLOUT = "local-demo"
_PRICES = ("input_usd_per_mtok", "output_usd_per_mtok")


@dataclass(frozen=True, slots=True)
class UpTarget:
    """The rollout ``up`` feeds and how its traffic is split."""

    rollout: str
    baseline: str
    candidate: str
    flag: str | None  # route by this flag; None: a fixed canary percent


def simulator_profiles(
    settings: Settings, profiles_file: Path | None, models: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The simulator's profiles, with the configured prices where a profile has none.

    Raises:
        ConfigError: the file is unreadable or invalid, or a model the traffic calls
            has no profile.
    """
    profiles = load_profiles(profiles_file).as_dict()
    missing = sorted(set(models) - set(profiles))
    if missing:
        source = profiles_file or "the shipped simulator profiles"
        raise ConfigError(
            f"{source} has no profile for {', '.join(missing)} "
            f"(it has {', '.join(sorted(profiles))}): every call to it would fail",
            hint="pass --profiles FILE with one per model, e.g. models: {"
            + f"{missing[0]}: "
            + "{mean_ms: 600, p99_ms: 2000, input_usd_per_mtok: 5, output_usd_per_mtok: 30}}",
        )
    for name, profile in profiles.items():
        endpoint = settings.models.get(name)
        if endpoint is not None and not any(profile[p] for p in _PRICES):
            profile.update({p: getattr(endpoint, p) for p in _PRICES})
    return profiles


def worker_models_json(
    settings: Settings, profiles: dict[str, dict[str, Any]], sim_base_url: str, api_key: str
) -> str:
    """SHADOWCANARY_MODELS for the worker: every simulated model at this simulator."""
    models: dict[str, dict[str, Any]] = {}
    for name, endpoint in settings.models.items():
        entry = endpoint.model_dump()
        entry["api_key"] = endpoint.api_key.get_secret_value()
        models[name] = entry
    for name, profile in profiles.items():
        entry = models.setdefault(name, {})
        entry.update(base_url=sim_base_url, api_key=api_key)
        if not any(entry.get(p) for p in _PRICES):
            entry.update({p: profile[p] for p in _PRICES})
    return json.dumps(models)


def default_plan(settings: Settings) -> RolloutPlan:
    """The plan of the ``local-demo`` rollout: the configured baseline and candidate."""
    return RolloutPlan(
        name=DEFAULT_ROLLOUT,
        flag=DEFAULT_ROLLOUT,
        baseline=settings.baseline_model,
        candidate=settings.candidate_model,
    )


def target_of(record: RolloutRecord, *, routed: bool) -> UpTarget:
    """What to feed for ``record``: by its flag when ``routed``, else a fixed split."""
    if routed and not record.status.active:
        raise ConfigError(
            f"rollout {record.name} is {record.status.value}: no flag to follow",
            hint=f"start it again with `shadowcanary rollout start PLAN.yaml` (name "
            f"{record.name}), then run `shadowcanary up --rollout {record.name}`",
        )
    plan = record.plan
    return UpTarget(
        rollout=record.name,
        baseline=plan.baseline,
        candidate=plan.candidate,
        flag=plan.flag if routed else None,
    )
