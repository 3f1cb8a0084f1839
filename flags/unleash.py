"""The Unleash backend: the rollout flag over the Admin API, and the feature JSON it uses.

A rollout flag in Unleash is a ``release`` flag whose environment has one
``flexibleRollout`` strategy: ``rollout`` is the canary percentage (a string, as
Unleash wants it), ``stickiness`` is ``userId`` or ``conversationId`` and ``groupId``
is the flag name, so the bucket of an id depends only on (flag, id). The strategy
carries one variant, ``candidate``, whose JSON payload names the candidate model.
``flags.embedded`` stores exactly this JSON, which is why both backends put the same
user in the same arm.

Errors (the admin token never appears in any message, log line or repr)::

    connection refused, timeout, HTTP 5xx/429   ServiceUnavailable  (controller HOLDs)
    HTTP 401/403                                FlagRejected        (fix the admin token)
    HTTP 404                                    FlagNotFound
    other HTTP 4xx                              FlagRejected
"""

from __future__ import annotations

import json
import weakref
from typing import Any, Self

import httpx
import structlog

from flags.base import FlagChange, FlagSpec, FlagState
from shadowcanary.errors import ConfigError, FlagNotFound, FlagRejected, ServiceUnavailable

log = structlog.get_logger(__name__)

STRATEGY = "flexibleRollout"
CANDIDATE_VARIANT = "candidate"
# Unleash ships userId, sessionId, ... as context fields; conversationId is ours.
CUSTOM_STICKINESS_FIELDS: frozenset[str] = frozenset({"conversationId"})


# --- the feature JSON, shared with flags.embedded ------------------------------------


def rollout_strategy(spec: FlagSpec, percent: int = 0) -> dict[str, Any]:
    """The flexibleRollout strategy of a rollout flag, with the candidate variant."""
    return {
        "name": STRATEGY,
        "constraints": [],
        "parameters": {
            "rollout": str(percent),
            "stickiness": spec.stickiness,
            "groupId": spec.name,
        },
        "variants": [
            {
                "name": CANDIDATE_VARIANT,
                "weight": 1000,
                "weightType": "variable",
                "stickiness": spec.stickiness,
                "payload": {"type": "json", "value": json.dumps({"model": spec.candidate_model})},
            }
        ],
    }


