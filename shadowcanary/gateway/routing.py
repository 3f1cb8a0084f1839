"""Which upstream serves a request: the route's rollout flag, per user, sticky.

A request names its route (header, or a ``/r/<route>/v1/...`` path prefix; else the
default route). If the route has a rollout and the request asks for the route's
baseline model, the flag decides per stickiness key: the HMAC of the user or
conversation id with the deployment's salt (``ModelRouter``, the same salt and hash
as the Python tap, so a user lands in the same arm on every path). Any other
configured model is served as asked, outside the rollout.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import unquote

import structlog

from flags.base import FlagEvaluator
from flags.router import ModelRouter
from shadowcanary.events import Arm, hash_stickiness_key
from shadowcanary.gateway.http import Rejection
from shadowcanary.settings import GatewayRoute, Settings

log = structlog.get_logger(__name__)

_DECISION_CACHE_SIZE = 100_000
_MAX_DECISION_TTL_S = 5.0
_ROUTE_PREFIX = re.compile(r"(/r/[^/%]+)?")
_MODEL_PATH = "/v1/models/"


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one call goes, and how it is recorded."""

    route: str
    model: str  # key of Settings.models to call
    arm: Arm
    rollout: str | None
    stickiness_key: str | None
    timeout_s: float | None  # the route's; None: the endpoint's own
    fallback_model: str | None  # baseline to retry on if the candidate fails retryably


class _Route:
    """A configured route and its recent per-user flag answers.

    Evaluating the flag costs tens of microseconds (yggdrasil builds a context and
    hashes), a tenth of the gateway's whole budget; a user's answer is reused for
    ``ttl_s``, no longer than the flag refresh interval itself. The cost: a flag change
    reaches every user within two refresh intervals instead of one (10 s by default),
    while a rollout step lasts minutes.
    """

    __slots__ = ("_cache", "baseline", "config", "name", "router", "ttl_s")

    def __init__(
        self,
        name: str,
        config: GatewayRoute,
        baseline: str,
        router: ModelRouter | None,
        ttl_s: float,
    ) -> None:
        self.ttl_s = ttl_s
        self.name = name
        self.config = config
        self.baseline = baseline
        self.router = router
        self._cache: dict[str | None, tuple[float, str]] = {}

    def model_for(self, key: str | None) -> str:
        assert self.router is not None
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        chosen = self.router(key)  # never raises: fails open to the baseline
        if len(self._cache) >= _DECISION_CACHE_SIZE:
            self._cache.clear()  # cheaper than an LRU, and soon refilled
        self._cache[key] = (now + self.ttl_s, chosen)
        return chosen


class Routing:
    """Decides the upstream model and arm of each call."""

    def __init__(self, settings: Settings, evaluator: FlagEvaluator | None) -> None:
        self._models = frozenset(settings.models)
        self._salt = settings.stickiness_salt.get_secret_value()
        self.default_route = settings.gateway.default_route
        self._routes: dict[str, _Route] = {}
        self._warned: set[str] = set()
        for name, config in settings.gateway.routes.items():
            baseline = config.baseline_model or settings.baseline_model
            router = None
            if config.rollout is not None:
                if evaluator is None:
                    raise ValueError("a route with a rollout needs a flag evaluator")
                router = ModelRouter(
                    evaluator,
                    config.flag or config.rollout,
                    baseline,
                    stickiness=config.stickiness,
                    stickiness_salt=self._salt,
                )
            ttl_s = min(settings.gateway.flag_refresh_s, _MAX_DECISION_TTL_S)
            self._routes[name] = _Route(name, config, baseline, router, ttl_s)

    @property
    def names(self) -> list[str]:
        return sorted(self._routes)

    def rollout_of(self, route: str) -> str | None:
        """The rollout a route's calls report for; None for no rollout or an unknown route."""
        found = self._routes.get(route)
        return found.config.rollout if found is not None else None

    def stickiness_of(self, route: str) -> str:
        return self._route(route).config.stickiness

    def baseline_of(self, route: str) -> str:
        """The route's baseline model (what endpoints it does not route are sent to)."""
        return self._route(route).baseline

    def _route(self, name: str) -> _Route:
        found = self._routes.get(name)
        if found is None:
            raise Rejection(
                404,
                f"Unknown gateway route '{name}'. Configured routes: {', '.join(self.names)} "
                "(set by the route header or a /r/<route>/v1/... path).",
                code="route_not_found",
            )
        return found

    def decide(self, route: str, requested_model: object, raw_id: str | None) -> Decision:
        """Pick the model for one call.

        Raises:
            Rejection: 404 for an unknown route or a model the gateway does not serve.
        """
        spec = self._route(route)
        if not isinstance(requested_model, str) or requested_model not in self._models:
            raise Rejection(
                404,
                f"The model `{requested_model}` is not served by this gateway. "
                f"Models configured: {', '.join(sorted(self._models))}.",
                code="model_not_found",
                param="model",
            )
        key = hash_stickiness_key(raw_id, self._salt) if raw_id else None
        timeout = spec.config.timeout_s
        if spec.router is None or requested_model != spec.baseline:
            return Decision(route, requested_model, Arm.BASELINE, None, key, timeout, None)
        chosen = spec.model_for(key)
        if chosen == spec.baseline:
            return Decision(route, chosen, Arm.BASELINE, spec.config.rollout, key, timeout, None)
        if chosen not in self._models:
            if chosen not in self._warned:  # once per model, not once per request
                self._warned.add(chosen)
                log.warning(
                    "gateway_candidate_not_configured",
                    route=route,
                    candidate=chosen,
                    hint="add the flag's candidate model to SHADOWCANARY_MODELS",
                )
            return Decision(
                route, spec.baseline, Arm.BASELINE, spec.config.rollout, key, timeout, None
            )
        fallback = spec.baseline if spec.config.fallback_to_baseline else None
        return Decision(route, chosen, Arm.CANDIDATE, spec.config.rollout, key, timeout, fallback)


def route_from_path(path: str, default: str) -> tuple[str, str]:
    """``/r/<route>/v1/x`` -> (route, ``/v1/x``); any other path -> (default, path)."""
    if path.startswith("/r/"):
        route, sep, rest = path[3:].partition("/")
        if sep and route:
            return route, "/" + rest
    return default, path


def routed_path(raw_path: bytes) -> str:
    """The path to route on: exactly as sent, never percent-decoded.

    A proxy or ACL in front of the gateway matches the raw path; routing on the decoded
    one would let ``/v1/chat%2Fcompletions`` reach chat past a rule on
    ``/v1/chat/completions``. So an encoded character is refused anywhere in the part
    that selects the endpoint; only a model id (``/v1/models/<id>``, which SDKs encode)
    is decoded.

    Raises:
        Rejection: 400 when the path holds percent-encoded characters (or is not ASCII).
    """
    path = raw_path.decode("latin-1")
    if "%" not in path and path.isascii():
        return path
    head, sep, model_id = path.partition(_MODEL_PATH)
    if sep and path.isascii() and _ROUTE_PREFIX.fullmatch(head):
        return head + sep + unquote(model_id)
    raise Rejection(
        400,
        f"The path {path[:200]!r} holds percent-encoded (or non-ASCII) characters. The "
        "gateway routes on the path exactly as sent, so that it serves the path a proxy "
        "or ACL in front of it sees: send the path unencoded, e.g. /v1/chat/completions "
        "(only a model id in /v1/models/<id> may be encoded).",
        code="encoded_path",
    )
