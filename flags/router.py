"""The request path: which model does this call go to? Baseline unless the flag says candidate.

``ModelRouter`` asks a ``FlagEvaluator`` per call. Evaluators evaluate locally with
yggdrasil-engine (the Rust engine inside UnleashClient) and refresh their copy of the
flag in the background, so a call never waits on the network:

- ``UnleashClientEvaluator`` (``flags.unleash_sdk``): the official SDK polling Unleash.
- ``EmbeddedEvaluator``: re-reads the embedded backend's feature JSON from Postgres.
- ``StaticEvaluator``: fixed feature JSON (tests, bootstrapping).

All of them fail open: an unreachable Unleash or Postgres, an unknown flag or a
broken variant means the baseline model, never an exception in the caller.

Routing key (a decision): a call is routed on the HMAC of the user/conversation id
(``shadowcanary.events.hash_stickiness_key`` with the deployment's stickiness salt),
never on the raw id. The tap's ``model_router`` hook only ever sees that hash, and
the store records it, so the arm a capture is labelled with can be recomputed from
stored data; the raw id never reaches the flag service either. Stickiness holds
because the hash is stable; bucketing stays uniform because flexibleRollout hashes
the value again (murmur3 of ``groupId:value``). The one rule: every service routing
a rollout (tap, gateway) must use the same salt, or the same user can land in
different arms on different paths. ``model_for`` hashes raw ids itself, so
``router.model_for({"user_id": u}) == router(hash_stickiness_key(u, salt))``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any, Self

import structlog
from pydantic import SecretStr
from sqlalchemy import Engine
from yggdrasil_engine.engine import UnleashEngine

from flags.base import FlagEvaluator, Stickiness, evaluation_context
from flags.unleash import model_from_payload
from flags.unleash_sdk import UnleashClientEvaluator
from shadowcanary.errors import ShadowCanaryError
from shadowcanary.events import DEV_SALT, hash_stickiness_key
from shadowcanary.store.flag_table import StoredFeatures, read_features

log = structlog.get_logger(__name__)

# Where a routing context carries each stickiness id (snake case, or Unleash's name).
CONTEXT_KEYS: dict[str, tuple[str, ...]] = {
    "userId": ("user_id", "userId"),
    "conversationId": ("conversation_id", "conversationId"),
}


class ModelRouter:
    """Picks the model of one call: the flag's candidate for users in the canary, else baseline.

    Pass it as ``tap_openai(..., model_router=router)``: the tap calls it with the
    hashed stickiness key. Services routing without the tap call ``model_for``.
    """

    def __init__(
        self,
        evaluator: FlagEvaluator,
        flag: str,
        baseline_model: str,
        *,
        stickiness: Stickiness,
        stickiness_salt: str | SecretStr = DEV_SALT,
    ) -> None:
        if stickiness not in CONTEXT_KEYS:
            raise ValueError(
                f"stickiness must be one of {sorted(CONTEXT_KEYS)}, got {stickiness!r}"
            )
        self.evaluator = evaluator
        self.flag = flag
        self.baseline_model = baseline_model
        self.stickiness = stickiness
        salt = stickiness_salt
        self._salt = salt.get_secret_value() if isinstance(salt, SecretStr) else salt

    def __repr__(self) -> str:
        return (
            f"ModelRouter(flag={self.flag!r}, baseline_model={self.baseline_model!r}, "
            f"stickiness={self.stickiness!r}, evaluator={self.evaluator!r})"
        )

    def model_for(self, context: Mapping[str, str]) -> str:
        """The model for a call whose raw ids are in ``context`` (user_id / conversation_id)."""
        raw = next((context[k] for k in CONTEXT_KEYS[self.stickiness] if context.get(k)), None)
        return self(hash_stickiness_key(raw, self._salt) if raw else None)

    def __call__(self, stickiness_key: str | None) -> str:
        """The model for an already hashed stickiness key (the tap's ``model_router`` hook)."""
        if not stickiness_key:
            return self.baseline_model  # nothing to stick on: never flip a user at random
        try:
            candidate = self.evaluator.candidate_for(self.flag, stickiness_key)
        except Exception as exc:  # noqa: BLE001 - routing fails open to the baseline
            log.warning("flag_routing_failed", flag=self.flag, error=type(exc).__name__)
            return self.baseline_model
        return candidate or self.baseline_model


class StaticEvaluator:
    """FlagEvaluator over fixed Unleash feature JSON (the client API's ``features`` list)."""

    def __init__(
        self,
        features: list[dict[str, Any]],
        *,
        app_name: str = "shadowcanary",
        environment: str = "development",
    ) -> None:
        self._engine = UnleashEngine()
        warnings = self._engine.take_state(json.dumps({"version": 2, "features": features}))
        if warnings:
            log.warning("flag_state_warnings", warnings=str(warnings)[:500])
        self._static = {"appName": app_name, "environment": environment}

    def candidate_for(self, flag: str, stickiness_value: str | None) -> str | None:
        if not stickiness_value:
            return None
        context = evaluation_context(stickiness_value, **self._static)
        result = self._engine.get_variant(flag, context)  # never raises: disabled on error
        if not result.variant.feature_enabled:
            return None
        return model_from_payload(result.variant.payload)


class EmbeddedEvaluator:
    """FlagEvaluator on the embedded backend: re-reads the flags from Postgres every ``refresh_s``.

    ``refresh()`` is also public, for a caller that wants the latest state now. When
    Postgres is unreachable it keeps the last state it read (none yet: baseline).
    """

    def __init__(
        self,
        engine: Engine,
        refresh_s: float = 5.0,
        *,
        environment: str | None = None,
        app_name: str = "shadowcanary",
    ) -> None:
        self._engine = engine
        self.refresh_s = refresh_s
        self.environment = environment
        self._app_name = app_name
        self._current: StaticEvaluator | None = None
        self._fingerprint: tuple[tuple[str, int], ...] | None = None
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"EmbeddedEvaluator(refresh_s={self.refresh_s}, environment={self.environment!r})"

    def start(self) -> Self:
        """Load the flags now (or fail open) and keep refreshing them in a daemon thread."""
        self.refresh()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="shadowcanary-flag-refresh", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.refresh_s))
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(self) -> bool:
        """Re-read the flags; True when the stored state changed since the last read."""
        try:
            stored = read_features(self._engine, self.environment)
        except ShadowCanaryError as exc:
            if not self._failing:  # once per outage, not once per refresh
                log.warning("embedded_flags_unreadable", error=type(exc).__name__, hint=exc.hint)
            self._failing = True
            return False
        if self._failing:
            log.info("embedded_flags_readable_again")
        self._failing = False
        if stored.fingerprint == self._fingerprint:
            return False
        self._install(stored)
        return True

    def candidate_for(self, flag: str, stickiness_value: str | None) -> str | None:
        current = self._current  # swapped whole on refresh: no lock on the hot path
        return current.candidate_for(flag, stickiness_value) if current is not None else None

    def _install(self, stored: StoredFeatures) -> None:
        environment = self.environment or "development"
        self._current = StaticEvaluator(
            stored.features, app_name=self._app_name, environment=environment
        )
        self._fingerprint = stored.fingerprint
        log.debug("embedded_flags_loaded", flags=len(stored.features))

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - the refresher must outlive any bad row
                log.warning("embedded_flags_refresh_failed", error=type(exc).__name__)


__all__ = [
    "CONTEXT_KEYS",
    "EmbeddedEvaluator",
    "ModelRouter",
    "StaticEvaluator",
    "UnleashClientEvaluator",
    "evaluation_context",
]
