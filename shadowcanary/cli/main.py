"""The ``shadowcanary`` command line: where a process is wired to concrete adapters.

Every command loads ``Settings`` once (a bad variable fails here, with its name) and
turns shadowcanary errors into one clear line plus a hint, never a traceback.

Start-up matters (``--help``, ``rollout status`` in an incident): this module and the
command modules it mounts import only typer, rich and plain values; each command
imports what it needs when it runs (tests/unit/test_cli_imports.py holds the line).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shadowcanary.cli.gateway import gateway_app
from shadowcanary.cli.offline import audit_command, compare_command
from shadowcanary.cli.report import report_command
from shadowcanary.cli.rollout import controller_app, rollout_app
from shadowcanary.cli.runbook import runbook_command
from shadowcanary.cli.support import (
    EXIT_FAILURE,
    configure_command_logging,
    configure_service_logging,
    console,
    err_console,
    friendly_errors,
    print_error,
)
from shadowcanary.errors import ShadowCanaryError

if TYPE_CHECKING:
    from shadowcanary.launcher.embedded_services import ServiceUrls
    from shadowcanary.settings import Settings

app = typer.Typer(
    name="shadowcanary",
    help="Shadow traffic, canary steps and automatic rollback for LLM model migrations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
services_app = typer.Typer(help="The embedded Postgres and Redis (used when no URLs are set).")
app.add_typer(services_app, name="services")
app.command("audit")(audit_command)
app.command("compare")(compare_command)
app.add_typer(rollout_app, name="rollout")
app.add_typer(controller_app, name="controller")
app.add_typer(gateway_app, name="gateway")
app.command("report")(report_command)
app.command("runbook")(runbook_command)


@app.callback()
def _options(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Show info-level logs too (commands show warnings and errors only; "
            "SHADOWCANARY_LOG_FORMAT=json gives JSON lines).",
        ),
    ] = False,
) -> None:
    """Shadow traffic, canary steps and automatic rollback for LLM model migrations."""
    if verbose:
        # Read with the other settings when the command loads them (and by the
        # processes it starts): one place decides what is logged.
        os.environ["SHADOWCANARY_LOG_VERBOSE"] = "true"


def _settings(*, service: bool = False) -> Settings:
    """Settings, and logging for a command (human, warnings) or a service (JSON)."""
    from shadowcanary.settings import load_settings

    settings = load_settings()
    (configure_service_logging if service else configure_command_logging)(settings)
    return settings


def _urls(settings: Settings) -> ServiceUrls:
    from shadowcanary.launcher.embedded_services import resolve_urls
    from shadowcanary.store.db import migrate

    urls = resolve_urls(settings)
    migrate(urls.database_url)
    return urls


def _display_url(url: str) -> str:
    """A URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a SQLAlchemy URL (e.g. redis): no password to hide
        return url.split("@")[-1] if "@" in url else url


def child_env(settings: Settings, urls: ServiceUrls) -> dict[str, str]:
    """Environment for child processes (worker, simulator): same settings, resolved URLs."""
    env = dict(os.environ)
    env["SHADOWCANARY_DATABASE_URL"] = urls.database_url
    env["SHADOWCANARY_REDIS_URL"] = urls.redis_url
    return env


@app.command()
@friendly_errors
def migrate() -> None:
    """Create or upgrade the database schema (alembic upgrade head).

    Example: SHADOWCANARY_DATABASE_URL=postgresql+psycopg://... shadowcanary migrate
    """
    settings = _settings()
    _urls(settings)
    console.print("[green]database schema is up to date[/]")


