"""Offline commands: ``audit`` (where are the model names?) and ``compare`` (the suite).

Both are plain functions with typer annotations, mounted on the main app in
``shadowcanary.cli.main``. They handle their own errors so their exit codes stay what
CI scripts rely on:

- ``audit``: 0 listed (found or not), 1 an identifier named by ``--fail-on`` is
  present, 2 usage error (e.g. the path does not exist).
- ``compare``: 0 the gate passed, 1 the gate failed, 2 the suite could not be run
  (usage, invalid suite file, unknown model, no answers from an arm, store down).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

from shadowcanary.errors import ShadowCanaryError
from shadowcanary.suite.metrics import DEFAULT_MAX_DROPS, Metric

if TYPE_CHECKING:  # the suite (SciPy) and the audit are imported when their command runs
    from shadowcanary.cli.model_references import AuditResult, Finding
    from shadowcanary.settings import Settings
    from shadowcanary.suite.cases import SuiteCase
    from shadowcanary.suite.runner import CallResult

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_console = Console()
_err_console = Console(stderr=True)


def _fail(message: str, hint: str | None = None, code: int = EXIT_USAGE) -> NoReturn:
    _err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    if hint:
        _err_console.print(f"[dim]hint: {hint}[/]", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _split(values: Sequence[str] | None) -> list[str]:
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


# --- audit ----------------------------------------------------------------------------


def _audit_json(result: AuditResult, failing: Sequence[Finding]) -> dict[str, Any]:
    return {
        "root": result.root,
        "files_scanned": result.files_scanned,
        "skipped": result.skipped,
        "summary": [
            {
                "identifier": row.identifier,
                "vendor": row.vendor,
                "count": row.count,
                "files": row.files,
                "kinds": [k.value for k in row.kinds],
            }
            for row in result.summary()
        ],
        "findings": [
            {
                "path": f.path,
                "line": f.line,
                "column": f.column,
                "identifier": f.identifier,
                "vendor": f.vendor,
                "kind": f.kind.value,
                "excerpt": f.excerpt,
            }
            for f in result.findings
        ],
        "fail_on_matches": len(failing),
    }


def _render_audit(result: AuditResult, *, summary_only: bool) -> None:
    from rich.table import Table

    rows = result.summary()
    if not summary_only:
        for row in rows:
            table = Table(
                title=f"{row.identifier} ({row.vendor}): {row.count} in {row.files} file(s)",
                title_justify="left",
            )
            table.add_column("location", style="cyan", no_wrap=True)
            table.add_column("kind")
            table.add_column("line")
            for f in result.findings:
                if f.identifier.lower() == row.identifier:
                    table.add_row(f.location, f.kind.value, f.excerpt)
            _console.print(table)
    if rows:
        summary = Table(title="Model identifiers", title_justify="left")
        for column in ("identifier", "vendor", "count", "files", "kinds"):
            summary.add_column(column, justify="right" if column in {"count", "files"} else "left")
        for row in rows:
            kinds = ", ".join(k.value for k in row.kinds)
            summary.add_row(row.identifier, row.vendor, str(row.count), str(row.files), kinds)
        _console.print(summary)
    else:
        _console.print("[green]no model identifiers found[/]")
    skipped = ", ".join(f"{reason}: {n}" for reason, n in result.skipped.items()) or "nothing"
    _console.print(f"{result.files_scanned} files scanned; skipped: {skipped}", highlight=False)


def audit_command(
    path: Annotated[Path, typer.Argument(help="Directory (or file) to audit.")] = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    models: Annotated[
        list[str] | None,
        typer.Option("--models", help="Extra identifiers to find, comma-separated (e.g. ft ids)."),
    ] = None,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 if an identifier matching this glob is present (e.g. 'gpt-5.2*'). "
            "Repeatable or comma-separated.",
        ),
    ] = None,
    summary_only: Annotated[
        bool, typer.Option("--summary", help="Only the per-identifier counts.")
    ] = False,
    no_gitignore: Annotated[
        bool, typer.Option("--no-gitignore", help="Also scan files .gitignore excludes.")
    ] = False,
    max_file_bytes: Annotated[
        int, typer.Option(help="Skip files larger than this.", min=1)
    ] = 1_000_000,
) -> None:
    """List every place a model identifier appears: file:line, identifier, kind of file.

    Knows OpenAI, Anthropic, Google, Meta, Mistral, DeepSeek and Qwen model names;
    skips VCS/build/dependency directories, lockfiles, binaries and big files.
    Exit code: 0 listed, 1 a --fail-on identifier is present, 2 usage error.

    Examples:

      shadowcanary audit .

      shadowcanary audit services/ --fail-on 'gpt-5.2*' --json > audit.json
    """
    from shadowcanary.cli.model_references import audit_tree

    try:
        result = audit_tree(
            path,
            extra_identifiers=_split(models),
            use_gitignore=not no_gitignore,
            max_file_bytes=max_file_bytes,
        )
    except ShadowCanaryError as exc:
        _fail(exc.message, exc.hint)
    failing = result.matching(_split(fail_on))
    if as_json:
        typer.echo(json.dumps(_audit_json(result, failing), indent=2))
    else:
        _render_audit(result, summary_only=summary_only)
    if failing:
        if not as_json:
            where = ", ".join(f.location for f in failing[:5])
            more = f" and {len(failing) - 5} more" if len(failing) > 5 else ""
            _err_console.print(
                f"[bold red]{len(failing)} occurrence(s) match --fail-on[/]: {where}{more}",
                highlight=False,
            )
        raise typer.Exit(EXIT_FAILED)


# --- compare --------------------------------------------------------------------------


def _run(
    cases: Sequence[SuiteCase],
    settings: Settings,
    *,
    baseline: str,
    candidate: str,
    repeats: int,
    concurrency: int,
) -> list[CallResult]:
    import asyncio

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from shadowcanary.suite.runner import planned_calls, run_cases

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=_err_console, transient=True) as bar:
        task = bar.add_task("calling models", total=planned_calls(cases, repeats))
        return asyncio.run(
            run_cases(
                cases,
                settings=settings,
                baseline=baseline,
                candidate=candidate,
                repeats=repeats,
                concurrency=concurrency,
                on_result=lambda _result: bar.advance(task),
            )
        )


def compare_command(
    suite: Annotated[
        Path | None, typer.Option("--suite", help="Suite file: .csv or .jsonl.")
    ] = None,
    from_captures: Annotated[
        str | None,
        typer.Option("--from-captures", metavar="ROUTE", help="Replay a route's captures."),
    ] = None,
    since: Annotated[str, typer.Option(help="With --from-captures: 24h, 7d or a timestamp.")] = (
        "24h"
    ),
    limit: Annotated[int, typer.Option(help="With --from-captures: newest N.", min=1)] = 200,
    rollout: Annotated[
        str | None, typer.Option(help="With --from-captures: only this rollout.")
    ] = None,
    baseline: Annotated[str | None, typer.Option(help="Baseline model (default: settings).")] = (
        None
    ),
    candidate: Annotated[
        str | None, typer.Option(help="Candidate model (default: settings).")
    ] = None,
    repeats: Annotated[int, typer.Option(help="Calls per case and model.", min=1)] = 3,
    concurrency: Annotated[int, typer.Option(help="Calls in flight.", min=1)] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report.")] = False,
    report_file: Annotated[
        Path | None, typer.Option(help="Also write the JSON report here.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    confidence: Annotated[float, typer.Option(help="Of the intervals.", min=0.5, max=0.999)] = (
        0.95
    ),
    min_similarity: Annotated[
        float | None,
        typer.Option(help="Minimum similarity for cases that set none.", min=0, max=1),
    ] = None,
    max_success_drop: Annotated[
        float,
        typer.Option(help="Allowed drop of the success rate (0.02 = 2 points).", min=0, max=1),
    ] = DEFAULT_MAX_DROPS[Metric.SUCCESS],
    max_valid_drop: Annotated[
        float,
        typer.Option(help="Allowed drop of the JSON/tool/schema validity rate.", min=0, max=1),
    ] = DEFAULT_MAX_DROPS[Metric.VALID],
    max_clean_drop: Annotated[
        float,
        typer.Option(
            help="Allowed drop of the rate of answers not empty, truncated or refused.",
            min=0,
            max=1,
        ),
    ] = DEFAULT_MAX_DROPS[Metric.CLEAN],
    max_expected_drop: Annotated[
        float, typer.Option(help="Allowed drop of the expected-output match rate.", min=0, max=1)
    ] = DEFAULT_MAX_DROPS[Metric.EXPECTED],
    max_tool_drop: Annotated[
        float, typer.Option(help="Allowed drop of the expected-tool rate.", min=0, max=1)
    ] = DEFAULT_MAX_DROPS[Metric.TOOL],
    max_similarity_drop: Annotated[
        float,
        typer.Option(
            help="Allowed drop of similarity to the baseline, beyond its noise floor.", min=0, max=1
        ),
    ] = DEFAULT_MAX_DROPS[Metric.SIMILARITY],
    max_below_min_similarity: Annotated[
        float, typer.Option(help="Share of cases allowed below their min_similarity.", min=0)
    ] = 0.0,
    allow_schema_failures: Annotated[
        bool, typer.Option(help="Do not require every schema answer to be valid.")
    ] = False,
    max_latency_increase: Annotated[
        float | None, typer.Option(help="Relative, e.g. 0.10 for +10 %.", min=0)
    ] = None,
    max_cost_increase: Annotated[float | None, typer.Option(help="Relative.", min=0)] = None,
    strict: Annotated[
        bool, typer.Option(help="Gate on the pessimistic end of each interval.")
    ] = False,
) -> None:
    """Run a compatibility suite against baseline and candidate and gate the result.

    Each case runs --repeats times per model through the same comparators as shadow
    traffic; each metric gets a paired bootstrap interval and a Wilcoxon test.
    Exit code: 0 gate passed, 1 gate failed, 2 the suite could not be run.

    Examples:

      shadowcanary compare --suite examples/prompts.csv --candidate gpt-5.5

      shadowcanary compare --from-captures support.chat --since 24h --min-similarity 0.6
    """
    if (suite is None) == (from_captures is None):
        _fail("give exactly one of --suite FILE or --from-captures ROUTE")
    from shadowcanary.cli.support import configure_command_logging
    from shadowcanary.settings import load_settings
    from shadowcanary.suite.captures import load_capture_cases
    from shadowcanary.suite.gate import GatePolicy
    from shadowcanary.suite.loader import load_suite
    from shadowcanary.suite.report import build_report, render_report, report_json
    from shadowcanary.suite.runner import SuiteArm, require_answers

    policy = GatePolicy(
        max_drops={
            Metric.SUCCESS: max_success_drop,
            Metric.VALID: max_valid_drop,
            Metric.CLEAN: max_clean_drop,
            Metric.EXPECTED: max_expected_drop,
            Metric.TOOL: max_tool_drop,
            Metric.SIMILARITY: max_similarity_drop,
        },
        max_below_min_similarity=max_below_min_similarity,
        require_schema_valid=not allow_schema_failures,
        max_latency_increase=max_latency_increase,
        max_cost_increase=max_cost_increase,
        use_confidence_bound=strict,
    )
    try:
        settings = load_settings()
        configure_command_logging(settings)
        arms = {
            SuiteArm.BASELINE: baseline or settings.baseline_model,
            SuiteArm.CANDIDATE: candidate or settings.candidate_model,
        }
        if suite is not None:
            cases = load_suite(suite)
            source = suite.name
            if min_similarity is not None:
                cases = [_with_default_min_similarity(c, min_similarity) for c in cases]
        else:
            assert from_captures is not None
            from shadowcanary.cli.support import database_engine

            engine = database_engine(settings)
            try:
                cases = load_capture_cases(
                    engine,
                    settings,
                    from_captures,
                    since=since,
                    limit=limit,
                    rollout=rollout,
                    min_similarity=min_similarity,
                )
            finally:
                engine.dispose()
            source = f"captures of {from_captures} since {since}"
        for arm, model in arms.items():
            if arm is SuiteArm.CANDIDATE or any(c.recorded_baseline is None for c in cases):
                settings.endpoint(model)
        results = _run(
            cases,
            settings,
            baseline=arms[SuiteArm.BASELINE],
            candidate=arms[SuiteArm.CANDIDATE],
            repeats=repeats,
            concurrency=concurrency,
        )
        require_answers(results, arms)
    except ShadowCanaryError as exc:
        _fail(exc.message, exc.hint)
    report = build_report(
        cases,
        results,
        source=source,
        baseline=arms[SuiteArm.BASELINE],
        candidate=arms[SuiteArm.CANDIDATE],
        repeats=repeats,
        policy=policy,
        seed=seed,
        confidence=confidence,
    )
    data = report_json(report)
    if report_file is not None:
        report_file.write_text(json.dumps(data, indent=2) + "\n")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        render_report(report, _console)
    raise typer.Exit(EXIT_OK if report.gate.passed else EXIT_FAILED)


def _with_default_min_similarity(case: SuiteCase, minimum: float) -> SuiteCase:
    if case.expect.min_similarity is not None:
        return case
    return replace(case, expect=replace(case.expect, min_similarity=minimum))
