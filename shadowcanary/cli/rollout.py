"""``shadowcanary rollout ...`` and ``shadowcanary controller run``: steering rollouts.

Mounted in ``shadowcanary.cli.main``::

    app.add_typer(rollout_app, name="rollout")
    app.add_typer(controller_app, name="controller")

Exit codes scripts can rely on: 0 done, 1 failed (one error line and a hint on
stderr), 2 usage (a bad argument or option). Operator commands are recorded in the
audit log as ``cli:$USER``.
"""

from __future__ import annotations

import json
import signal
import threading
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from shadowcanary.cli.support import (
    console,
    database_url,
    err_console,
    friendly_errors,
)

rollout_app = typer.Typer(
    help="Start and steer rollouts: start, pause, resume, promote, rollback, abort, status, "
    "history.",
    no_args_is_help=True,
)
controller_app = typer.Typer(help="The rollout controller.", no_args_is_help=True)


@controller_app.callback()
def _controller_group() -> None:
    """The rollout controller (a group, so `controller run` reads the same standalone)."""


class _Context:
    """Settings, database and flag backend, wired once per command."""

    def __init__(
        self,
        flags: str | None = None,
        unleash_url: str | None = None,
        *,
        migrate: bool = True,
        service: bool = False,
    ) -> None:
        from shadowcanary.cli.support import configure_command_logging, configure_service_logging
        from shadowcanary.settings import load_settings
        from shadowcanary.store.db import make_engine
        from shadowcanary.store.locks import lock_engine

        self.settings = load_settings()
        (configure_service_logging if service else configure_command_logging)(self.settings)
        settings = self.settings
        if migrate or not settings.database_url:
            url = database_url(settings)  # migrated (the embedded Postgres started first)
        else:
            url = settings.database_url  # the caller migrates (controller run waits for it)
        self.database_url = url
        self.engine = make_engine(url, pool_size=2)
        self.lock_engine = lock_engine(url)
        self._flags, self._unleash_url = flags, unleash_url

    @property
    def flags_for(self) -> Any:
        """The flag backend, wired on first use (`status` and `history` need none)."""
        from dataclasses import replace

        from shadowcanary.wiring import FlagsConfig, flags_factory

        config = FlagsConfig.from_settings(self.settings)
        if self._flags is not None:
            config = replace(config, backend=self._flags)  # type: ignore[arg-type]
        if self._unleash_url is not None:
            config = replace(config, unleash_url=self._unleash_url)
        return flags_factory(config, self.engine)

    def store(self) -> Any:
        """The rollouts and their audit log, for commands that only read them."""
        from shadowcanary.store.rollouts import RolloutStore

        return RolloutStore(self.engine)

    def ports(self, actor: str | None = None) -> Any:
        from shadowcanary.controller.notify import WebhookNotifier
        from shadowcanary.launcher.embedded_services import EmbeddedServices
        from shadowcanary.wiring import build_ports

        redis_url = None
        if actor is None:  # the controller tells the workers the adaptive replay rate
            redis_url = (
                self.settings.redis_url or EmbeddedServices(self.settings.data_dir).start_redis()
            )
        return build_ports(
            engine=self.engine,
            lock_engine=self.lock_engine,
            flags_for=self.flags_for,
            notifier=WebhookNotifier(),
            actor=actor,
            settings=self.settings,
            redis_url=redis_url,
        )

    def operator(self) -> Any:
        from shadowcanary.controller.operator import Operator, cli_actor

        return Operator(self.ports(cli_actor()))


def _done(message: str) -> None:
    console.print(f"[green]{message}[/]", highlight=False)


@rollout_app.command()
@friendly_errors
def start(
    plan_file: Annotated[Path, typer.Argument(help="The rollout plan (YAML).", metavar="PLAN")],
) -> None:
    """Start a rollout from a plan file; a running controller takes it from there.

    Example: shadowcanary rollout start checkout-gpt55.yaml
    """
    from shadowcanary.judge.feeds import unfed_triggers
    from shadowcanary.plan import PlanError, load_plan
    from shadowcanary.settings import load_settings

    plan = load_plan(plan_file)
    unfed = unfed_triggers(plan, load_settings())
    if unfed:
        raise PlanError(
            f"{plan_file}: triggers that nothing in this deployment can feed (they would "
            "never fire):\n" + "\n".join(f"  {problem}" for problem in unfed),
            hint="configure what each line names, or turn those triggers off in the plan",
        )
    record = _Context().operator().start(plan)
    steps = " -> ".join(f"{p} %" for p in plan.step_percents)
    _done(f"rollout {record.name} started on flag {plan.flag}: {steps}")
    console.print(
        "the flag is at 0 % until a controller freezes the baseline p99 and moves to the "
        "first step: `shadowcanary controller run --all`",
        highlight=False,
    )


