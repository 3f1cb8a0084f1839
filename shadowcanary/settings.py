"""Runtime configuration: one pydantic-settings ``Settings`` loaded where a process is wired.

Environment variables use the prefix ``SHADOWCANARY_`` and ``__`` for nesting, e.g.
``SHADOWCANARY_TAP__BUFFER_SIZE=20000`` or
``SHADOWCANARY_MODELS='{"gpt-5.5": {"base_url": "https://api.openai.com/v1", ...}}'``.
Unknown ``SHADOWCANARY_*`` variables are an error, not silently ignored: a typo in a
budget or a URL must not quietly fall back to a default in production.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from shadowcanary.errors import ConfigError, UnknownModel
from shadowcanary.events import DEV_SALT

ENV_PREFIX = "SHADOWCANARY_"
SIMULATOR_URL = "http://127.0.0.1:8765/v1"
MIN_SALT_CHARS = 12
# A gateway key bound to this "rollout" may report for any rollout.
ANY_ROLLOUT = "*"
# The names the event contract accepts for tenants and rollouts (shadowcanary/events.py).
_NAME_PATTERN = r"[\w.:/@+-]{1,200}"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelEndpoint(_Section):
    """Where and how to call one model through an OpenAI-compatible API.

    ``provider="azure"``: Azure OpenAI, authenticated with the ``api-key`` header. With
    ``api_version`` set, the classic deployment API: ``base_url`` is the resource
    endpoint (``https://RESOURCE.openai.azure.com``), the deployment
    (``upstream_model``, else the model's name) goes in the path and ``api-version`` in
    the query. Without it, the v1 API: ``base_url`` ends in ``/openai/v1``.
    """

    base_url: str = SIMULATOR_URL
    api_key: SecretStr = SecretStr("sim-key")
    # The name sent upstream, when it differs from our key (e.g. an Azure deployment).
    upstream_model: str | None = None
    provider: Literal["openai", "azure"] = "openai"
    api_version: str | None = Field(default=None, min_length=1, max_length=40)
    input_usd_per_mtok: float = Field(default=0.0, ge=0)
    # Input tokens served from the provider's prompt cache; unset: the input price.
    cached_input_usd_per_mtok: float | None = Field(default=None, ge=0)
    # Reasoning tokens are output tokens and billed at this price, as OpenAI bills them.
    output_usd_per_mtok: float = Field(default=0.0, ge=0)
    requests_per_minute: int | None = Field(default=None, gt=0)
    tokens_per_minute: int | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _azure_form_is_complete(self) -> Self:
        base = self.base_url.rstrip("/")
        if self.provider != "azure":
            if self.api_version is not None:
                raise ValueError(
                    "api_version is for Azure OpenAI's classic deployment API: "
                    'set "provider": "azure" too, or drop api_version'
                )
            return self
        if self.api_version is not None and "/openai" in base:
            raise ValueError(
                f"with api_version (classic Azure deployments) base_url must be the resource "
                f"endpoint, e.g. https://RESOURCE.openai.azure.com, not {base!r}: the "
                "/openai/deployments/<deployment>/... path is added per call"
            )
        if self.api_version is None and not base.endswith("/openai/v1"):
            raise ValueError(
                f"provider 'azure' without api_version is the v1 API: base_url must end in "
                f"/openai/v1 (e.g. https://RESOURCE.openai.azure.com/openai/v1), not {base!r}; "
                "or set api_version (e.g. 2024-10-21) for classic deployments"
            )
        return self

    def cost_usd(
        self, prompt_tokens: int, completion_tokens: int, cached_tokens: int | None = None
    ) -> float:
        """Dollar cost of one call: cached input at its price, the rest of the input at
        the input price, output (reasoning included) at the output price."""
        cached = min(cached_tokens or 0, prompt_tokens)
        cached_price = (
            self.input_usd_per_mtok
            if self.cached_input_usd_per_mtok is None
            else self.cached_input_usd_per_mtok
        )
        return (
            (prompt_tokens - cached) * self.input_usd_per_mtok
            + cached * cached_price
            + completion_tokens * self.output_usd_per_mtok
        ) / 1e6


def _default_models() -> dict[str, ModelEndpoint]:
    # Prices from the migration guides' cost model; both point at the local simulator.
    return {
        "gpt-5.2": ModelEndpoint(input_usd_per_mtok=1.75, output_usd_per_mtok=14.0),
        "gpt-5.5": ModelEndpoint(input_usd_per_mtok=5.0, output_usd_per_mtok=30.0),
    }


class TapSettings(_Section):
    """The live-path emitter inside services."""

    buffer_size: int = Field(default=20_000, gt=0)
    batch_size: int = Field(default=500, gt=0, le=10_000)
    flush_interval_s: float = Field(default=0.05, gt=0)
    publish_timeout_s: float = Field(default=0.5, gt=0)
    max_event_bytes: int = Field(default=1_000_000, gt=0)
    default_sample_rate: float = Field(default=1.0, ge=0, le=1)
    # route -> share of calls captured, overriding default_sample_rate
    sample_rates: dict[str, float] = Field(default_factory=dict)
    # Extra regexes redacted on top of the built-in PII patterns.
    redact_patterns: list[str] = Field(default_factory=list)
    # Presidio entities (PERSON, LOCATION...) redacted too; empty = Presidio off. Needs
    # the extra shadowcanary[presidio] and a spaCy model (see shadowcanary/tap/presidio.py).
    presidio_entities: list[str] = Field(default_factory=list)
    presidio_language: str = "en"

    @model_validator(mode="after")
    def _rates_are_probabilities(self) -> Self:
        for route, rate in self.sample_rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"sample_rates[{route!r}]={rate} must be between 0 and 1")
        return self


class ReplaySettings(_Section):
    """The shadow replays done by the workers."""

    # Share of replayed prompts that are also sent to the baseline a second time.
    noise_floor_rate: float = Field(default=0.2, ge=0, le=1)
    # Share of candidate-arm live calls replayed to the baseline model, the rollback
    # target: what proves it healthy and warm during a plan's watch after 100 %.
    rollback_target_rate: float = Field(default=0.05, ge=0, le=1)
    max_attempts: int = Field(default=5, ge=1)
    backoff_base_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=60.0, gt=0)
    # Replays one worker process keeps in flight.
    max_in_flight: int = Field(default=512, gt=0)
    batch_size: int = Field(default=64, gt=0)
    daily_token_budget: int | None = Field(default=None, gt=0)
    daily_usd_budget: float | None = Field(default=None, gt=0)
    # Stream replays to measure the candidate's time to first token too. Off by
    # default: reassembling a stream costs the worker about twice the CPU of a plain
    # call, and live canary traffic already measures TTFT where it matters.
    stream: bool = False
    # How long an unacknowledged task may stay with a worker before Redis hands it to
    # another: the recovery time after a worker is killed. Must exceed the longest
    # replay batch plus its retry countdown, or work is done twice (harmless: writes
    # are idempotent, but it costs tokens).
    visibility_timeout_s: int = Field(default=900, gt=0)


class OutcomeSettings(_Section):
    """User outcome reports (shadowcanary/outcomes.py), joined to captures by the workers."""

    # A report whose event id no capture matched after this long counts as unknown
    # (a wrong id, or a capture that was sampled out or lost); it is still joined if
    # the capture turns up later.
    unknown_after_s: float = Field(default=600.0, gt=0)
    # How often each worker looks for outcomes whose capture arrived after them.
    sweep_interval_s: float = Field(default=5.0, gt=0)


class JudgeSettings(_Section):
    """The pairwise LLM judge the workers run on a sample of shadow pairs (judge/pairwise.py)."""

    # A model in ``models`` (any OpenAI-compatible endpoint; the simulator's judge in the
    # demo). None: no judge, and a plan's ``judge_score`` trigger is refused.
    model: str | None = None
    # Share of candidate replays judged (both orders: two judge calls per pair), per
    # route overriding the default. Every noise-floor replay of a judged route is judged too.
    sample_rate: float = Field(default=0.2, ge=0, le=1)
    sample_rates: dict[str, float] = Field(default_factory=dict)
    # The judge's own daily budget and rate limit, apart from the replays'.
    daily_token_budget: int | None = Field(default=None, gt=0)
    daily_usd_budget: float | None = Field(default=None, gt=0)
    requests_per_minute: int | None = Field(default=None, gt=0)
    max_output_tokens: int = Field(default=200, gt=0, le=4_096)

    @model_validator(mode="after")
    def _rates_are_probabilities(self) -> Self:
        for route, rate in self.sample_rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"sample_rates[{route!r}]={rate} must be between 0 and 1")
        return self

    def rate_for(self, route: str) -> float:
        return self.sample_rates.get(route, self.sample_rate)

    @property
    def samples_anything(self) -> bool:
        return self.sample_rate > 0 or any(r > 0 for r in self.sample_rates.values())


class GatewayKey(_Section):
    """One service allowed to call the gateway: only the SHA-256 of its key is configured."""

    # hex SHA-256 of the key the service sends as ``Authorization: Bearer <key>``
    # (``shadowcanary gateway hash-key`` prints it); the key itself is never stored.
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # Sustained requests per minute for this key (bursts up to one second's worth
    # more); None: unlimited. Enforced per gateway process.
    requests_per_minute: int | None = Field(default=None, gt=0)
    # The rollouts this service may report for: the events it posts to /v1/tap/events
    # and the routes it calls through must belong to one of them (traffic outside any
    # rollout is always allowed). ["*"]: any rollout, e.g. a shared platform service.
    # Required, so that "any rollout" is a decision written in the config, never a default.
    rollouts: list[str]

    @model_validator(mode="before")
    @classmethod
    def _rollouts_are_stated(cls, data: Any) -> Any:
        if isinstance(data, dict) and "rollouts" not in data:
            raise ValueError(
                'say which rollouts this service may report for: add "rollouts": '
                '["<rollout>", ...] (plan names), or "rollouts": ["*"] for any rollout'
            )
        return data

    @model_validator(mode="after")
    def _rollouts_are_names(self) -> Self:
        if ANY_ROLLOUT in self.rollouts and len(self.rollouts) > 1:
            raise ValueError(
                f'rollouts {self.rollouts[:5]}: "*" already allows every rollout; '
                'use ["*"] alone or list the rollouts without it'
            )
        for name in self.rollouts:
            if name != ANY_ROLLOUT and not re.fullmatch(_NAME_PATTERN, name):
                raise ValueError(
                    f"rollouts: {name[:80]!r} is not a rollout name; use the plan's name "
                    "(letters, digits and _ . : / @ + -)"
                )
        return self


class GatewayRoute(_Section):
    """A named route of the gateway: which rollout its calls belong to and how they are served."""

    # The rollout recorded on each event (its plan's ``name``); None: no canary, the
    # requested model is served as asked.
    rollout: str | None = None
    # The feature flag that picks the model (the plan's ``flag``); default: ``rollout``.
    flag: str | None = None
    # The model the flag routes away from (default: ``Settings.baseline_model``).
    baseline_model: str | None = None
    stickiness: Literal["userId", "conversationId"] = "userId"
    # Whole-call timeout (non-streamed) or idle time between chunks (streamed);
    # default: the model endpoint's ``timeout_s``.
    timeout_s: float | None = Field(default=None, gt=0)
    # When the candidate fails with a retryable error (5xx, timeout, connection) before
    # anything was sent to the client, serve the call from the baseline instead.
    fallback_to_baseline: bool = True


class GatewaySettings(_Section):
    """The OpenAI-compatible gateway (``shadowcanary gateway run``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, lt=65536)
    # Server processes sharing the port; per-key rate limits are split between them.
    workers: int = Field(default=1, ge=1, le=64)
    # Service name -> key; the name is recorded as the events' ``tenant``.
    api_keys: dict[str, GatewayKey] = Field(default_factory=dict)
    routes: dict[str, GatewayRoute] = Field(
        default_factory=lambda: {"default": GatewayRoute(rollout=None)}
    )
    default_route: str = "default"
    # A request names its route with this header or with a /r/<route>/v1/... path.
    route_header: str = "x-shadowcanary-route"
    # Where the stickiness id comes from, before the body's ``user`` field.
    user_header: str = "x-user-id"
    conversation_header: str = "x-conversation-id"
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    # The request line and headers of one request together: 431 beyond. SDKs send about
    # 1 KiB; without a limit the HTTP parser buffers whatever a client sends.
    max_header_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # A request's line and headers must arrive within this long of the connection
    # opening (or of their first byte on a kept-alive connection), its body within
    # body_timeout_s after them; else 408 and the connection is closed, so slow or
    # silent clients cannot hold connections (and their memory) open.
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=60.0, gt=0)
    # Circuit breaker per upstream model: open after this many consecutive failures...
    breaker_failures: int = Field(default=5, ge=1)
    # ...for this long, then let one probe through.
    breaker_open_s: float = Field(default=30.0, gt=0)
    # How often the flag state is re-read (embedded backend) or polled (Unleash).
    flag_refresh_s: float = Field(default=5.0, gt=0)
    # Unleash client (backend) token, needed when ``Settings.flags`` is "unleash" (the
    # gateway only evaluates flags: it never needs the admin token).
    unleash_backend_token: SecretStr | None = None
    # Timeout of each request to Unleash (register, poll, metrics); never on the request path.
    unleash_request_timeout_s: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _default_route_exists(self) -> Self:
        if self.default_route not in self.routes:
            raise ValueError(
                f"default_route={self.default_route!r} is not one of routes {sorted(self.routes)}"
            )
        return self

    @model_validator(mode="after")
    def _services_are_tenant_names(self) -> Self:
        # A key's name becomes the events' tenant: one the event contract refuses would
        # make every capture of that service fail (silently, as counted tap errors).
        for name in self.api_keys:
            if not re.fullmatch(_NAME_PATTERN, name):
                raise ValueError(
                    f"api_keys: service name {name[:80]!r} is not a valid tenant name; use "
                    "letters, digits and _ . : / @ + - (e.g. 'billing-api')"
                )
        return self


class Settings(BaseSettings):
    """Everything a shadowcanary process needs to know."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    # None means "embedded": the CLI starts Postgres/Redis from wheels in data_dir.
    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".shadowcanary")
    log_level: str = Field(default="info", pattern="^(debug|info|warning|error)$")
    # "json" (one object per line) or "human". None: the process's own default, JSON for
    # the long-running ones (worker, controller, gateway), human for a command's output.
    log_format: Literal["json", "human"] | None = None
    # A command's info-level lines too (`shadowcanary --verbose` sets it for its process).
    log_verbose: bool = False
    # Salt for hashing user/conversation ids; set it per deployment.
    stickiness_salt: SecretStr = SecretStr(DEV_SALT)
    retention_days: int = Field(default=14, gt=0)
    # Embedding similarity is computed when a model here is configured in ``models``.
    embeddings_model: str | None = None
    # Port for the Prometheus /metrics endpoint of workers and the controller (None: not
    # served), and the address it listens on: loopback unless 0.0.0.0 (or one interface's
    # address) is asked for, so metrics are not on every interface by default.
    metrics_port: int | None = Field(default=None, gt=0, lt=65536)
    metrics_addr: IPvAnyAddress = IPv4Address("127.0.0.1")

    # Where rollout flags live: "embedded" (Postgres, evaluated with Unleash's engine)
    # or "unleash" (a real Unleash server driven through its Admin API).
    flags: Literal["embedded", "unleash"] = "embedded"
    unleash_url: str | None = None  # e.g. http://unleash:4242 (without /api)
    # Admin API token: only the controller and the rollout CLI (they change flags) need it.
    unleash_admin_token: SecretStr | None = None
    controller_interval_s: float = Field(default=10.0, gt=0)
    # Where the controller writes one Markdown runbook per rollout (and alerts/).
    runbooks_dir: Path = Path("runbooks/generated")

    baseline_model: str = "gpt-5.2"
    candidate_model: str = "gpt-5.5"
    models: dict[str, ModelEndpoint] = Field(default_factory=_default_models)

    tap: TapSettings = Field(default_factory=TapSettings)
    replay: ReplaySettings = Field(default_factory=ReplaySettings)
    outcomes: OutcomeSettings = Field(default_factory=OutcomeSettings)
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)

    @model_validator(mode="after")
    def _salt_is_a_secret(self) -> Self:
        # An empty or short salt makes the hashed user ids guessable (hash every email).
        if len(self.stickiness_salt.get_secret_value()) < MIN_SALT_CHARS:
            raise ValueError(
                f"SHADOWCANARY_STICKINESS_SALT must be at least {MIN_SALT_CHARS} characters "
                "(a random string, e.g. from `openssl rand -hex 16`)"
            )
        return self

    @model_validator(mode="after")
    def _unleash_is_reachable(self) -> Self:
        # Only the URL here: the admin token is for what changes flags (the controller
        # asks for it); a service that only evaluates them (the gateway) holds just a
        # client token, so a compromised one cannot change any flag.
        if self.flags == "unleash" and self.unleash_url is None:
            raise ValueError("flags='unleash' needs SHADOWCANARY_UNLEASH_URL")
        return self

    @model_validator(mode="after")
    def _arms_are_configured(self) -> Self:
        for role in ("baseline_model", "candidate_model", "embeddings_model"):
            name = getattr(self, role)
            if name is not None and name not in self.models:
                raise ValueError(
                    f"{role}={name!r} has no endpoint; configured models: {sorted(self.models)}"
                )
        if self.judge.model is not None and self.judge.model not in self.models:
            raise ValueError(
                f"judge.model={self.judge.model!r} has no endpoint; configured models: "
                f"{sorted(self.models)}"
            )
        return self

    def endpoint(self, model: str) -> ModelEndpoint:
        """The endpoint for ``model``, or ``UnknownModel`` naming what is configured."""
        try:
            return self.models[model]
        except KeyError:
            raise UnknownModel(
                f"model {model!r} is not configured (known: {', '.join(sorted(self.models))})",
                hint=f"add it to {ENV_PREFIX}MODELS with its base_url, api_key and prices",
            ) from None

    def cost_usd(
        self,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int | None = None,
    ) -> float:
        """Dollar cost of one call at the configured prices (``ModelEndpoint.cost_usd``)."""
        return self.endpoint(model).cost_usd(prompt_tokens, completion_tokens, cached_tokens)


def _check_unknown_env(environ: Mapping[str, str]) -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for key in environ:
        if not key.upper().startswith(ENV_PREFIX):
            continue
        head = key[len(ENV_PREFIX) :].split("__", 1)[0].upper()
        if head not in fields:
            close = difflib.get_close_matches(head, fields, n=1)
            hint = (
                f"did you mean {ENV_PREFIX}{close[0]}?"
                if close
                else f"known settings: {', '.join(ENV_PREFIX + f for f in sorted(fields))}"
            )
            raise ConfigError(f"unknown setting {key}", hint=hint)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = "__".join(str(p) for p in err["loc"]).upper()
        name = f"{ENV_PREFIX}{loc}" if loc else "settings"
        parts.append(f"{name}: {err['msg']}")
    return "; ".join(parts)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Load and validate settings, raising ``ConfigError`` that names the bad variable."""
    env = os.environ if environ is None else environ
    _check_unknown_env(env)
    try:
        if environ is None:
            return Settings(**overrides)
        # Validate an explicit mapping (tests, subprocess wiring) the same way.
        saved = dict(os.environ)
        try:
            for key in [k for k in os.environ if k.upper().startswith(ENV_PREFIX)]:
                del os.environ[key]
            os.environ.update(environ)
            return Settings(**overrides)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid settings: {_describe(exc)}",
            hint="fix the variable(s) named above; see README 'Configuration'",
        ) from exc
    except SettingsError as exc:
        # A JSON-valued variable that is not JSON; the message names the field, never the
        # value (it may hold API keys).
        raise ConfigError(
            f"invalid settings: {exc} (a variable that takes JSON is not valid JSON)",
            hint="check the quoting of JSON variables such as SHADOWCANARY_MODELS",
        ) from None
