"""What the demo shows: a live rich view on a terminal, one line per event elsewhere (CI logs).

Per rollout: step and percentage, status, the last decision and its reason, traffic
per arm, the key trigger numbers; plus the pipeline's counts. At the end, where to
look next: the audit log, the runbooks and the reports.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from shadowcanary.judge.triggers import TriggerResult
from shadowcanary.rollout_records import RolloutStatus
from shadowcanary.settings import Settings

log = structlog.get_logger(__name__)

KEY_TRIGGERS = ("error_rate", "p99_latency", "quality")
_STATUS_STYLE = {
    RolloutStatus.COMPLETED: "bold green",
    RolloutStatus.ROLLED_BACK: "bold red",
    RolloutStatus.RUNNING: "cyan",
}


@dataclass
class LaneView:
    """What the view knows of one rollout (updated by the demo after each tick)."""

    name: str
    candidate: str
    story: str
    status: RolloutStatus = RolloutStatus.RUNNING
    percent: int = 0
    step: int = -1
    last: str = "-"
    arms: dict[str, tuple[int, int]] = field(default_factory=dict)  # arm -> (calls, failed)
    triggers: dict[str, TriggerResult] = field(default_factory=dict)


PipelineSource = Callable[[], tuple[Any, Any]]  # (StoreCounts, TapStats)


class DemoView:
    """Live frames on a terminal; plain lines (one per decision) when not a terminal."""

    def __init__(self, console: Console, *, fast: bool) -> None:
        self._console = console
        self._fast = fast
        self._lanes: list[LaneView] = []
        self._live: Live | None = None
        self._phase = "starting"
        self._minute = 0
        self._wall_per_minute: list[float] = []
        self._log: list[str] = []
        self._pipeline: PipelineSource | None = None

    @property
    def interactive(self) -> bool:
        return self._console.is_terminal

    @contextlib.contextmanager
    def live(self) -> Iterator[None]:
        if not self.interactive:
            self._console.print("shadowcanary demo: two rollouts on simulated models")
            yield
            return
        with Live(console=self._console, auto_refresh=False, transient=False) as live:
            self._live = live
            try:
                yield
            finally:
                self._refresh()
                self._live = None

    def watch(self, lanes: Sequence[LaneView], pipeline: PipelineSource) -> None:
        self._lanes = list(lanes)
        self._pipeline = pipeline
        self._refresh()

    def phase(self, text: str) -> None:
        self._phase = text
        self._refresh()

    def decision(
        self, lane: LaneView, minute: int, kind: str, reason: str, to_percent: int | None
    ) -> None:
        target = "" if to_percent is None else f" -> {to_percent} %"
        lane.last = f"{kind}{target}: {reason}"
        self._line(f"[minute {minute:>2}] {lane.name}: {kind}{target} — {reason}")

    def event(self, lane: LaneView, minute: int, text: str) -> None:
        self._line(f"[minute {minute:>2}] {lane.name}: {text}")

    def warn(self, text: str) -> None:
        self._line(f"warning: {text}")

    def minute_done(self, minute: int, wall_s: float) -> None:
        self._minute = minute
        self._wall_per_minute.append(wall_s)
        self._phase = f"simulated minute {minute} done"
        if not self.interactive:
            arms = "; ".join(f"{lane.name} {lane.percent} % {_arms(lane)}" for lane in self._lanes)
            self._console.print(
                f"[minute {minute:>2}] {wall_s:.1f} s wall — {arms}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        self._refresh()

    def _line(self, text: str) -> None:
        self._log.append(text)
        if self.interactive:
            self._refresh()
        else:
            self._console.print(text, markup=False, highlight=False, soft_wrap=True)

    def _seconds_per_minute(self) -> str:
        if not self._wall_per_minute:
            return "~1.5 s" if not self._fast else "~1 s"
        recent = self._wall_per_minute[-5:]
        return f"~{sum(recent) / len(recent):.1f} s"

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render(), refresh=True)

    def _render(self) -> Group:
        header = Panel(
            f"[bold]{self._phase}[/]\n"
            f"simulated time: minute {self._minute}, 1 min per {self._seconds_per_minute()} "
            "of wall time (the controller and the tap share an accelerated clock)\n"
            "models are SIMULATED; Redis, the worker, Postgres, the flags and the judge are real",
            title="shadowcanary demo" + (" --fast" if self._fast else ""),
        )
        parts: list[Any] = [header, self._rollouts()]
        if self._pipeline is not None:
            parts.append(_pipeline_line(*self._pipeline()))
        if self._log:
            parts.append(Panel(escape("\n".join(self._log[-8:])), title="decisions"))
        return Group(*parts)

    def _rollouts(self) -> Table:
        table = Table(title="rollouts", expand=True)
        for column in ("rollout", "step / %", "status", "traffic (calls/failed)", "triggers"):
            table.add_column(column)
        table.add_column("last decision", ratio=2)
        for lane in self._lanes:
            style = _STATUS_STYLE.get(lane.status, "yellow")
            step = "-" if lane.step < 0 else str(lane.step + 1)
            table.add_row(
                f"{lane.name}\n[dim]{lane.candidate}: {lane.story}[/]",
                f"{step} / {lane.percent} %",
                f"[{style}]{lane.status.value}[/]",
                _arms(lane),
                "\n".join(_trigger(lane.triggers[n]) for n in KEY_TRIGGERS if n in lane.triggers),
                lane.last,
            )
        return table


def _arms(lane: LaneView) -> str:
    return ", ".join(f"{arm} {calls}/{failed}" for arm, (calls, failed) in lane.arms.items())


def _trigger(t: TriggerResult) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    if t.kind == "rate":
        numbers = f"cand {pct(t.candidate_value)} vs base {pct(t.baseline_value)}"
    elif t.estimate is not None:
        numbers = f"harm {t.estimate:.3g} (margin {t.margin:.3g})"
    else:
        numbers = f"n={t.n_candidate}"
    return f"{t.name}: {t.verdict.value}, {numbers}, e={t.statistic:.3g}/{t.threshold:.3g}"


def _pipeline_line(counts: Any, tap: Any) -> Panel:
    return Panel(
        f"tap: emitted {tap.emitted:,}, published {tap.published:,}, dropped "
        f"{tap.dropped_total:,}   store: captured {counts.captured_total:,}, replayed "
        f"{counts.replayed_total:,}, compared {counts.compared:,}, dead-lettered "
        f"{counts.dead_lettered:,}",
        title="pipeline (tap -> Redis -> worker -> Postgres)",
    )


def print_judged_pair(console: Console, engine: Any, rollout: str) -> None:
    """One pair the LLM judge decided in both orders, the two answers side by side."""
    from datetime import UTC, datetime, timedelta

    from rich.columns import Columns
    from rich.panel import Panel

    from shadowcanary.report.judge_section import judged_pairs

    since = datetime.now(UTC) - timedelta(days=1)
    pairs: tuple[Any, ...] = ()
    with engine.connect() as conn:
        for outcome in ("win", "loss", "tie"):
            pairs = judged_pairs(conn, rollout, since, _clip, outcome=outcome, limit=1)
            if pairs:
                break
    console.print("\n[bold]The LLM judge on one pair[/] (" + rollout + ")")
    if not pairs:
        console.print("  no pair judged the same way in both orders yet")
        return
    pair = pairs[0]
    console.print(f"  prompt ({pair.route}): {pair.prompt}")
    reference = "asked again" if pair.reference == "baseline_again" else "live"
    console.print(
        Columns(
            [
                Panel(pair.baseline_answer, title=f"baseline ({reference})", width=48),
                Panel(pair.candidate_answer, title="candidate", width=48),
            ]
        )
    )
    verdict = {"win": "candidate better", "loss": "baseline better", "tie": "a tie"}[outcome]
    console.print(f"  verdict, in both orders: {verdict}; the judge: {pair.rationale}")


def _clip(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[:limit] + " …"


def print_where_to_look(
    console: Console, settings: Settings, engine: Any, rollouts: Sequence[str]
) -> list[Path]:
    """Where the audit log, the runbooks and the reports of ``rollouts`` are; writes the reports.

    Returns the report files written (none when the report package is unavailable).
    """
    from runbooks.generator import output_dir_for

    runbook_dir = output_dir_for(settings)
    report_dir = Path(settings.data_dir) / "reports"
    written: list[Path] = []
    console.print("\n[bold]Where to look next[/]")
    for name in rollouts:
        console.print(f"\n[bold]{name}[/]")
        console.print(f"  audit log:  shadowcanary rollout history {name}")
        runbook = runbook_dir / f"{name}.md"
        where = str(runbook) if runbook.exists() else f"{runbook} (not written)"
        console.print(f"  runbook:    {where}  (again: shadowcanary runbook {name})")
        report = _write_report(settings, engine, name, report_dir)
        if report is not None:
            written.append(report)
            console.print(f"  report:     {report}")
        console.print(f"  report cmd: shadowcanary report {name} -o {name}.html")
    return written


def _write_report(settings: Settings, engine: Any, name: str, directory: Path) -> Path | None:
    """The HTML report of ``name`` in ``directory``, or None when it cannot be built."""
    from datetime import UTC, datetime

    try:
        from shadowcanary.report import load_report, render
    except ImportError:
        return None
    try:
        data = load_report(engine, settings, name, now=datetime.now(UTC))
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.html"
        path.write_text(render(data, "html"), encoding="utf-8")
    except Exception as exc:  # noqa: BLE001 - a report failure must not hide the demo's result
        log.warning("demo_report_failed", rollout=name, error=type(exc).__name__)
        return None
    return path
