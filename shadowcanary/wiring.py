"""The composition root: the controller's ports built from one ``Settings``.

The one place (with ``workers/app.py``) that picks concrete adapters — flag backend,
store, evidence reads, locks, the runbook hook — for the controller loop, the operator
commands and the demo, so all of them act on a rollout through the same objects.
Adapters never import each other to find a collaborator: they get it here.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Engine

from flags.base import FlagBackend
from runbooks.hook import RunbookHook
from shadowcanary.controller.notify import Notifier
from shadowcanary.controller.policy import controller_actor
from shadowcanary.controller.tick import PRE_CANARY_LOOKBACK, RECENT_P99_WINDOW, TickPorts
from shadowcanary.errors import ConfigError
from shadowcanary.judge.evidence import Evidence
from shadowcanary.limits.replay_rate import ReplayRates
from shadowcanary.plan import RolloutPlan
from shadowcanary.rollout_records import RolloutRecord
from shadowcanary.settings import Settings
from shadowcanary.store.evidence_reads import (
    MIN_P99_REQUESTS,
    count_baseline_requests,
    freeze_baseline_p99,
    load_evidence,
)
from shadowcanary.store.locks import operation_lock
from shadowcanary.store.rollouts import RolloutStore

FlagBackendName = Literal["embedded", "unleash"]


@dataclass(frozen=True, slots=True)
class FlagsConfig:
    """Which flag backend the controller drives. Project and environment come per plan."""

    backend: FlagBackendName = "embedded"
    unleash_url: str | None = None
    unleash_admin_token: str | None = field(default=None, repr=False)
    timeout_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> FlagsConfig:
        token = settings.unleash_admin_token
        return cls(
            backend=settings.flags,
            unleash_url=settings.unleash_url,
            unleash_admin_token=None if token is None else token.get_secret_value(),
        )


def flags_factory(config: FlagsConfig, engine: Engine) -> Callable[[RolloutPlan], FlagBackend]:
    """A function giving each plan its backend (one Unleash client per project/environment).

    Raises:
        ConfigError: the Unleash backend is chosen without its URL or admin token.
    """
    if config.backend == "embedded":
        from flags.embedded import EmbeddedFlags

        embedded = EmbeddedFlags(engine)
        return lambda _plan: embedded
    if not config.unleash_url or not config.unleash_admin_token:
        raise ConfigError(
            "the Unleash flag backend needs its URL and an admin API token",
            hint="set SHADOWCANARY_UNLEASH_URL and SHADOWCANARY_UNLEASH_ADMIN_TOKEN, "
            "or SHADOWCANARY_FLAGS=embedded",
        )
    from flags.unleash import UnleashFlags

    url, token = config.unleash_url, config.unleash_admin_token
    clients: dict[tuple[str, str], FlagBackend] = {}

    def for_plan(plan: RolloutPlan) -> FlagBackend:
        key = (plan.unleash.project, plan.unleash.environment)
        if key not in clients:
            clients[key] = UnleashFlags(
                url, token, project=key[0], environment=key[1], timeout_s=config.timeout_s
            )
        return clients[key]

    return for_plan


def instance_name() -> str:
    """``host:pid``: tells controller instances apart in the audit log."""
    return f"{socket.gethostname()}:{os.getpid()}"


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_ports(
    *,
    engine: Engine,
    lock_engine: Engine,
    flags_for: Callable[[RolloutPlan], FlagBackend],
    notifier: Notifier,
    settings: Settings,
    clock: Callable[[], datetime] = utc_now,
    actor: str | None = None,
    redis_url: str | None = None,
) -> TickPorts:
    """The ports of a tick (or an operator command when ``actor`` is ``cli:<user>``).

    The runbook hook shares this store (and its connection pool) and takes its output
    directory, flag links and secrets from ``settings`` once, not on every decision.
    """
    store = RolloutStore(engine)

    def evidence_for(record: RolloutRecord, now: datetime) -> Evidence:
        # Through the store: it caches the hours whose rollups did not change.
        return load_evidence(store, record, now=now)

    def baseline_p99_for(record: RolloutRecord, now: datetime) -> float | None:
        return freeze_baseline_p99(
            engine,
            record.name,
            since=record.started_at - PRE_CANARY_LOOKBACK,
            until=now,
            quantile=record.plan.triggers.p99_latency.quantile,
        )

    def recent_baseline_p99_for(record: RolloutRecord, now: datetime) -> float | None:
        return freeze_baseline_p99(
            engine,
            record.name,
            since=now - RECENT_P99_WINDOW,
            until=now,
            quantile=record.plan.triggers.p99_latency.quantile,
        )

    def baseline_seen_for(record: RolloutRecord, now: datetime) -> tuple[int, int]:
        seen = count_baseline_requests(
            engine, record.name, since=record.started_at - PRE_CANARY_LOOKBACK, until=now
        )
        return seen, MIN_P99_REQUESTS

    return TickPorts(
        store=store,
        flags_for=flags_for,
        notifier=notifier,
        clock=clock,
        evidence_for=evidence_for,
        baseline_p99_for=baseline_p99_for,
        recent_baseline_p99_for=recent_baseline_p99_for,
        runbook=RunbookHook.from_settings(settings, store),
        operation_lock=lambda name: operation_lock(lock_engine, name),
        actor=actor or controller_actor(instance_name()),
        baseline_seen_for=baseline_seen_for,
        # Plans with replay_sampling tell the workers how much to replay (fail open).
        publish_replay_rate=None if redis_url is None else ReplayRates.from_url(redis_url).publish,
    )
