"""The simulator's view of a request: what was asked, independent of the API shape.

Chat Completions and Responses requests both become a ``SimPrompt``; the simulated
answer is a pure function of (profile, ``SimPrompt``), so the same question asked
through either API gets the same answer.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shadowcanary.sim.vocabulary import STOP_WORDS

# Token counts are approximate: one token per 4 characters (OpenAI's rule of thumb).
CHARS_PER_TOKEN = 4
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")


class OutputFormat(StrEnum):
    """What shape of answer the request asked for."""

    TEXT = "text"
    JSON_OBJECT = "json_object"
    JSON_SCHEMA = "json_schema"


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function tool offered to the model (never executed by the simulator)."""

    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SimPrompt:
    """One request, normalised. ``tool_choice`` is None/"auto", "none", "required" or a name."""

    messages: tuple[tuple[str, str], ...]
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str | None = None
    output_format: OutputFormat = OutputFormat.TEXT
    json_schema: dict[str, Any] | None = None
    max_tokens: int | None = None
    # Digest of everything that decides the answer (``max_tokens`` excluded).
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        canonical = json.dumps(
            [
                self.messages,
                [[t.name, t.parameters] for t in self.tools],
                self.tool_choice,
                self.output_format.value,
                self.json_schema,
            ],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        digest = hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()
        object.__setattr__(self, "key", digest)

    @property
    def last_role(self) -> str:
        return self.messages[-1][0] if self.messages else "user"

    def last_user_text(self) -> str:
        for role, text in reversed(self.messages):
            if role == "user":
                return text
        return ""

    def topic_words(self, limit: int = 6) -> list[str]:
        """Content words of the last user message, to make answers look on-topic."""
        seen: list[str] = []
        for match in _WORD.finditer(self.last_user_text()):
            word = match.group(0).lower()
            if word not in STOP_WORDS and word not in seen:
                seen.append(word)
                if len(seen) == limit:
                    break
        return seen

    def prompt_tokens(self) -> int:
        """Approximate input tokens: characters / 4, plus 3 per message of framing."""
        chars = sum(len(text) for _, text in self.messages)
        chars += sum(len(t.name) + len(json.dumps(t.parameters)) for t in self.tools)
        return count_tokens_chars(chars) + 3 * len(self.messages)


# Reasoning tokens spent per effort (before the profile's ``reasoning_scale``); billed
# as output tokens and reported in ``output_tokens_details.reasoning_tokens``.
REASONING_TOKENS = {"none": 0, "minimal": 16, "low": 64, "medium": 192, "high": 512, "xhigh": 1024}


def reasoning_tokens(effort: str | None, scale: float) -> int:
    """Reasoning tokens a call with ``effort`` spends on a profile with ``scale``."""
    return round(REASONING_TOKENS.get(effort or "none", 0) * scale)


def count_tokens(text: str | None) -> int:
    """Approximate tokens of ``text`` (ceil of characters / 4)."""
    return count_tokens_chars(len(text)) if text else 0


def count_tokens_chars(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)