@app.command()
@friendly_errors
def sim(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    profiles: Annotated[Path | None, typer.Option(help="YAML file of model profiles.")] = None,
    admin_token: Annotated[
        str, typer.Option(envvar="SIM_ADMIN_TOKEN", help="Bearer token for /admin.")
    ] = "sim-admin",  # noqa: S107 - the local simulator's default, overridable
    seed: Annotated[int, typer.Option(help="Seed for latency/error draws.")] = 0,
) -> None:
    """Run the OpenAI-compatible model SIMULATOR (a stand-in for the vendor API, not a model).

    Example: shadowcanary sim --port 8765
    """
    from shadowcanary.sim import serve

    serve(host=host, port=port, profiles=profiles, admin_token=admin_token, seed=seed)


@app.command()
@friendly_errors
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Task threads (default: from settings).")
    ] = None,
    queues: Annotated[
        str, typer.Option(help="Comma-separated queues.")
    ] = "shadowcanary.ingest,shadowcanary.replay",
) -> None:
    """Run a Celery worker for ingest and replays (embedded services if no URLs are set).

    Example: shadowcanary worker
    """
    settings = _settings(service=True)
    urls = _urls(settings)
    from shadowcanary.launcher.supervisor import supervise
    from shadowcanary.launcher.worker import worker_command

    cmd = worker_command(name="shadowcanary", queues=queues.split(","), concurrency=concurrency)
    # Supervised: a worker that kombu or the OOM killer takes down is started again.
    raise typer.Exit(supervise(cmd, child_env(settings, urls)))


