"""A synthetic traffic generator for the local stack and the demo.

It plays a product's live traffic: many users, a mix of chat, JSON extraction and
tool-using requests, some with PII in them (so redaction is visible end to end).
Each user is pinned to one arm by a hash of their id (what the flag will do), and
every call goes through the tapped OpenAI client, exactly as a service would.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

from shadowcanary.events import Arm

_TOPICS = (
    "resetting a password",
    "a late delivery",
    "a double charge on my card",
    "exporting my data",
    "upgrading my plan",
    "an API timeout",
    "a broken invoice PDF",
    "two-factor login",
    "a refund for order 1182",
    "deleting my account",
    "slow search results",
    "webhook retries",
)
_CODE_TASKS = (
    "reverse a linked list in Python",
    "debounce a function in TypeScript",
    "parse ISO dates in Go",
    "write a SQL query for the top 5 customers by revenue",
    "explain a race condition in this counter",
    "add retries with backoff to an HTTP call",
)
_NAMES = ("Ana", "Bo", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jun")

_ORDER_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Look up an order by id",
        "parameters": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string"},
                "include_items": {"type": "boolean"},
            },
            "required": ["order_id"],
            "additionalProperties": False,
        },
    },
}


@dataclass(frozen=True, slots=True)
class TrafficCall:
    """One call the generator will make: who makes it and what they send."""

    user_id: str
    route: str
    kwargs: dict[str, Any]


def arm_for_user(user_id: str, canary_percent: float) -> Arm:
    """Pin a user to an arm the way a percentage rollout does: stable per user."""
    bucket = int.from_bytes(hashlib.blake2b(user_id.encode(), digest_size=4).digest()) % 10_000
    return Arm.CANDIDATE if bucket < canary_percent * 100 else Arm.BASELINE


class TrafficMix:
    """Draws realistic calls from a seeded RNG (reproducible runs)."""

    def __init__(self, *, seed: int = 7, users: int = 500) -> None:
        self._rng = random.Random(seed)
        self._users = [f"user-{i:05d}" for i in range(users)]

    def next_call(self) -> TrafficCall:
        rng = self._rng
        user = rng.choice(self._users)
        kind = rng.random()
        if kind < 0.45:
            return TrafficCall(user, "support", self._support(rng))
        if kind < 0.65:
            return TrafficCall(user, "coding", self._coding(rng))
        if kind < 0.85:
            return TrafficCall(user, "extraction", self._extraction(rng))
        return TrafficCall(user, "orders", self._tool_use(rng))

    @staticmethod
    def _support(rng: random.Random) -> dict[str, Any]:
        name = rng.choice(_NAMES)
        topic = rng.choice(_TOPICS)
        contact = ""
        if rng.random() < 0.3:
            # PII on purpose: it must never leave the service unredacted.
            email = f"{name.lower()}{rng.randint(1, 99)}@example.com"
            contact = f" You can reach me at {email} or +1 415 555 {rng.randint(1000, 9999)}."
        return {
            "messages": [
                {"role": "system", "content": "You are a concise, friendly support agent."},
                {"role": "user", "content": f"Hi, I'm {name}. I need help with {topic}.{contact}"},
            ],
            "temperature": 0.2,
            "max_tokens": 300,
        }

    @staticmethod
    def _coding(rng: random.Random) -> dict[str, Any]:
        return {
            "messages": [{"role": "user", "content": f"Show me how to {rng.choice(_CODE_TASKS)}."}],
            "max_tokens": 600,
        }

    @staticmethod
    def _extraction(rng: random.Random) -> dict[str, Any]:
        name = rng.choice(_NAMES)
        return {
            "messages": [
                {"role": "system", "content": "Extract the fields as JSON: name, topic, urgency."},
                {"role": "user", "content": f"{name} writes about {rng.choice(_TOPICS)}; urgent."},
            ],
            "response_format": {"type": "json_object"},
            "max_tokens": 200,
        }

    @staticmethod
    def _tool_use(rng: random.Random) -> dict[str, Any]:
        return {
            "messages": [
                {"role": "user", "content": f"Where is my order A-{rng.randint(10000, 99999)}?"},
            ],
            "tools": [_ORDER_TOOL],
            "tool_choice": "auto",
            "max_tokens": 200,
        }
