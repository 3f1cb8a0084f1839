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

from shadowcanary.suite.captures import (
    cases_from_captures,
    load_capture_cases,
    parse_since,
)
from shadowcanary.suite.cases import Expectations, MatchMode, SuiteCase
from shadowcanary.suite.gate import (
    DEFAULT_MAX_DROPS,
    CheckStatus,
    GateCheck,
    GatePolicy,
    GateResult,
    evaluate_gate,
)
from shadowcanary.suite.loader import SuiteFileError, load_suite
from shadowcanary.suite.report import SuiteReport, build_report, render_report, report_json
from shadowcanary.suite.runner import (
    CallResult,
    SuiteArm,
    planned_calls,
    require_answers,
    run_cases,
)
from shadowcanary.suite.scoring import ArmScore, CaseScore, Metric, score_case, score_cases
from shadowcanary.suite.stats import (
    MeanInterval,
    PairedStat,
    bootstrap_mean,
    paired_stat,
    wilcoxon_p_value,
)
from shadowcanary.suite.summary import MetricResult, summarise

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
