"""``shadowcanary report ROLLOUT``: the rollout report as HTML, Markdown or JSON.

Mounted in ``shadowcanary.cli.main``::

    app.command("report")(report_command)

Exit codes: 0 written, 1 failed (unknown rollout, database down, file not writable:
one error line and a hint on stderr), 2 usage (bad option).
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from shadowcanary.errors import ShadowCanaryError

EXIT_FAILURE = 1

_err_console = Console(stderr=True)


class ReportFormatOption(StrEnum):
    HTML = "html"
    MD = "md"
    JSON = "json"


def report_command(
    rollout: Annotated[
        str, typer.Argument(help="The rollout (its plan's name).", metavar="ROLLOUT")
    ],
    format: Annotated[
        ReportFormatOption,
        typer.Option(
            "--format",
            "-f",
            help="html: a self-contained page with charts; md: tables for a ticket; "
            "json: the same figures for machines.",
        ),
    ] = ReportFormatOption.HTML,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write to this file (default: standard output).", dir_okay=False
        ),
    ] = None,
    pairs: Annotated[
        int, typer.Option(min=0, max=50, help="How many most divergent prompt pairs to show.")
    ] = 5,
    tenant: Annotated[
        str | None,
        typer.Option(
            help="A report for one tenant (to share with it): every figure, prompt and "
            "answer from that tenant's calls only (raw calls, kept retention_days); the "
            "controller's whole-rollout evidence is left out.",
            callback=_tenant_name,
        ),
    ] = None,
) -> None:
    """Report on a rollout: error rate and latency per arm over time with the step changes,
    latency percentiles, tokens and cost per request with the projected monthly cost delta,
    similarity vs the noise floor, each trigger against its threshold, and the most
    divergent prompt pairs (redacted).

    The HTML page needs no network to view: open it from the file, or print it.

    Examples:

      shadowcanary report checkout-gpt55 -o checkout-gpt55.html

      shadowcanary report checkout-gpt55 --format json | jq .cost.monthly_delta_usd

      shadowcanary report checkout-gpt55 --tenant acme -o acme.html
    """
    try:
        text = _generate(rollout, format, pairs, tenant)
        if output is None:
            typer.echo(text, nl=False)
            return
        _write_atomically(output, text)
    except ShadowCanaryError as exc:
        _err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        if exc.hint:
            _err_console.print(f"[dim]hint: {exc.hint}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILURE) from None
    except OSError as exc:
        _err_console.print(
            f"[bold red]error:[/] cannot write the report to {str(output)!r}: {exc.strerror}",
            highlight=False,
            soft_wrap=True,
        )
        _err_console.print("[dim]hint: pick a writable path with --output[/]", highlight=False)
        raise typer.Exit(EXIT_FAILURE) from None
    _err_console.print(f"report written to {output}", highlight=False, soft_wrap=True)


def _generate(rollout: str, format: ReportFormatOption, pairs: int, tenant: str | None) -> str:
    from shadowcanary.cli.support import configure_command_logging, database_url
    from shadowcanary.report import load_report, render
    from shadowcanary.settings import load_settings
    from shadowcanary.store.db import make_engine

    settings = load_settings()
    configure_command_logging(settings)
    url = database_url(settings)
    engine = make_engine(url, pool_size=1)
    try:
        data = load_report(
            engine, settings, rollout, now=datetime.now(UTC), pairs=pairs, tenant=tenant
        )
    finally:
        engine.dispose()
    if data.tenant_scope is not None and not data.tenant_scope.calls:
        # Still a report (a quiet tenant is not an error), but a typo should not pass
        # unnoticed behind a page of "no data yet".
        _err_console.print(
            f"[bold yellow]warning:[/] no calls from tenant {tenant!r} are stored for rollout "
            f"{rollout!r} since {data.since:%Y-%m-%d %H:%M} UTC; the report is empty",
            highlight=False,
            soft_wrap=True,
        )
        _err_console.print(
            "[dim]hint: tenant names match exactly what the services send (case too)[/]",
            highlight=False,
            soft_wrap=True,
        )
    return render(data, format.value)


def _tenant_name(tenant: str | None) -> str | None:
    """A usage error (exit 2) for a name no call can carry, before touching the database."""
    from shadowcanary.report.load import check_tenant_name

    if tenant is not None:
        try:
            check_tenant_name(tenant)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    return tenant


def _write_atomically(path: Path, text: str) -> None:
    """Readers (a browser refreshing, a CI artifact upload) never see half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