def pick_rollout_strategy(flag: str, strategies: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The strategy the canary percentage lives in: ours (groupId = flag) first."""
    candidates = [s for s in strategies if s.get("name") == STRATEGY and not s.get("disabled")]
    for strategy in candidates:
        if strategy.get("parameters", {}).get("groupId") == flag:
            return strategy
    return candidates[0] if candidates else None


def model_from_payload(payload: Any) -> str | None:
    """The ``model`` named by a variant's JSON payload, or None if it names none."""
    if not isinstance(payload, dict) or payload.get("type") != "json":
        return None
    try:
        value = json.loads(payload.get("value") or "")
    except (TypeError, ValueError):
        return None
    model = value.get("model") if isinstance(value, dict) else None
    return model if isinstance(model, str) and model else None


def state_from_strategy(
    flag: str, environment: str, enabled: bool, strategy: dict[str, Any]
) -> FlagState:
    """A FlagState from a flexibleRollout strategy (Admin API or client API shape)."""
    parameters = strategy.get("parameters") or {}
    raw = parameters.get("rollout", "0")
    try:
        percent = int(str(raw).strip())
    except ValueError:
        raise FlagRejected(
            f"flag {flag!r} has a rollout percentage that is not a number: {raw!r}",
            hint="set the flexibleRollout strategy's rollout to a whole number 0..100",
        ) from None
    variants = strategy.get("variants") or []
    ours = [v for v in variants if v.get("name") == CANDIDATE_VARIANT] or variants
    models = (model_from_payload(v.get("payload")) for v in ours)
    return FlagState(
        name=flag,
        environment=environment,
        enabled=enabled,
        rollout_percent=max(0, min(100, percent)),
        stickiness=str(parameters.get("stickiness", "default")),
        candidate_model=next((m for m in models if m), None),
        strategy_id=strategy.get("id"),
    )


def check_percent(percent: int) -> None:
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ValueError(f"rollout percent must be a whole number 0..100, got {percent!r}")


# --- the Admin API backend -----------------------------------------------------------


class UnleashFlags:
    """FlagBackend over the Unleash Admin API (an admin token or personal access token).

    ``base_url`` is the server's root URL (where the UI is), e.g. http://unleash:4242.
    """

    def __init__(
        self,
        base_url: str,
        admin_token: str,
        *,
        project: str = "default",
        environment: str = "development",
        timeout_s: float = 5.0,
    ) -> None:
        root = base_url.rstrip("/").removesuffix("/api")
        self.base_url = root
        self.project = project
        self.environment = environment
        self._token = admin_token
        self._client = httpx.Client(
            base_url=root,
            headers={"Authorization": admin_token, "Accept": "application/json"},
            timeout=timeout_s,
        )
        # Dropped without close() (a test's or a command's backend): close the sockets
        # then, not whenever the garbage collector reaches them (a ResourceWarning).
        weakref.finalize(self, self._client.close)
        # Who Unleash says our writes are by, and their event ids (see last_change).
        self._own_identity: str | None = None
        self._own_events: set[int] = set()

    def __repr__(self) -> str:
        return (
            f"UnleashFlags(base_url={self.base_url!r}, project={self.project!r}, "
            f"environment={self.environment!r})"
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- FlagBackend

    def ensure_flag(self, spec: FlagSpec) -> FlagState:
        """Create the flag, its strategy at 0 % and the variant if missing; else leave it."""
        if (spec.project, spec.environment) != (self.project, self.environment):
            raise ConfigError(
                f"flag {spec.name!r} is for project/environment "
                f"{spec.project}/{spec.environment}, this backend manages "
                f"{self.project}/{self.environment}",
                hint="build UnleashFlags with the rollout's project and environment",
            )
        if spec.stickiness in CUSTOM_STICKINESS_FIELDS:
            self._ensure_context_field(spec.stickiness)
        feature = self._get_feature(spec.name, missing_ok=True)
        if feature is None and not self._create(spec):
            feature = self._get_feature(spec.name)  # another process created it first
        strategies = self._environment_of(feature, spec.name)["strategies"] if feature else []
        if not strategies:
            # New, or created by a run that died before adding the strategy. With no
            # strategy, turning the environment on would expose the flag to everyone
            # (Unleash adds a default 100 % strategy), so the strategy comes first.
            self._request(
                "POST",
                f"{self._features()}/{spec.name}/environments/{self.environment}/strategies",
                f"add the rollout strategy to flag {spec.name!r}",
                spec.name,
                json=rollout_strategy(spec, 0),
            )
            self._switch(spec.name, on=True)
            log.info("flag_strategy_added", backend="unleash", flag=spec.name, percent=0)
        return self.read(spec.name)

    def read(self, flag: str) -> FlagState:
        feature = self._get_feature(flag)
        assert feature is not None  # missing_ok=False raised FlagNotFound
        environment = self._environment_of(feature, flag)
        strategy = pick_rollout_strategy(flag, environment.get("strategies") or [])
        if strategy is None:
            raise FlagNotFound(
                f"flag {flag!r} has no {STRATEGY} strategy in environment "
                f"{self.environment!r}; the canary percentage lives there",
                hint="add a gradual rollout strategy in the Unleash UI, or delete the flag "
                "and let shadowcanary create it",
            )
        return state_from_strategy(
            flag, self.environment, bool(environment.get("enabled")), strategy
        )

    def set_rollout(self, flag: str, percent: int) -> FlagState:
        check_percent(percent)
        before = self.read(flag)
        # PATCH only the percentage: a PUT would replace the strategy and drop its
        # variants and anything an SRE added (constraints, segments).
        self._request(
            "PATCH",
            self._strategy_url(flag, before),
            f"set flag {flag!r} to {percent}%",
            flag,
            json=[{"op": "replace", "path": "/parameters/rollout", "value": str(percent)}],
        )
        if not before.enabled:
            self._switch(flag, on=True)
        self._remember_own_write(flag)
        log.info("flag_rollout_set", backend="unleash", flag=flag, percent=percent)
        return self.read(flag)

    def disable(self, flag: str) -> FlagState:
        before = self.read(flag)
        # Off first: it takes effect alone, so a failure after it still rolled back.
        self._switch(flag, on=False)
        self._request(
            "PATCH",
            self._strategy_url(flag, before),
            f"set flag {flag!r} to 0%",
            flag,
            json=[{"op": "replace", "path": "/parameters/rollout", "value": "0"}],
        )
        self._remember_own_write(flag)
        log.info("flag_disabled", backend="unleash", flag=flag)
        return self.read(flag)

    def last_change(self, flag: str) -> FlagChange | None:
        """The newest event of ``flag`` in this environment from Unleash's event log.

        Raises ServiceUnavailable when Unleash does not answer; None when the log has
        no event for this environment.
        """
        response = self._request(
            "GET", f"/api/admin/events/{flag}", f"read the event log of flag {flag!r}", flag
        )
        events = [
            e
            for e in response.json().get("events") or []
            if e.get("environment") in (self.environment, None) and e.get("createdBy")
        ]
        if not events:
            return None
        newest = max(events, key=lambda e: int(e.get("id") or 0))
        own = self._own_identity
        return FlagChange(
            who=str(newest["createdBy"]),
            at=str(newest.get("createdAt") or ""),
            kind=str(newest.get("type") or "change"),
            same_identity_as_shadowcanary=own is not None
            and newest["createdBy"] == own
            and int(newest.get("id") or 0) not in self._own_events,
        )

    def _remember_own_write(self, flag: str) -> None:
        """Note the event our write just made: its creator is shadowcanary's identity."""
        try:
            response = self._request("GET", f"/api/admin/events/{flag}", "read events", flag)
        except (ServiceUnavailable, FlagRejected, FlagNotFound):
            return  # only a label is lost; the write itself succeeded
        events = response.json().get("events") or []
        if events:
            newest = max(events, key=lambda e: int(e.get("id") or 0))
            self._own_identity = str(newest.get("createdBy") or "") or self._own_identity
            self._own_events.add(int(newest.get("id") or 0))

    # -- Admin API calls

    def _create(self, spec: FlagSpec) -> bool:
        """Create the flag (no strategy yet); False if it already existed."""
        description = f"shadowcanary rollout: {spec.baseline_model} -> {spec.candidate_model}"
        response = self._request(
            "POST",
            self._features(),
            f"create flag {spec.name!r}",
            spec.name,
            json={"name": spec.name, "type": "release", "description": description},
            accept=(409,),
        )
        if response.status_code == 409:
            return False
        log.info("flag_created", backend="unleash", flag=spec.name)
        return True

    def _features(self) -> str:
        return f"/api/admin/projects/{self.project}/features"

    def _strategy_url(self, flag: str, state: FlagState) -> str:
        return (
            f"{self._features()}/{flag}/environments/{self.environment}"
            f"/strategies/{state.strategy_id}"
        )

    def _get_feature(self, flag: str, *, missing_ok: bool = False) -> dict[str, Any] | None:
        response = self._request(
            "GET",
            f"{self._features()}/{flag}",
            f"read flag {flag!r}",
            flag,
            accept=(404,) if missing_ok else (),
        )
        if response.status_code == 404:
            return None
        body: dict[str, Any] = response.json()
        return body

    def _environment_of(self, feature: dict[str, Any], flag: str) -> dict[str, Any]:
        for environment in feature.get("environments") or []:
            if environment.get("name") == self.environment:
                return dict(environment)
        raise FlagNotFound(
            f"flag {flag!r} has no environment {self.environment!r} in project {self.project!r}",
            hint="enable that environment for the project in Unleash, or configure the "
            "environment the flag lives in",
        )

    def _switch(self, flag: str, *, on: bool) -> None:
        state = "on" if on else "off"
        self._request(
            "POST",
            f"{self._features()}/{flag}/environments/{self.environment}/{state}",
            f"turn flag {flag!r} {state}",
            flag,
        )

    def _ensure_context_field(self, name: str) -> None:
        # Unleash evaluates any stickiness name, but its UI offers only context fields
        # marked sticky; without one an SRE editing the strategy would lose ours.
        response = self._request(
            "GET", f"/api/admin/context/{name}", f"read context field {name!r}", None, accept=(404,)
        )
        if response.status_code == 404:
            self._request(
                "POST",
                "/api/admin/context",
                f"create context field {name!r}",
                None,
                json={
                    "name": name,
                    "description": "shadowcanary: keeps a conversation on one model",
                    "stickiness": True,
                },
                accept=(409,),
            )

    def _request(
        self,
        method: str,
        path: str,
        what: str,
        flag: str | None,
        *,
        json: Any = None,
        accept: tuple[int, ...] = (),
    ) -> httpx.Response:
        try:
            response = self._client.request(method, path, json=json)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(
                f"Unleash at {self.base_url} unreachable while trying to {what}: "
                f"{type(exc).__name__}: {self._redact(str(exc))}",
                hint="check that Unleash is up and the URL is right; the controller holds "
                "until it answers",
            ) from None
        if response.is_success or response.status_code in accept:
            return response
        raise self._error(response, what, flag)

    def _error(self, response: httpx.Response, what: str, flag: str | None) -> Exception:
        code = response.status_code
        detail = self._redact(_server_message(response))
        message = f"Unleash refused to {what}: HTTP {code}: {detail}"
        if code in (401, 403):
            return FlagRejected(
                message,
                hint="the admin API token is missing, wrong or lacks rights: use an admin "
                "token ('*:*.<secret>') or a personal access token of an admin",
            )
        if code == 404:
            return FlagNotFound(
                message,
                hint=f"check the flag name and project {self.project!r} / environment "
                f"{self.environment!r}; shadowcanary creates the flag when a rollout starts",
            )
        if code == 429 or code >= 500:
            return ServiceUnavailable(message, hint="Unleash is failing or busy; retry later")
        return FlagRejected(message, hint=f"the request to {what} was invalid for this Unleash")

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "<admin token>") if self._token else text


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:500]
    return response.text[:200]


__all__ = [
    "CANDIDATE_VARIANT",
    "STRATEGY",
    "UnleashFlags",
    "check_percent",
    "model_from_payload",
    "pick_rollout_strategy",
    "rollout_strategy",
    "state_from_strategy",
]
