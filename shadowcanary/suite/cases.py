"""The values of an offline compatibility suite: cases and what each expects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shadowcanary.events import ModelRequest
from shadowcanary.judge.structured import JSON_RESPONSE_FORMATS, response_format_type
from shadowcanary.judge.types import CallOutput


class MatchMode(StrEnum):
    """How an answer is compared with the case's expected output."""

    EXACT = "exact"  # byte for byte
    NORMALIZED = "normalized"  # after the judge's normalisation (case, punctuation, spaces)
    JSON = "json"  # both parse as JSON and are equal (key order ignored)


@dataclass(frozen=True, slots=True)
class Expectations:
    """What a case asks of an answer, on top of the judge's own checks."""

    output: str | None = None
    match: MatchMode = MatchMode.NORMALIZED
    # Lexical similarity to the baseline's answer the candidate must reach (0..1).
    min_similarity: float | None = None
    # JSON schema the answer's text must satisfy.
    schema: Mapping[str, Any] | None = None
    # A tool the answer must call.
    tool: str | None = None


@dataclass(frozen=True, slots=True)
class SuiteCase:
    """One prompt of the suite, with where it came from and what it expects."""

    case_id: str
    request: ModelRequest
    expect: Expectations
    source: str  # "prompts.csv line 12" or "capture 3f2a...": points a person at it
    # The live baseline answer when the case is a captured call: the baseline arm then
    # is this recording, and only the candidate is called.
    recorded_baseline: CallOutput | None = None

    @property
    def schema_case(self) -> bool:
        """The answer must satisfy a JSON schema (the case's or the response_format's)."""
        return self.expect.schema is not None or response_format_type(self.request) == "json_schema"

    @property
    def structured(self) -> bool:
        """The answer must be JSON or a tool call: the validity rate applies."""
        return (
            self.schema_case
            or response_format_type(self.request) in JSON_RESPONSE_FORMATS
            or bool(self.request.tools)
            or self.expect.tool is not None
        )