@app.command()
@friendly_errors
def status(
    rollout: Annotated[
        str | None, typer.Option(help="Limit headline figures to one rollout.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show captured, replayed, compared, dropped and dead-lettered counts and headline figures.

    Example: shadowcanary status --json
    """
    settings = _settings()
    from shadowcanary.cli.status_view import collect_status

    data = collect_status(settings, _urls(settings), rollout)
    if as_json:
        typer.echo(json.dumps(data, default=str, indent=2))
        return
    from shadowcanary.cli.status_view import render_status

    console.print(render_status(data))


@app.command()
@friendly_errors
def purge(
    days: Annotated[
        int | None,
        # At least a day: --days 0 or a negative number would delete today's data too.
        typer.Option(min=1, help="Keep this many days (default: settings)."),
    ] = None,
) -> None:
    """Delete raw captures, replays and comparisons older than the retention (rollups stay).

    Example: shadowcanary purge --days 7
    """
    from datetime import timedelta

    from shadowcanary.events import now_utc
    from shadowcanary.store.db import make_engine
    from shadowcanary.store.repository import Store

    settings = _settings()
    urls = _urls(settings)
    keep = days if days is not None else settings.retention_days
    deleted = Store(make_engine(urls.database_url, pool_size=1)).purge(
        now_utc() - timedelta(days=keep)
    )
    console.print(f"purged rows older than {keep} days: {deleted}")


@app.command()
@friendly_errors
def up(
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")
    ] = None,
    rate: Annotated[
        float, typer.Option(help="Live calls per second from the traffic generator.")
    ] = 20.0,
    canary_percent: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=100,
            help="Share of users served by the candidate live (local-demo only; default 10).",
        ),
    ] = None,
    sim_port: Annotated[
        int, typer.Option(help="Port of the model simulator (live calls and the replays).")
    ] = 8765,
    rollout: Annotated[
        str | None,
        typer.Option(
            help="Feed this started rollout, each user routed by its flag (run "
            "`shadowcanary controller run --all` beside it to step the plan).",
        ),
    ] = None,
    profiles: Annotated[
        Path | None,
        typer.Option(
            help="Simulator profiles (YAML: models: {name: {mean_ms, p99_ms, prices}}) for "
            "your own models (default: the shipped gpt-5.2 / gpt-5.5).",
        ),
    ] = None,
) -> None:
    """Run the whole data path locally: simulator, worker, and a traffic generator feeding the tap.

    Uses the embedded Postgres and Redis unless SHADOWCANARY_DATABASE_URL / _REDIS_URL are set.
    Without --rollout it feeds the rollout local-demo (started and paused for you) with a
    fixed --canary-percent split; with --rollout NAME the rollout's flag decides.

    Examples:

      shadowcanary up --duration 60

      shadowcanary rollout start my-plan.yaml && shadowcanary up --rollout my-rollout
    """
    if rollout is not None and canary_percent is not None:
        raise typer.BadParameter(
            "--canary-percent splits the local-demo rollout's traffic; with --rollout the "
            "rollout's flag decides who gets the candidate (leave --canary-percent out)",
            param_hint="--canary-percent",
        )
    from shadowcanary.cli.up import prepare_rollout, run_local_stack

    settings = _settings()
    urls = _urls(settings)
    target = prepare_rollout(settings, urls, rollout)
    run_local_stack(
        settings,
        urls,
        env=child_env(settings, urls),
        duration_s=duration,
        rate=rate,
        canary_percent=10.0 if canary_percent is None else canary_percent,
        sim_port=sim_port,
        console=console,
        target=target,
        profiles_file=profiles,
    )
    console.print(
        f"\n[bold]Data:[/] Postgres {_display_url(urls.database_url)}, "
        f"Redis {_display_url(urls.redis_url)}"
        f"\n[bold]Next:[/] `shadowcanary report {target.rollout}`, `shadowcanary status` "
        "(add --json for machines); "
        "`make down` (or `shadowcanary services stop`) stops the embedded servers."
    )


@app.command()
@friendly_errors
def demo(
    fast: Annotated[
        bool, typer.Option(help="Smaller steps, no pacing: well under 2 minutes (CI).")
    ] = False,
    verbose: Annotated[bool, typer.Option(help="Show the info-level logs too.")] = False,
) -> None:
    """The demo: two rollouts side by side, live, on the embedded services.

    Starts the model SIMULATOR, a worker, the controller and a traffic generator going
    through the real tap, then runs a healthy candidate 10 -> 30 -> 50 -> 100 % and one
    whose error rate jumps mid-rollout (rolled back automatically). Time is simulated
    (about 1.5 s of wall time per minute). Exits 1 if a rollout did not end as expected.

    Examples:

      shadowcanary demo

      shadowcanary demo --fast
    """
    from shadowcanary.cli.demo import run_demo

    settings = _settings()
    if verbose:  # `shadowcanary demo --verbose` reads as `shadowcanary --verbose demo`
        from shadowcanary.logging import configure_command_logging as configure

        configure(settings.log_level, settings.log_format, verbose=True)
    urls = _urls(settings)
    result = run_demo(settings, urls, fast=fast, console=console)
    console.print(
        f"\n[bold]Data:[/] Postgres {_display_url(urls.database_url)}; "
        "`make down` (or `shadowcanary services stop`) stops the embedded servers."
    )
    surprises = result.surprises()
    for line in surprises:
        err_console.print(f"[bold red]demo failed:[/] {line}")
    if surprises:
        raise typer.Exit(EXIT_FAILURE)
    console.print(f"[green]demo done[/] in {result.wall_s:.0f} s ({result.minutes} simulated min)")


@services_app.command("start")
@friendly_errors
def services_start() -> None:
    """Start (or attach to) the embedded Postgres and Redis in the data directory.

    Example: shadowcanary services start
    """
    from shadowcanary.launcher.embedded_services import EmbeddedServices

    settings = _settings()
    urls = EmbeddedServices(settings.data_dir).start()
    console.print(f"postgres: {urls.database_url}\nredis:    {urls.redis_url}")


@services_app.command("stop")
@friendly_errors
def services_stop() -> None:
    """Stop the embedded Postgres and Redis.

    Example: shadowcanary services stop
    """
    from shadowcanary.launcher.embedded_services import EmbeddedServices

    settings = _settings()
    EmbeddedServices(settings.data_dir).stop()
    console.print("embedded services stopped")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except ShadowCanaryError as exc:  # settings errors raised before a command runs
        print_error(exc)
        sys.exit(EXIT_FAILURE)


if __name__ == "__main__":
    main()
