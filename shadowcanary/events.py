"""The captured-call record: THE contract between tap, gateway, workers and store.

One ``CapturedCall`` describes one live model call as a service saw it: which arm of
the rollout served it, what was asked, what came back, how long it took. It travels
as JSON inside Celery messages and is validated again at every boundary
(``parse_event``), so a malformed event is rejected with the field and the reason and
never reaches the store.

``SCHEMA_VERSION`` is bumped on any incompatible change; readers reject versions
they do not know rather than guess.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from shadowcanary.errors import InvalidEvent, PayloadTooLarge

SCHEMA_VERSION: Final = 1
DEFAULT_MAX_EVENT_BYTES = 1_000_000
# Far above any real call, far below Postgres' BIGINT: a bigger count is a broken emitter.
MAX_TOKENS = 1_000_000_000

Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\w.:/@+-]+$")]


class Arm(StrEnum):
    """Which side of the rollout served a live call."""

    BASELINE = "baseline"
    CANDIDATE = "candidate"


class CallStatus(StrEnum):
    """Outcome class of a call, as the caller saw it."""

    OK = "ok"
    ERROR = "error"  # the API answered with an error (4xx/5xx)
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    CANCELLED = "cancelled"  # the caller gave up (e.g. closed the stream early)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContentPart(_Wire):
    """One part of a multimodal message (OpenAI chat format)."""

    type: Literal["text", "image_url", "input_audio", "file", "refusal"]
    text: str | None = None
    image_url: dict[str, JsonValue] | None = None
    input_audio: dict[str, JsonValue] | None = None
    file: dict[str, JsonValue] | None = None
    refusal: str | None = None

    @model_validator(mode="after")
    def _payload_matches_type(self) -> ContentPart:
        if getattr(self, self.type) is None:
            raise ValueError(f"a '{self.type}' part needs a '{self.type}' field")
        return self


class ToolCall(_Wire):
    """A function call the model asked for. Recorded, never executed by shadowcanary."""

    id: str = Field(default="", max_length=200)
    name: str = Field(min_length=1, max_length=200)
    # Raw JSON text as the model produced it: it may be invalid, and that is a finding.
    arguments: str = ""


class ChatMessage(_Wire):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None

    def text(self) -> str:
        """The text of this message, multimodal parts reduced to their text."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text or p.refusal or "" for p in self.content)


class ToolDefinition(_Wire):
    """A function the caller offered the model, with its JSON-schema parameters."""

    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    parameters: dict[str, JsonValue] = Field(default_factory=dict)


class ModelRequest(_Wire):
    """What a live call asked, in chat form, plus everything else it sent.

    ``api="responses"``: a Responses API call. ``parameters`` then holds the request
    body as sent (``input`` items, ``instructions``, ``tools`` with built-in ones,
    ``text.format``, ``reasoning``, ``store``, ``previous_response_id``, ...), which is
    what a replay sends; ``messages`` and ``tools`` are its chat-form view for the
    scorers and reports. When the call continued a conversation with
    ``previous_response_id`` and the capturing process had seen that conversation, its
    earlier turns (never sent by this call) are the first ``context_messages`` messages.
    """

    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ToolDefinition] = Field(default_factory=list)
    # Everything else sent to the API: temperature, max_tokens, response_format, ...
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    api: Literal["chat.completions", "responses"] = "chat.completions"
    context_messages: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _context_fits(self) -> ModelRequest:
        if self.context_messages >= len(self.messages):
            raise ValueError("context_messages must leave at least one message of the call")
        if self.context_messages and self.api != "responses":
            raise ValueError("context_messages is for Responses calls (previous_response_id)")
        return self


class ModelResponse(_Wire):
    text: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    finish_reason: (
        Literal["stop", "length", "tool_calls", "content_filter", "function_call"] | None
    ) = None
    refusal: str | None = None


