"""The judge: pure scoring, anytime-valid sequential statistics and ``decide()``.

Nothing in this package does I/O, reads a clock or draws random numbers.
"""

from shadowcanary.judge.compare import (
    DEFAULT_SCORERS,
    Fields,
    Inspection,
    Scorer,
    ScoringInput,
    assess,
    compare,
    inspect_output,
    output_from_capture,
    paired_difference,
)
from shadowcanary.judge.decide import (
    Check,
    Decision,
    DecisionInputs,
    DecisionKind,
    decide,
    slow_threshold_ms,
)
from shadowcanary.judge.evidence import (
    ArmCounts,
    Bucket,
    Evidence,
    Moments,
    RolloutState,
    ShadowCounts,
)
from shadowcanary.judge.structured import (
    SchemaCheck,
    ToolCallCheck,
    ToolProblem,
    check_tool_call,
    json_expected,
    json_valid,
    response_schema_errors,
    tool_args_schema_errors,
    tool_calls_agree,
)
from shadowcanary.judge.text import (
    cosine_similarity,
    exact_match,
    length_ratio,
    lexical_similarity,
    looks_like_refusal,
    normalize,
    normalized_match,
)
from shadowcanary.judge.triggers import TriggerResult, Verdict, step_alpha, trigger_alpha
from shadowcanary.judge.types import CallOutput, Comparison, OutputFlags

__all__ = [
    "DEFAULT_SCORERS",
    "ArmCounts",
    "Bucket",
    "CallOutput",
    "Check",
    "Comparison",
    "Decision",
    "DecisionInputs",
    "DecisionKind",
    "Evidence",
    "Fields",
    "Inspection",
    "Moments",
    "OutputFlags",
    "RolloutState",
    "SchemaCheck",
    "Scorer",
    "ScoringInput",
    "ShadowCounts",
    "ToolCallCheck",
    "ToolProblem",
    "TriggerResult",
    "Verdict",
    "assess",
    "check_tool_call",
    "compare",
    "cosine_similarity",
    "decide",
    "exact_match",
    "inspect_output",
    "json_expected",
    "json_valid",
    "length_ratio",
    "lexical_similarity",
    "looks_like_refusal",
    "normalize",
    "normalized_match",
    "output_from_capture",
    "paired_difference",
    "response_schema_errors",
    "slow_threshold_ms",
    "step_alpha",
    "tool_args_schema_errors",
    "tool_calls_agree",
    "trigger_alpha",
]
