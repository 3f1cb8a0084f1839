"""``shadowcanary runbook ROLLOUT``: write a rollout's runbook now.

Mounted in ``shadowcanary.cli.main`` as ``app.command("runbook")(runbook_command)``. The
controller rewrites the runbook after every decision; this command is for a rollout
whose controller is down, for a fresh copy to paste into an incident, and for
checking what the runbook says before a rollout starts moving.

Exit codes: 0 written, 1 failed (one error line and a hint on stderr), 2 usage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from shadowcanary.errors import ShadowCanaryError

EXIT_FAILURE = 1


def runbook_command(
    rollout: Annotated[str, typer.Argument(help="The rollout.", metavar="ROLLOUT")],
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            "-o",
            help="Where to write ROLLOUT.md (default: runbooks/generated, or the settings').",
        ),
    ] = None,
    stdout: Annotated[
        bool, typer.Option("--stdout", help="Also print the runbook (Markdown) to stdout.")
    ] = False,
) -> None:
    """Write the on-call runbook of a rollout now: state, triggers, and what to do.

    Example: shadowcanary runbook checkout-gpt55 --stdout
    """
    err = Console(stderr=True)
    try:
        path = _write(rollout, output_dir)
    except ShadowCanaryError as exc:
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        if exc.hint:
            err.print(f"[dim]hint: {exc.hint}[/]", highlight=False)
        raise typer.Exit(EXIT_FAILURE) from None
    except OSError as exc:
        err.print(f"[bold red]error:[/] cannot write the runbook: {exc}", highlight=False)
        err.print("[dim]hint: choose a writable directory with --output-dir[/]", highlight=False)
        raise typer.Exit(EXIT_FAILURE) from None
    if stdout:
        typer.echo(path.read_text(encoding="utf-8"), nl=False)
    else:
        Console().print(f"[green]runbook written:[/] {path}", highlight=False)


def _write(rollout: str, output_dir: Path | None) -> Path:
    from runbooks.generator import flag_access, generate_runbook, output_dir_for, settings_secrets
    from shadowcanary.cli.support import configure_command_logging, database_url
    from shadowcanary.settings import load_settings
    from shadowcanary.store.db import make_engine
    from shadowcanary.store.rollouts import RolloutStore

    settings = load_settings()
    configure_command_logging(settings)
    url = database_url(settings)
    engine = make_engine(url, pool_size=1)
    try:
        store = RolloutStore(engine)
        record = store.get(rollout)
        return generate_runbook(
            store,
            record,
            output_dir=output_dir_for(settings, output_dir),
            flags=flag_access(settings),
            secrets=settings_secrets(settings),
        )
    finally:
        engine.dispose()
