"""The one error tree of shadowcanary.

Every error a user or operator can see derives from ``ShadowCanaryError``. The split
that matters is whether a retry can fix it::

    ShadowCanaryError
    ├── TransientError            a retry may succeed: back off and try again
    │   ├── UpstreamTimeout       the model API did not answer in time
    │   ├── UpstreamRateLimited   HTTP 429; carries Retry-After when the server sent it
    │   ├── UpstreamUnavailable   HTTP 5xx or connection refused/reset
    │   └── ServiceUnavailable    our own Redis / Postgres / Unleash is unreachable
    └── PermanentError            retrying the same input gives the same answer
        ├── ConfigError           bad or unknown setting; names the variable
        ├── InvalidEvent          an event failed validation; names the field
        ├── PayloadTooLarge       an event or body over the configured limit
        ├── UnknownModel          a model name that no endpoint is configured for
        ├── UpstreamRejected      HTTP 4xx other than 429 (bad request, auth, ...)
        ├── NotReplayable         a captured call that cannot be sent again as it was
        ├── BudgetExhausted       today's shadow budget is spent; replays stop
        ├── FlagNotFound          the feature flag (or its strategy) does not exist
        └── FlagRejected          the flag service refused a change (auth, validation)

``PlanError`` (shadowcanary.plan) is a ``ConfigError`` for rollout plan files.

User-facing messages say what was wrong and how to fix it (``hint``).
"""

from __future__ import annotations


class ShadowCanaryError(Exception):
    """Root of every shadowcanary error."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class TransientError(ShadowCanaryError):
    """A retry may succeed."""


class UpstreamTimeout(TransientError):
    """The model API did not answer in time."""


class UpstreamRateLimited(TransientError):
    """The model API answered 429."""

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_s = retry_after_s


class UpstreamUnavailable(TransientError):
    """The model API answered 5xx or the connection failed."""


class ServiceUnavailable(TransientError):
    """Redis, Postgres or Unleash is unreachable."""


class PermanentError(ShadowCanaryError):
    """Retrying the same input gives the same answer."""


class ConfigError(PermanentError):
    """A setting is missing, unknown or invalid."""


class InvalidEvent(PermanentError):
    """An event failed validation at a boundary."""


class PayloadTooLarge(PermanentError):
    """An event or request body is over the configured limit."""


class UnknownModel(PermanentError):
    """No endpoint is configured for a model name."""


class UpstreamRejected(PermanentError):
    """The model API refused the request (4xx other than 429)."""


class NotReplayable(PermanentError):
    """A captured call that cannot be sent to the candidate as it was; the message says why
    (e.g. a ``previous_response_id`` whose earlier turns were not captured)."""


class BudgetExhausted(PermanentError):
    """Today's shadow budget (tokens or dollars) is spent."""


class FlagNotFound(PermanentError):
    """The feature flag, its environment or its rollout strategy does not exist."""


class FlagRejected(PermanentError):
    """The flag service refused a read or change (bad token, validation error)."""