class CapturedCall(_Wire):
    """One live model call, captured by the tap or the gateway."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Annotated[str, StringConstraints(min_length=8, max_length=128, pattern=r"^[\w.:-]+$")]
    started_at: datetime
    ended_at: datetime
    route: Name = "default"
    tenant: Name = "default"
    # The rollout (flag) this call belongs to; None for traffic outside any rollout.
    rollout: Name | None = None
    arm: Arm = Arm.BASELINE
    model: Name
    request: ModelRequest
    response: ModelResponse | None = None
    latency_ms: float = Field(ge=0, le=3_600_000)
    ttft_ms: float | None = Field(default=None, ge=0, le=3_600_000)
    status: CallStatus = CallStatus.OK
    error_class: str | None = Field(default=None, max_length=200)
    http_status: int | None = Field(default=None, ge=100, le=599)
    prompt_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    completion_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    # Of the prompt tokens, those served from the provider's prompt cache (billed at the
    # cached-input price); of the completion tokens, those spent reasoning.
    cached_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    reasoning_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    # The token counts are an estimate (a stream without usage), not the provider's.
    tokens_estimated: bool = False
    # HMAC of the user or conversation id (never the raw id): see hash_stickiness_key.
    stickiness_key: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16,64}$")] | None = None

    @field_validator("started_at", "ended_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a timezone (use UTC, e.g. '...Z')")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _consistent(self) -> CapturedCall:
        if self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        if self.status is CallStatus.OK and self.response is None:
            raise ValueError("status 'ok' needs a response")
        if self.ttft_ms is not None and self.ttft_ms > self.latency_ms:
            raise ValueError("ttft_ms cannot exceed latency_ms")
        return self

    @property
    def is_failure(self) -> bool:
        return self.status is not CallStatus.OK

    def prompt_text(self) -> str:
        return "\n".join(m.text() for m in self.request.messages)


# The salt every process uses when none is configured (``Settings.stickiness_salt``). Tap,
# gateway and router must hash with the same salt or one user lands in different arms.
DEV_SALT = "shadowcanary-dev-salt"


def hash_stickiness_key(raw_id: str, salt: str) -> str:
    """Keyed hash of a user or conversation id: stable per deployment, not reversible."""
    return hmac.new(salt.encode(), raw_id.encode(), hashlib.sha256).hexdigest()[:32]


def now_utc() -> datetime:
    return datetime.now(UTC)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "<event>"
        parts.append(f"{loc}: {err['msg']}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_event(
    raw: bytes | str | dict[str, Any], *, max_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> CapturedCall:
    """Validate one event from the wire.

    Raises:
        PayloadTooLarge: the serialized event is over ``max_bytes``.
        InvalidEvent: anything else wrong; the message names the field and why.
    """
    if isinstance(raw, dict):
        version = raw.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise InvalidEvent(
                f"schema_version {version!r} is not supported (this reader knows {SCHEMA_VERSION})",
                hint="upgrade the reader or emit with a matching shadowcanary version",
            )
        size, unencodable = _wire_size(raw)
    else:
        size, unencodable = len(raw), None
    if size > max_bytes:
        raise PayloadTooLarge(
            f"event is {size} bytes, over the {max_bytes}-byte limit",
            hint="raise SHADOWCANARY_TAP__MAX_EVENT_BYTES or trim attachments before emitting",
        )
    event_id = raw.get("event_id") if isinstance(raw, dict) else None
    prefix = f"event {event_id[:128]!r}" if isinstance(event_id, str) else "event"
    try:
        if isinstance(raw, dict):
            event = CapturedCall.model_validate(raw)
        else:
            event = CapturedCall.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidEvent(
            f"{prefix} is invalid: {_describe(exc)}",
            hint="see shadowcanary/events.py for the CapturedCall contract",
        ) from exc
    if unencodable is not None:
        # Valid field by field, yet not storable: e.g. a lone surrogate (half a UTF-16
        # pair), which no UTF-8 store or JSON encoder of ours accepts.
        raise InvalidEvent(
            f"{prefix} is invalid: it cannot be encoded as UTF-8 JSON ({unencodable})",
            hint="emit text as valid Unicode (no lone surrogates) and at most 250 levels deep",
        )
    return event


def _wire_size(raw: dict[str, Any]) -> tuple[int, str | None]:
    """Compact JSON size (the tap's measure) and, if orjson cannot encode it, why not."""
    try:
        return len(orjson.dumps(raw, default=str)), None
    except (TypeError, orjson.JSONEncodeError) as exc:
        # The stdlib encoder escapes what orjson refuses, so the size limit still holds.
        try:
            return len(json.dumps(raw, default=str)), str(exc)
        except (RecursionError, ValueError):
            return 0, str(exc)
