"""What every command needs: one error style, exit codes, and a migrated database.

Shared by the ``shadowcanary`` sub-apps (rollout, report, runbook, compare) so a user
sees the same one-line error with a hint whichever command failed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from shadowcanary.errors import ShadowCanaryError

if TYPE_CHECKING:  # imported when a command runs: `shadowcanary --help` stays fast
    from sqlalchemy import Engine

    from shadowcanary.settings import Settings

EXIT_OK = 0
EXIT_FAILURE = 1  # a shadowcanary error: one line and a hint
EXIT_USAGE = 2  # typer's own code for bad options and arguments

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def print_error(exc: ShadowCanaryError) -> None:
    # Escaped: a message or hint may hold brackets (`pip install 'shadowcanary[embedded]'`)
    # that rich would otherwise take for markup and drop.
    err_console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
    if exc.hint:
        err_console.print(f"[dim]hint: {escape(exc.hint)}[/]", highlight=False)


def friendly_errors(func: F) -> F:
    """Turn shadowcanary errors into one clear line, a hint and exit code 1: no traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ShadowCanaryError as exc:
            print_error(exc)
            raise typer.Exit(EXIT_FAILURE) from None

    return wrapper  # type: ignore[return-value]


def configure_command_logging(settings: Settings) -> None:
    """A command's logs: warnings and errors in human form on stderr, its output on stdout.

    ``shadowcanary --verbose`` (SHADOWCANARY_LOG_VERBOSE=true) shows the info lines
    too; SHADOWCANARY_LOG_FORMAT=json keeps the JSON lines.
    """
    from shadowcanary.logging import configure_command_logging as configure

    configure(settings.log_level, settings.log_format, verbose=settings.log_verbose)


def configure_service_logging(settings: Settings) -> None:
    """A long-running process's logs (worker, controller, gateway): JSON unless told human."""
    from shadowcanary.logging import configure_logging

    configure_logging(settings.log_level, json=settings.log_format != "human")


def database_url(settings: Settings) -> str:
    """The configured Postgres, or the embedded one (started if needed), migrated to head."""
    from shadowcanary.launcher.embedded_services import EmbeddedServices
    from shadowcanary.store.db import migrate

    url = settings.database_url or EmbeddedServices(settings.data_dir).start_postgres()
    migrate(url)
    return url


def database_engine(settings: Settings, *, pool_size: int = 1) -> Engine:
    """An engine on ``database_url(settings)``; the caller disposes of it."""
    from shadowcanary.store.db import make_engine

    return make_engine(database_url(settings), pool_size=pool_size)