@rollout_app.command()
@friendly_errors
def pause(name: Annotated[str, typer.Argument(help="The rollout.")]) -> None:
    """Stop the controller acting on a rollout (the flag stays where it is).

    Example: shadowcanary rollout pause chat-gpt55
    """
    record = _Context().operator().pause(name)
    _done(f"rollout {name} is {record.status.value} at {record.percent} %")


@rollout_app.command()
@friendly_errors
def resume(name: Annotated[str, typer.Argument(help="The rollout.")]) -> None:
    """Hand a paused or overridden rollout back to the controller.

    It continues from the flag's step (or the step below an off-plan value); steps the
    flag jumped over are NOT judged, and the output says which.

    Example: shadowcanary rollout resume chat-gpt55
    """
    operator = _Context().operator()
    record = operator.resume(name)
    _done(f"rollout {name} is {record.status.value} at {record.percent} %")
    newest = operator.ports.store.history(name, limit=1)
    if newest and newest[0].action.value == "resume":
        console.print(newest[0].reason, highlight=False)  # says which steps lack evidence


@rollout_app.command()
@friendly_errors
def promote(
    name: Annotated[str, typer.Argument(help="The rollout.")],
    to: Annotated[
        int | None,
        typer.Option("--to", min=1, max=100, help="A step of the plan (default: the next one)."),
    ] = None,
) -> None:
    """Move a rollout to its next step (or --to a step) now.

    Out of the pre-canary phase it first freezes the baseline p99 (with too little
    baseline traffic it says that the p99 trigger cannot judge).

    Example: shadowcanary rollout promote chat-gpt55 --to 50
    """
    record = _Context().operator().promote(name, to)
    _done(f"rollout {name} promoted to {record.percent} %")


@rollout_app.command()
@friendly_errors
def rollback(
    name: Annotated[str, typer.Argument(help="The rollout.")],
    reason: Annotated[str | None, typer.Option(help="Why, for the audit log.")] = None,
) -> None:
    """Set the flag to 0 % now (every user on the baseline); safe to repeat.

    Example: shadowcanary rollout rollback chat-gpt55 --reason "p99 regression"
    """
    record = _Context().operator().rollback(name, reason)
    _done(f"rollout {name} is {record.status.value}: the flag is at 0 %")


@rollout_app.command()
@friendly_errors
def abort(name: Annotated[str, typer.Argument(help="The rollout.")]) -> None:
    """End a rollout without touching the flag; the controller lets go of it.

    Example: shadowcanary rollout abort chat-gpt55
    """
    record = _Context().operator().abort(name)
    _done(f"rollout {name} is {record.status.value}; the flag stays at {record.percent} %")


