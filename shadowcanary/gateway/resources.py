"""What one gateway process runs with: the tap, the flag evaluator, upstreams, keys, routes.

Built from ``Settings`` when the app starts (in each server process: the tap's thread
and the HTTP session belong to the process and loop that use them) and closed when
it stops. Tests can build one by hand with other parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from flags.base import FlagEvaluator
from shadowcanary.errors import ConfigError
from shadowcanary.gateway.auth import KeyRing
from shadowcanary.gateway.proxy import Proxy
from shadowcanary.gateway.routing import Routing
from shadowcanary.gateway.upstream import Upstreams
from shadowcanary.settings import Settings
from shadowcanary.tap.emitter import Tap
from shadowcanary.tap.responses_capture import Conversations

log = structlog.get_logger(__name__)


@dataclass
class Runtime:
    settings: Settings
    tap: Tap
    evaluator: Any  # FlagEvaluator with start()/close(), or None without rollouts
    upstreams: Upstreams
    keys: KeyRing
    routing: Routing
    proxy: Proxy
    # Responses conversations this process served, for previous_response_id captures.
    conversations: Conversations = field(default_factory=Conversations)

    async def start(self) -> None:
        await self.upstreams.start()

    async def close(self) -> None:
        await self.upstreams.close()
        if self.evaluator is not None:
            self.evaluator.close()
        self.tap.close()


def _evaluator(settings: Settings) -> FlagEvaluator | None:
    if not any(route.rollout for route in settings.gateway.routes.values()):
        return None
    refresh_s = settings.gateway.flag_refresh_s
    if settings.flags == "unleash":
        from flags.router import UnleashClientEvaluator

        token = settings.gateway.unleash_backend_token
        if token is None or not token.get_secret_value().strip():
            raise ConfigError(
                "the gateway routes by an Unleash flag but has no Unleash client token",
                hint="set SHADOWCANARY_GATEWAY__UNLEASH_BACKEND_TOKEN to a client (backend) "
                "token, e.g. 'default:development.<secret>'; the gateway never needs the "
                "admin token",
            )
        if settings.unleash_url is None:
            raise ConfigError(
                "the gateway routes by an Unleash flag but has no Unleash URL",
                hint="set SHADOWCANARY_UNLEASH_URL, e.g. http://unleash:4242",
            )
        # start() returns at once: the gateway is ready while Unleash hangs, routing
        # everyone to the baseline until the first fetch (or the SDK's disk copy).
        return UnleashClientEvaluator(
            settings.unleash_url,
            token.get_secret_value(),
            app_name="shadowcanary-gateway",
            refresh_interval_s=max(1, round(refresh_s)),
            request_timeout_s=max(1, round(settings.gateway.unleash_request_timeout_s)),
        ).start()
    from flags.router import EmbeddedEvaluator
    from shadowcanary.store.db import make_engine

    if settings.database_url is None:
        raise ConfigError(
            "the gateway routes by the embedded flags but has no database",
            hint="set SHADOWCANARY_DATABASE_URL (the CLI resolves the embedded one)",
        )
    return EmbeddedEvaluator(make_engine(settings.database_url, pool_size=1), refresh_s).start()


def check_routes(settings: Settings) -> None:
    """Every route's baseline is a configured model (a typo must fail at start, not per call)."""
    for name, route in settings.gateway.routes.items():
        baseline = route.baseline_model or settings.baseline_model
        if baseline not in settings.models:
            raise ConfigError(
                f"gateway route {name!r} has baseline model {baseline!r}, which is not configured",
                hint="add it to SHADOWCANARY_MODELS (configured: "
                f"{', '.join(sorted(settings.models))})",
            )


def build_runtime(settings: Settings, *, processes: int = 1) -> Runtime:
    """Wire a gateway process from settings.

    Raises:
        ConfigError: Redis/Postgres URLs missing, no API keys, or a route's model unknown.
    """
    if settings.redis_url is None:
        raise ConfigError(
            "the gateway needs Redis for the tap",
            hint="set SHADOWCANARY_REDIS_URL (the CLI resolves the embedded one)",
        )
    if not settings.gateway.api_keys:
        raise ConfigError(
            "the gateway has no API keys configured, so it would refuse every call",
            hint="hash a key with `shadowcanary gateway hash-key` and set "
            'SHADOWCANARY_GATEWAY__API_KEYS=\'{"my-service": {"sha256": "<hash>", '
            '"rollouts": ["<rollout>"]}}\'',
        )
    check_routes(settings)
    gateway = settings.gateway
    tap = Tap(settings.tap, settings.redis_url)
    evaluator = _evaluator(settings)
    upstreams = Upstreams(
        settings.models,
        breaker_failures=gateway.breaker_failures,
        breaker_open_s=gateway.breaker_open_s,
    )
    return Runtime(
        settings=settings,
        tap=tap,
        evaluator=evaluator,
        upstreams=upstreams,
        keys=KeyRing(gateway.api_keys, processes=processes),
        routing=Routing(settings, evaluator),
        proxy=Proxy(upstreams, tap),
    )
