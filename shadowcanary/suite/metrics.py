"""What the suite measures and the gate's default limits: plain values, cheap to import.

The ``compare`` command's options show these defaults, and every command's start-up
builds those options: they must not pull in the scorers and statistics (SciPy).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class Metric(StrEnum):
    """What the suite measures per case and arm."""

    SUCCESS = "success"  # calls answered without an API error
    VALID = "valid"  # JSON / tool call / schema valid (structured cases)
    CLEAN = "clean"  # not empty, truncated or a refusal
    EXPECTED = "expected"  # matches the expected output (cases that give one)
    TOOL = "tool"  # called the expected tool (cases that name one)
    SIMILARITY = "similarity"  # lexical similarity to the baseline's reference answer
    LATENCY_MS = "latency_ms"
    COST_USD = "cost_usd"

    @property
    def higher_is_better(self) -> bool:
        return self not in (Metric.LATENCY_MS, Metric.COST_USD)


DEFAULT_MAX_DROPS: Mapping[Metric, float] = MappingProxyType(
    {
        Metric.SUCCESS: 0.02,
        Metric.VALID: 0.02,
        Metric.CLEAN: 0.05,
        Metric.EXPECTED: 0.05,
        Metric.TOOL: 0.05,
        Metric.SIMILARITY: 0.10,
    }
)
