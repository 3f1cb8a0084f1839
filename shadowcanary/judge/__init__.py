"""The judge: pure scoring, anytime-valid sequential statistics and ``decide()``.

Nothing in this package does I/O, reads a clock or draws random numbers.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from shadowcanary.judge.triggers import TriggerResult, Verdict, trigger_alpha
    from shadowcanary.judge.types import CallOutput, Comparison, OutputFlags

# Imported on first use (PEP 562): the value types (``judge.types``) are used
# everywhere; the sequential statistics pull in SciPy, which only deciding needs.
_EXPORTS = {
    "DEFAULT_SCORERS": "shadowcanary.judge.compare",
    "Fields": "shadowcanary.judge.compare",
    "Inspection": "shadowcanary.judge.compare",
    "Scorer": "shadowcanary.judge.compare",
    "ScoringInput": "shadowcanary.judge.compare",
    "assess": "shadowcanary.judge.compare",
    "compare": "shadowcanary.judge.compare",
    "inspect_output": "shadowcanary.judge.compare",
    "output_from_capture": "shadowcanary.judge.compare",
    "paired_difference": "shadowcanary.judge.compare",
    "Check": "shadowcanary.judge.decide",
    "Decision": "shadowcanary.judge.decide",
    "DecisionInputs": "shadowcanary.judge.decide",
    "DecisionKind": "shadowcanary.judge.decide",
    "decide": "shadowcanary.judge.decide",
    "slow_threshold_ms": "shadowcanary.judge.decide",
    "ArmCounts": "shadowcanary.judge.evidence",
    "Bucket": "shadowcanary.judge.evidence",
    "Evidence": "shadowcanary.judge.evidence",
    "Moments": "shadowcanary.judge.evidence",
    "RolloutState": "shadowcanary.judge.evidence",
    "ShadowCounts": "shadowcanary.judge.evidence",
    "SchemaCheck": "shadowcanary.judge.structured",
    "ToolCallCheck": "shadowcanary.judge.structured",
    "ToolProblem": "shadowcanary.judge.structured",
    "check_tool_call": "shadowcanary.judge.structured",
    "json_expected": "shadowcanary.judge.structured",
    "json_valid": "shadowcanary.judge.structured",
    "response_schema_errors": "shadowcanary.judge.structured",
    "tool_args_schema_errors": "shadowcanary.judge.structured",
    "tool_calls_agree": "shadowcanary.judge.structured",
    "cosine_similarity": "shadowcanary.judge.text",
    "exact_match": "shadowcanary.judge.text",
    "length_ratio": "shadowcanary.judge.text",
    "lexical_similarity": "shadowcanary.judge.text",
    "looks_like_refusal": "shadowcanary.judge.text",
    "normalize": "shadowcanary.judge.text",
    "normalized_match": "shadowcanary.judge.text",
    "TriggerResult": "shadowcanary.judge.triggers",
    "Verdict": "shadowcanary.judge.triggers",
    "trigger_alpha": "shadowcanary.judge.triggers",
    "CallOutput": "shadowcanary.judge.types",
    "Comparison": "shadowcanary.judge.types",
    "OutputFlags": "shadowcanary.judge.types",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value  # looked up once
    return value


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
    "tool_args_schema_errors",
    "tool_calls_agree",
    "trigger_alpha",
]
