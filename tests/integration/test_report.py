"""Rollout reports from a real PostgreSQL: all three formats, figures that match the store."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from shadowcanary.cli.report import report_command
from shadowcanary.events import Arm, CallStatus
from shadowcanary.judge.decide import Decision, DecisionKind
from shadowcanary.judge.triggers import TriggerResult, Verdict
from shadowcanary.plan import RolloutPlan, TriggerMode
from shadowcanary.report import load_report, render_html, render_markdown, report_dict
from shadowcanary.rollout_records import AuditAction, AuditEntry, RolloutStatus
from shadowcanary.settings import load_settings
from shadowcanary.shadow_results import ReplayKind, ReplayRecord, ReplayStatus
from shadowcanary.store.db import make_engine
from shadowcanary.store.inputs import AssessedCapture
from shadowcanary.store.models import ComparisonRow
from shadowcanary.store.repository import Store
from shadowcanary.store.rollouts import RolloutStore
from shadowcanary.testing.factories import (
    DEFAULT_ROLLOUT,
    make_comparison,
    make_event,
    make_flags,
    make_output,
)

pytestmark = pytest.mark.integration

PRICES = {"gpt-5.2": (1.75, 14.0), "gpt-5.5": (5.0, 30.0)}
HOSTILE_PROMPT = "Ignore this <script>alert('x')</script> and mail jane.doe@example.com"
HOSTILE_ANSWER = "<img src=x onerror=alert(1)> **bold** | pipe ``` fence"


@dataclass(frozen=True, slots=True)
class Seeded:
    """What a seeded rollout contains, for assertions."""

    name: str
    started_at: datetime
    worst_event_id: str
    step_times: tuple[datetime, ...]


def _plan(name: str = DEFAULT_ROLLOUT) -> RolloutPlan:
    return RolloutPlan(name=name, flag="support-model", baseline="gpt-5.2", candidate="gpt-5.5")


def _trigger(
    name: str, kind: str, statistic: float, verdict: Verdict, threshold: float
) -> TriggerResult:
    return TriggerResult(
        name=name,
        kind=kind,
        mode=TriggerMode.ACT,
        verdict=verdict,
        n_baseline=500,
        n_candidate=60,
        baseline_value=0.01,
        candidate_value=0.04,
        estimate=0.03,
        statistic=statistic,
        threshold=threshold,
        alpha=1 / threshold,
        margin=0.01,
        lower=0.005,
        upper=0.06,
        detail="test",
    )


def _decision(at: datetime, kind: DecisionKind, frm: int, to: int | None, e: float) -> Decision:
    verdict = Verdict.HARM if e >= 250 else Verdict.INCONCLUSIVE
    return Decision(
        kind=kind,
        reason=f"{kind.value} at e={e}",
        from_percent=frm,
        to_percent=to,
        decided_at=at,
        triggers=(
            _trigger("error_rate", "rate", e, verdict, 250.0),
            _trigger("p99_latency", "tail", max(0.5, e / 10), Verdict.INCONCLUSIVE, 1000.0),
        ),
    )


def seed_rollout(engine: Engine, *, now: datetime, minutes: int = 80) -> Seeded:
    """A rollout that went 0 -> 10 -> 30 % and was rolled back on errors, with real rows."""
    rng = random.Random(7)
    controller, store = RolloutStore(engine), Store(engine)
    t0 = (now - timedelta(minutes=minutes + 5)).replace(second=0, microsecond=0)
    record = controller.create_rollout(_plan(), now=t0, actor="cli:sre")
    steps = [(t0 + timedelta(minutes=5), 10), (t0 + timedelta(minutes=35), 30)]
    rollback_at = t0 + timedelta(minutes=70)
    frm = 0
    for at, percent in steps:
        decision = _decision(at, DecisionKind.ADVANCE, frm, percent, 3.0)
        record = controller.save(
            replace(record, percent=percent, step_index=record.step_index + 1, updated_at=at),
            AuditEntry(
                None,
                at,
                record.name,
                "controller",
                AuditAction.ADVANCE,
                frm,
                percent,
                decision.reason,
                decision.to_dict(),
            ),
        )
        frm = percent
    for minute in range(10, 70, 10):
        at = t0 + timedelta(minutes=minute, seconds=30)
        e = 2.0 ** (minute / 10) if minute < 60 else 400.0
        decision = _decision(at, DecisionKind.HOLD, frm, None, e)
        controller.append_audit(
            AuditEntry(
                None,
                at,
                record.name,
                "controller",
                AuditAction.HOLD,
                frm,
                None,
                decision.reason,
                decision.to_dict(),
            )
        )
    decision = _decision(rollback_at, DecisionKind.ROLLBACK, 30, 0, 600.0)
    controller.save(
        replace(record, percent=0, status=RolloutStatus.ROLLED_BACK, updated_at=rollback_at),
        AuditEntry(
            None,
            rollback_at,
            record.name,
            "controller",
            AuditAction.ROLLBACK,
            30,
            0,
            "error_rate: harm",
            decision.to_dict(),
        ),
    )

    captures: list[AssessedCapture] = []
    for minute in range(minutes):
        start = t0 + timedelta(minutes=minute)
        share = 0 if minute < 5 else 10 if minute < 35 else 30 if minute < 70 else 0
        for i in range(10):
            arm = Arm.CANDIDATE if rng.random() * 100 < share else Arm.BASELINE
            bad = arm is Arm.CANDIDATE and minute >= 55 and rng.random() < 0.3
            latency = rng.uniform(300, 900) * (1.4 if arm is Arm.CANDIDATE else 1.0)
            model = "gpt-5.5" if arm is Arm.CANDIDATE else "gpt-5.2"
            completion = 60 if arm is Arm.CANDIDATE else 48
            event = make_event(
                arm=arm,
                started_at=start + timedelta(seconds=i * 5),
                latency_ms=latency,
                status=CallStatus.ERROR if bad else CallStatus.OK,
                completion_tokens=None if bad else completion,
            )
            price_in, price_out = PRICES[model]
            cost = None if bad else (62 * price_in + completion * price_out) / 1e6
            captures.append(AssessedCapture(event=event, flags=make_flags(), cost_usd=cost))
    store.insert_captures(captures, received_at=now)

    baseline_ok = [c.event for c in captures if c.event.arm is Arm.BASELINE and c.event.response]
    worst = make_event(
        started_at=t0 + timedelta(minutes=20),
        request={"messages": [{"role": "user", "content": HOSTILE_PROMPT}]},
        response={"text": "Sure: write to jane.doe@example.com", "finish_reason": "stop"},
    )
    store.insert_captures([AssessedCapture(worst, make_flags(), None)], received_at=now)
    records = [_replay(worst.event_id, ReplayKind.CANDIDATE, 0.05, HOSTILE_ANSWER)]
    for event in baseline_ok[:60]:
        records.append(_replay(event.event_id, ReplayKind.CANDIDATE, rng.uniform(0.3, 1.0)))
    for event in baseline_ok[60:90]:
        records.append(_replay(event.event_id, ReplayKind.NOISE, rng.uniform(0.8, 1.0)))
    store.record_replays(records, recorded_at=now)
    return Seeded(
        name=record.name,
        started_at=t0,
        worst_event_id=worst.event_id,
        step_times=(t0, *(at for at, _ in steps), rollback_at),
    )


def _replay(
    event_id: str, kind: ReplayKind, similarity: float, text: str | None = None
) -> ReplayRecord:
    model = "gpt-5.5" if kind is ReplayKind.CANDIDATE else "gpt-5.2"
    output = make_output(model=model, completion_tokens=58 if kind is ReplayKind.CANDIDATE else 48)
    if text is not None:
        output = replace(output, text=text)
    return ReplayRecord(
        event_id=event_id,
        kind=kind,
        status=ReplayStatus.OK,
        output=output,
        comparison=make_comparison(lexical_similarity=similarity),
        attempts=1,
    )


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=2)
    yield engine
    engine.dispose()


def _run_cli(database_url: str, *args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    import typer

    app = typer.Typer()
    app.command()(report_command)
    result = runner.invoke(
        app,
        list(args),
        env={"SHADOWCANARY_DATABASE_URL": database_url, "SHADOWCANARY_LOG_LEVEL": "warning"},
    )
    return result.exit_code, result.stdout, result.stderr


def test_json_figures_match_the_store(engine: Engine) -> None:
    """The JSON report's counts, percentiles, histogram and cost projection equal the store's."""
    now = datetime.now(UTC)
    seeded = seed_rollout(engine, now=now)
    data = load_report(engine, load_settings({}), seeded.name, now=now)
    report = json.loads(json.dumps(report_dict(data)))

    # A finished rollout's figures end with it (the minute of its rollback included).
    ended = seeded.step_times[-1] + timedelta(minutes=1)
    totals = Store(engine).live_totals(seeded.name, seeded.started_at, ended)
    for arm in Arm:
        got = report["arms"][arm.value]
        assert got["requests"] == totals[arm].requests > 0
        assert got["failures"] == totals[arm].failures
        assert got["latency_ms"]["p99"] == pytest.approx(totals[arm].latency_quantile_ms(0.99))
        assert got["latency_ms"]["p50"] == pytest.approx(totals[arm].latency_quantile_ms(0.5))
        series = report["series"][arm.value]
        assert sum(p["requests"] for p in series) == totals[arm].requests
    assert report["arms"]["candidate"]["failures"] > 0  # the regression is in the figures

    with engine.connect() as conn:
        by_kind = dict(
            conn.execute(
                select(ComparisonRow.kind, func.count()).group_by(ComparisonRow.kind)
            ).all()
        )
        lowest = conn.execute(select(func.min(ComparisonRow.lexical_similarity))).scalar_one()
    assert report["similarity"]["candidate_n"] == by_kind["candidate"] == 61
    assert report["similarity"]["noise_n"] == by_kind["noise"] == 30
    assert report["divergent"][0]["similarity"] == pytest.approx(lowest)
    assert report["divergent"][0]["event_id"] == seeded.worst_event_id

    # The cost model by hand: tokens x list price, requests/day x delta x 30.
    base, cand = report["cost"]["baseline"], report["cost"]["candidate"]
    assert base["cost_per_request_usd"] == pytest.approx((62 * 1.75 + 48 * 14.0) / 1e6)
    assert cand["source"] == "live"
    assert cand["cost_per_request_usd"] == pytest.approx((62 * 5.0 + 60 * 30.0) / 1e6)
    total = totals[Arm.BASELINE].requests + totals[Arm.CANDIDATE].requests
    # From the first call (t0) to the last before the end (minute 70, 45 s in): the
    # span, not whole minutes.
    per_day = total / (timedelta(minutes=70, seconds=45) / timedelta(days=1))
    assert report["cost"]["requests_per_day"] == pytest.approx(per_day)
    assert report["cost"]["monthly_delta_usd"] == pytest.approx(
        per_day * 30 * (cand["cost_per_request_usd"] - base["cost_per_request_usd"])
    )

    assert [m["to_percent"] for m in report["steps"]] == [0, 10, 30, 0]
    assert [m["at"] for m in report["steps"]] == [t.isoformat() for t in seeded.step_times]
    error_rate = next(t for t in report["triggers"] if t["name"] == "error_rate")
    assert [p["statistic"] for p in error_rate["points"]][-1] == 600.0
    assert {p["threshold"] for p in error_rate["points"]} == {250.0}
    assert report["last_decision"]["action"] == "rollback"


def test_all_three_formats_from_the_cli(database_url: str, engine: Engine, tmp_path: Path) -> None:
    """`report --format html|md|json` writes each format; texts are redacted and escaped."""
    seeded = seed_rollout(engine, now=datetime.now(UTC))
    outputs = {}
    for fmt in ("html", "md", "json"):
        path = tmp_path / f"report.{fmt}"
        code, _, err = _run_cli(database_url, seeded.name, "--format", fmt, "--output", str(path))
        assert code == 0, err
        outputs[fmt] = path.read_text("utf-8")

    html = outputs["html"]
    assert "<script" not in html and "<img" not in html  # hostile texts are escaped
    assert "&lt;script&gt;" in html and "&lt;img src=x" in html
    assert "jane.doe@example.com" not in html and "[EMAIL]" in html
    assert len(re.findall(r"<svg ", html)) >= 6
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert "Projected monthly cost delta" in html and "requests/day" in html

    md = outputs["md"]
    assert "# Rollout report: " + seeded.name in md
    assert "jane.doe@example.com" not in md and "[EMAIL]" in md
    # Answers sit in a fence longer than their own ``` run: shown literally, never rendered.
    assert f"````text\n{HOSTILE_ANSWER}\n````" in md
    assert "| error_rate | act | harm | 600 |" in md

    data = json.loads(outputs["json"])
    assert data["report_format"] == 1
    assert data["rollout"]["name"] == seeded.name and data["rollout"]["status"] == "rolled_back"


def test_a_rollout_that_just_started_says_no_data_yet(database_url: str, engine: Engine) -> None:
    """A rollout with no traffic or decisions renders every format with "no data yet"."""
    now = datetime.now(UTC)
    RolloutStore(engine).create_rollout(_plan("fresh-rollout"), now=now, actor="cli:sre")
    data = load_report(engine, load_settings({}), "fresh-rollout", now=now)
    html, md = render_html(data), render_markdown(data)
    assert html.count("no data yet") >= 6
    assert "<svg " not in html
    assert md.count("no data yet") >= 4
    figures = report_dict(data)
    assert figures["has_live_data"] is False
    assert figures["cost"]["monthly_delta_usd"] is None
    assert [m["to_percent"] for m in figures["steps"]] == [0]

    code, out, _ = _run_cli(database_url, "fresh-rollout", "--format", "json")
    assert code == 0 and json.loads(out)["similarity"]["candidate_n"] == 0


def test_unknown_rollout_is_one_error_line(database_url: str, engine: Engine) -> None:
    """An unknown rollout exits 1 with the error and the known names, not a traceback."""
    RolloutStore(engine).create_rollout(_plan("known-one"), now=datetime.now(UTC), actor="x")
    code, _, err = _run_cli(database_url, "nope", "--format", "md")
    assert code == 1
    assert "no rollout named 'nope'" in err and "known-one" in err
    assert "Traceback" not in err


def test_cost_projection_uses_the_observed_span_not_whole_minutes(engine: Engine) -> None:
    """A 132 s run projects requests/day from 132 s (not 3 minutes) and says so."""
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(minutes=10)
    RolloutStore(engine).create_rollout(_plan("short-run"), now=start, actor="cli:sre")
    # 133 calls one second apart from 20 s into a minute: 132 s, over three clock minutes.
    first = start.replace(second=20) + timedelta(minutes=1)
    events = [
        make_event(rollout="short-run", started_at=first + timedelta(seconds=i), latency_ms=400.0)
        for i in range(133)
    ]
    Store(engine).insert_captures(
        [AssessedCapture(event, make_flags(), 0.001) for event in events], received_at=now
    )
    cost = load_report(engine, load_settings({}), "short-run", now=now).cost
    assert cost.requests_per_day == pytest.approx(133 / (132 / 86_400))
    assert "133 live requests observed (both arms) over 2 min 12 s" in cost.assumption


def test_a_finished_rollouts_charts_span_the_rollout_not_the_report_time(
    engine: Engine,
) -> None:
    """Made two days after a rollback, a report's time axis runs from start to rollback."""
    ended_days_ago = datetime.now(UTC) - timedelta(days=2)
    seeded = seed_rollout(engine, now=ended_days_ago)
    data = load_report(engine, load_settings({}), seeded.name, now=datetime.now(UTC))
    rolled_back_at = seeded.step_times[-1]
    assert data.since == seeded.started_at
    assert data.until == rolled_back_at + timedelta(minutes=1)
    assert data.bucket_minutes == 2  # 71 minutes of chart, not two days
    assert {len(points) for points in data.series.values()} == {36}  # ceil(71 / 2)
