"""The one interface every flag backend implements, and the values it speaks in.

The flag is the system of record for who gets the candidate: a ``flexibleRollout``
strategy whose ``rollout`` parameter is the canary percentage, sticky on the user or
conversation id, with a variant whose payload names the candidate model. Unleash
holds it in production (and its UI is where SREs act); the embedded backend keeps
the same feature JSON in Postgres and evaluates it with the same engine.

Reads fail closed for the controller: an unreachable backend raises
``ServiceUnavailable`` (the controller HOLDs), never a guessed value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

Stickiness = Literal["userId", "conversationId"]


def evaluation_context(stickiness_value: str, **static: str) -> dict[str, Any]:
    """The Unleash context for a stickiness value, offered under every stickiness field.

    The router already chose which id to route on; naming it both ``userId`` and
    ``conversationId`` means the flag's own stickiness setting always finds it (a
    missing field would make flexibleRollout fall back to random, i.e. not sticky).
    """
    return {
        **static,
        "userId": stickiness_value,
        "properties": {"conversationId": stickiness_value},
    }


@dataclass(frozen=True, slots=True)
class FlagSpec:
    """What a rollout needs its flag to be when it is created."""

    name: str
    project: str
    environment: str
    stickiness: Stickiness
    baseline_model: str
    candidate_model: str


@dataclass(frozen=True, slots=True)
class FlagState:
    """The flag as the backend reports it now."""

    name: str
    environment: str
    enabled: bool  # the flag is on in this environment
    rollout_percent: int  # the flexibleRollout strategy's percentage, 0..100
    stickiness: str
    candidate_model: str | None  # from the variant payload, if any
    strategy_id: str | None = None

    @property
    def effective_percent(self) -> int:
        """Share of users who get the candidate: 0 when the flag is off."""
        return self.rollout_percent if self.enabled else 0


@dataclass(frozen=True, slots=True)
class FlagChange:
    """Who last changed a flag, from the flag server's own event log."""

    who: str  # Unleash's createdBy: a user's e-mail or name, or an API token's name
    at: str  # when, as the server reports it (ISO 8601)
    kind: str  # the server's event type, e.g. feature-strategy-updated
    # The change was made under the same identity as shadowcanary's own writes (its
    # admin token is a person's): whether it was a person cannot be told apart.
    same_identity_as_shadowcanary: bool = False

    def describe(self) -> str:
        text = f"{self.who} ({self.kind} at {self.at}, Unleash event log)"
        if self.same_identity_as_shadowcanary:
            text += (
                "; shadowcanary writes under the same Unleash identity, so this may not be "
                "a person: give shadowcanary an admin token of its own"
            )
        return text


class FlagBackend(Protocol):
    """Create, read and change a rollout flag. One implementation per backend module."""

    def ensure_flag(self, spec: FlagSpec) -> FlagState:
        """Create the flag and its strategy (at 0 %) if missing; return its state.

        An existing flag is left as it is (never reset): a restart must not undo a
        rollout in progress or an SRE's change.
        """
        ...

    def read(self, flag: str) -> FlagState:
        """The flag's current state. Raises FlagNotFound, ServiceUnavailable."""
        ...

    def set_rollout(self, flag: str, percent: int) -> FlagState:
        """Set the rollout percentage (0..100) and make sure the flag is on."""
        ...

    def disable(self, flag: str) -> FlagState:
        """Roll back: rollout 0 % and the flag off, so every user gets the baseline."""
        ...

    def last_change(self, flag: str) -> FlagChange | None:
        """Who made the newest change to the flag in this environment (None: unknown)."""
        ...


class FlagEvaluator(Protocol):
    """Per-request evaluation: is this user (or conversation) in the canary?"""

    def candidate_for(self, flag: str, stickiness_value: str | None) -> str | None:
        """The candidate model for this user if they are in the canary, else None."""
        ...
