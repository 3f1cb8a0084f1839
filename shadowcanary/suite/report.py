"""The suite's result: scores, statistics and gate together, as JSON or rich tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from shadowcanary.suite.cases import SuiteCase
from shadowcanary.suite.gate import CheckStatus, GatePolicy, GateResult, evaluate_gate
from shadowcanary.suite.metrics import Metric
from shadowcanary.suite.runner import CallResult, SuiteArm
from shadowcanary.suite.scoring import ArmScore, CaseScore, score_cases
from shadowcanary.suite.summary import MetricResult, summarise

_SHOWN_CASES = 20
_STATUS_STYLE = {
    CheckStatus.PASS: "[green]pass[/]",
    CheckStatus.FAIL: "[bold red]FAIL[/]",
    CheckStatus.SKIPPED: "[dim]skipped[/]",
}


@dataclass(frozen=True, slots=True)
class SuiteReport:
    """Everything one suite run established."""

    source: str
    baseline: str
    candidate: str
    repeats: int
    calls: int  # model calls made (recorded baselines not included)
    failed_calls: dict[str, int]  # per arm
    scores: tuple[CaseScore, ...]
    metrics: tuple[MetricResult, ...]
    gate: GateResult

    @property
    def failing_cases(self) -> list[CaseScore]:
        return [score for score in self.scores if score.problems]


def build_report(
    cases: Sequence[SuiteCase],
    results: Sequence[CallResult],
    *,
    source: str,
    baseline: str,
    candidate: str,
    repeats: int,
    policy: GatePolicy,
    seed: int,
    confidence: float,
) -> SuiteReport:
    """Score the calls, compute each metric's statistics and apply the gate."""
    scores = score_cases(cases, results)
    metrics = summarise(scores, seed=seed, confidence=confidence)
    recorded = sum(1 for case in cases if case.recorded_baseline is not None)
    return SuiteReport(
        source=source,
        baseline=baseline,
        candidate=candidate,
        repeats=repeats,
        calls=len(results) - recorded,
        failed_calls={
            arm.value: sum(1 for r in results if r.arm is arm and r.output is None)
            for arm in SuiteArm
        },
        scores=tuple(scores),
        metrics=tuple(metrics),
        gate=evaluate_gate(scores, metrics, policy),
    )


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 6)


def _metric_json(result: MetricResult) -> dict[str, Any]:
    data: dict[str, Any] = {
        "metric": result.metric.value,
        "higher_is_better": result.metric.higher_is_better,
        "cases": result.cases,
    }
    if result.paired is not None:
        stat, interval = result.paired, result.paired.difference
        data |= {
            "pairs": stat.n,
            "baseline_mean": _number(stat.baseline_mean),
            "candidate_mean": _number(stat.candidate_mean),
            "difference": _number(interval.mean),
            "ci_low": _number(interval.low),
            "ci_high": _number(interval.high),
            "confidence": interval.confidence,
            "wilcoxon_p": _number(stat.p_value),
        }
    elif result.candidate_only is not None:
        alone = result.candidate_only
        data |= {
            "pairs": 0,
            "candidate_mean": _number(alone.mean),
            "ci_low": _number(alone.low),
            "ci_high": _number(alone.high),
            "confidence": alone.confidence,
        }
    return data


def _arm_json(arm: ArmScore) -> dict[str, Any]:
    return {
        "calls": arm.calls,
        "failed": arm.failed,
        "values": {metric.value: _number(v) for metric, v in arm.values.items()},
        "errors": list(arm.errors),
        "notes": list(arm.notes),
    }


def report_json(report: SuiteReport) -> dict[str, Any]:
    """The report as plain JSON data (no NaN: missing figures are null)."""
    return {
        "passed": report.gate.passed,
        "source": report.source,
        "baseline": report.baseline,
        "candidate": report.candidate,
        "repeats": report.repeats,
        "cases": len(report.scores),
        "calls": report.calls,
        "failed_calls": report.failed_calls,
        "metrics": [_metric_json(m) for m in report.metrics],
        "gate": [
            {
                "check": c.name,
                "status": c.status.value,
                "observed": _number(c.observed),
                "limit": c.limit,
                "detail": c.detail,
            }
            for c in report.gate.checks
        ],
        "case_results": [
            {
                "id": s.case.case_id,
                "source": s.case.source,
                "problems": list(s.problems),
                "baseline": _arm_json(s.baseline),
                "candidate": _arm_json(s.candidate),
            }
            for s in report.scores
        ],
    }


def _fmt(value: float | None, metric: Metric) -> str:
    if value is None or math.isnan(value):
        return "-"
    if metric is Metric.LATENCY_MS:
        return f"{value:,.0f} ms"
    if metric is Metric.COST_USD:
        return f"${value:.6f}"
    return f"{value:.3f}"


def _metrics_table(report: SuiteReport) -> Table:
    table = Table(title="Candidate vs baseline, paired per case", title_justify="left")
    for column in ("metric", "cases", "baseline", "candidate", "Δ (CI)", "Wilcoxon p"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for result in report.metrics:
        metric = result.metric
        if result.paired is not None:
            stat, interval = result.paired, result.paired.difference
            delta = (
                f"{_fmt(interval.mean, metric)} "
                f"[{_fmt(interval.low, metric)}, {_fmt(interval.high, metric)}]"
            )
            row = (
                _fmt(stat.baseline_mean, metric),
                _fmt(stat.candidate_mean, metric),
                delta,
                f"{stat.p_value:.3g}",
            )
        else:
            row = ("-", _fmt(result.candidate_mean, metric), "-", "-")
        table.add_row(metric.value, str(result.cases), *row)
    return table


def _gate_table(gate: GateResult) -> Table:
    table = Table(title="Gate", title_justify="left")
    for column in ("check", "result", "observed", "limit", "detail"):
        table.add_column(column)
    for check in gate.checks:
        observed = "-" if check.observed is None else f"{check.observed:.3g}"
        table.add_row(
            check.name, _STATUS_STYLE[check.status], observed, f"{check.limit:.3g}", check.detail
        )
    return table


def _cases_table(failing: Sequence[CaseScore]) -> Table:
    table = Table(title="Cases where the candidate falls short", title_justify="left")
    table.add_column("case")
    table.add_column("source")
    table.add_column("problems")
    for score in failing[:_SHOWN_CASES]:
        table.add_row(score.case.case_id, score.case.source, "\n".join(score.problems))
    if len(failing) > _SHOWN_CASES:
        table.caption = f"and {len(failing) - _SHOWN_CASES} more (see --json)"
    return table


def render_report(report: SuiteReport, console: Console) -> None:
    """Tables for a person: metrics, gate checks, failing cases, then the verdict."""
    failed = report.failed_calls
    console.print(
        f"[bold]{report.source}[/]: {len(report.scores)} cases, {report.repeats} repeats each, "
        f"baseline [cyan]{report.baseline}[/] vs candidate [cyan]{report.candidate}[/] "
        f"({report.calls} calls; failed: baseline {failed['baseline']}, "
        f"candidate {failed['candidate']})"
    )
    console.print(_metrics_table(report))
    console.print(_gate_table(report.gate))
    if report.failing_cases:
        console.print(_cases_table(report.failing_cases))
    if report.gate.passed:
        console.print("[bold green]PASS[/]: the candidate is within every limit of the gate")
    else:
        names = ", ".join(check.name for check in report.gate.failed)
        console.print(f"[bold red]FAIL[/]: {names}")
