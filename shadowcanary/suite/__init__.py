"""Offline compatibility suite: a set of prompts run against baseline and candidate.

The "prompt compatibility test harness" of the migration guides, scored by the same
judge as live shadow traffic, with paired statistics and a pass/fail gate for CI::

    cases = load_suite(Path("prompts.csv"))            # or cases_from_captures(...)
    results = asyncio.run(run_cases(cases, settings=settings, baseline="gpt-5.2",
                                    candidate="gpt-5.5", repeats=3, concurrency=8))
    report = build_report(cases, results, source="prompts.csv", baseline="gpt-5.2",
                          candidate="gpt-5.5", repeats=3, policy=GatePolicy(),
                          seed=0, confidence=0.95)
    report.gate.passed
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shadowcanary.suite.captures import (
        cases_from_captures,
        load_capture_cases,
        parse_since,
    )
    from shadowcanary.suite.cases import Expectations, MatchMode, SuiteCase
    from shadowcanary.suite.gate import (
        CheckStatus,
        GateCheck,
        GatePolicy,
        GateResult,
        evaluate_gate,
    )
    from shadowcanary.suite.loader import SuiteFileError, load_suite
    from shadowcanary.suite.metrics import DEFAULT_MAX_DROPS, Metric
    from shadowcanary.suite.report import SuiteReport, build_report, render_report, report_json
    from shadowcanary.suite.runner import (
        CallResult,
        SuiteArm,
        planned_calls,
        require_answers,
        run_cases,
    )
    from shadowcanary.suite.scoring import ArmScore, CaseScore, score_case, score_cases
    from shadowcanary.suite.stats import (
        MeanInterval,
        PairedStat,
        bootstrap_mean,
        paired_stat,
        wilcoxon_p_value,
    )
    from shadowcanary.suite.summary import MetricResult, summarise

# Imported on first use (PEP 562): the suite's statistics pull in SciPy, which every
# `shadowcanary` command would otherwise pay for at start-up.
_EXPORTS = {
    "ArmScore": "shadowcanary.suite.scoring",
    "CallResult": "shadowcanary.suite.runner",
    "CaseScore": "shadowcanary.suite.scoring",
    "CheckStatus": "shadowcanary.suite.gate",
    "DEFAULT_MAX_DROPS": "shadowcanary.suite.metrics",
    "Expectations": "shadowcanary.suite.cases",
    "GateCheck": "shadowcanary.suite.gate",
    "GatePolicy": "shadowcanary.suite.gate",
    "GateResult": "shadowcanary.suite.gate",
    "MatchMode": "shadowcanary.suite.cases",
    "MeanInterval": "shadowcanary.suite.stats",
    "Metric": "shadowcanary.suite.metrics",
    "MetricResult": "shadowcanary.suite.summary",
    "PairedStat": "shadowcanary.suite.stats",
    "SuiteArm": "shadowcanary.suite.runner",
    "SuiteCase": "shadowcanary.suite.cases",
    "SuiteFileError": "shadowcanary.suite.loader",
    "SuiteReport": "shadowcanary.suite.report",
    "bootstrap_mean": "shadowcanary.suite.stats",
    "build_report": "shadowcanary.suite.report",
    "cases_from_captures": "shadowcanary.suite.captures",
    "evaluate_gate": "shadowcanary.suite.gate",
    "load_capture_cases": "shadowcanary.suite.captures",
    "load_suite": "shadowcanary.suite.loader",
    "paired_stat": "shadowcanary.suite.stats",
    "parse_since": "shadowcanary.suite.captures",
    "planned_calls": "shadowcanary.suite.runner",
    "render_report": "shadowcanary.suite.report",
    "report_json": "shadowcanary.suite.report",
    "require_answers": "shadowcanary.suite.runner",
    "run_cases": "shadowcanary.suite.runner",
    "score_case": "shadowcanary.suite.scoring",
    "score_cases": "shadowcanary.suite.scoring",
    "summarise": "shadowcanary.suite.summary",
    "wilcoxon_p_value": "shadowcanary.suite.stats",
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
    "DEFAULT_MAX_DROPS",
    "ArmScore",
    "CallResult",
    "CaseScore",
    "CheckStatus",
    "Expectations",
    "GateCheck",
    "GatePolicy",
    "GateResult",
    "MatchMode",
    "MeanInterval",
    "Metric",
    "MetricResult",
    "PairedStat",
    "SuiteArm",
    "SuiteCase",
    "SuiteFileError",
    "SuiteReport",
    "bootstrap_mean",
    "build_report",
    "cases_from_captures",
    "evaluate_gate",
    "load_capture_cases",
    "load_suite",
    "paired_stat",
    "parse_since",
    "planned_calls",
    "render_report",
    "report_json",
    "require_answers",
    "run_cases",
    "score_case",
    "score_cases",
    "summarise",
    "wilcoxon_p_value",
]