@rollout_app.command()
@friendly_errors
def status(
    name: Annotated[str | None, typer.Argument(help="One rollout (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Rollouts, their step and percentage, and the last decision with its numbers.

    Example: shadowcanary rollout status chat-gpt55 --json
    """
    from shadowcanary.controller.views import render_rollout, render_rollouts, status_data

    store = _Context().store()
    records = [store.get(name)] if name else store.list()
    data = status_data(store, records)
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    elif name:
        console.print(render_rollout(data[0], width=console.width))
    else:
        console.print(render_rollouts(data))


@rollout_app.command()
@friendly_errors
def history(
    name: Annotated[str, typer.Argument(help="The rollout.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Newest entries.")] = 50,
    with_inputs: Annotated[
        bool, typer.Option(help="Include each decision's full inputs (large).")
    ] = False,
    run: Annotated[
        int | None,
        typer.Option("--run", help="An earlier run's id (listed under the current run)."),
    ] = None,
    all_runs: Annotated[bool, typer.Option("--all-runs", help="Every run, newest first.")] = False,
) -> None:
    """The audit log of a rollout's current run, newest first: who did what, when, and why.

    A rollout started again under the same name is a new run; --run ID shows an earlier
    one, --all-runs all of them. Each entry's "run" (in --json) is its run id.

    Example: shadowcanary rollout history chat-gpt55 --limit 20
    """
    from shadowcanary.controller.views import (
        entry_data,
        history_caption,
        render_history,
        run_windows,
    )

    if run is not None and all_runs:
        raise typer.BadParameter("give --run ID or --all-runs, not both")
    store = _Context().store()
    runs = run_windows(store.runs(name))
    if all_runs or not runs:
        shown = None
    elif run is None:
        shown = runs[-1]
    else:
        shown = next((r for r in runs if r.run_id == run), None)
        if shown is None:
            raise typer.BadParameter(
                f"rollout {name!r} has no run {run}; its runs: "
                f"{', '.join(str(r.run_id) for r in runs)}",
                param_hint="--run",
            )
    if shown is None:
        entries = store.history(name, limit=limit)
    else:
        entries = store.history(name, limit=limit, since=shown.started_at, until=shown.until)
    if as_json:
        rows = []
        for e in entries:
            row = entry_data(e, with_inputs=with_inputs)
            row["run"] = next((r.run_id for r in reversed(runs) if e.at >= r.started_at), None)
            rows.append(row)
        typer.echo(json.dumps(rows, indent=2, default=str))
    else:
        caption = history_caption(runs, shown, name) if runs else ""
        console.print(render_history(name, entries, width=console.width, caption=caption))


def parse_interval(text: str) -> float:
    """'10s', '1m', '500ms' or seconds as a number; usage error otherwise."""
    from pydantic import TypeAdapter, ValidationError

    from shadowcanary.plan import Duration

    try:
        span: timedelta = TypeAdapter(Duration).validate_python(text)
    except ValidationError as exc:
        raise typer.BadParameter(f"{text!r} is not a duration; write e.g. 10s or 1m") from exc
    if span.total_seconds() <= 0:
        raise typer.BadParameter("must be positive, e.g. 10s")
    return span.total_seconds()


@controller_app.command("run")
@friendly_errors
def run(
    rollout: Annotated[
        list[str] | None, typer.Option("--rollout", help="Drive this rollout (repeatable).")
    ] = None,
    all_rollouts: Annotated[
        bool, typer.Option("--all", help="Drive every rollout that needs a controller.")
    ] = False,
    interval: Annotated[
        str | None, typer.Option(help="Time between ticks, e.g. 10s (default: settings).")
    ] = None,
    max_backoff: Annotated[
        str, typer.Option(help="Longest wait between retries when a dependency is down.")
    ] = "60s",
    flags: Annotated[
        str | None, typer.Option(help="Flag backend: embedded or unleash (default: settings).")
    ] = None,
    unleash_url: Annotated[
        str | None, typer.Option(help="Unleash server URL (default: settings).")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus /metrics on this port (on SHADOWCANARY_METRICS_ADDR)."),
    ] = None,
) -> None:
    """Run the controller until SIGTERM: one active controller per rollout (advisory lock).

    Example: shadowcanary controller run --all --interval 10s
    """
    if bool(rollout) == all_rollouts:
        raise typer.BadParameter("give --rollout NAME (repeatable) or --all, not both")
    if flags not in (None, "embedded", "unleash"):
        raise typer.BadParameter(f"--flags must be embedded or unleash, not {flags!r}")
    interval_s = parse_interval(interval) if interval else None
    backoff_s = parse_interval(max_backoff)
    from shadowcanary.controller.loop import ControllerLoop, LoopConfig, migrate_when_reachable
    from shadowcanary.store.db import migrate

    # Postgres may be down at start: migrate_when_reachable waits for it (counted, logged).
    ctx = _Context(flags=flags, unleash_url=unleash_url, migrate=False, service=True)
    port = metrics_port or ctx.settings.metrics_port
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr=str(ctx.settings.metrics_addr))
    config = LoopConfig(
        interval_s=interval_s or ctx.settings.controller_interval_s,
        rollouts=tuple(rollout) if rollout else None,
        max_backoff_s=backoff_s,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        err_console.print(f"{signal.Signals(signum).name}: stopping after this tick")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if migrate_when_reachable(ctx.database_url, config, stop, migrate=migrate):
        ControllerLoop(ctx.ports(), ctx.lock_engine, config).run(stop)
