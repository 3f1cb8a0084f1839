"""The phase of a rollout in words, as `rollout status`, the runbook and the report show it."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from rich.console import Console

from shadowcanary.controller.phase_view import phase_view, span
from shadowcanary.controller.views import render_rollout
from shadowcanary.plan import parse_plan
from shadowcanary.report.spend import spend_per_decision
from shadowcanary.rollout_records import AuditAction, AuditEntry, RolloutRecord, RolloutStatus
from shadowcanary.store.report_reads import SpendMinute

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
PLAN = parse_plan("name: c\nflag: f\nbaseline: gpt-5.2\ncandidate: gpt-5.5\n")
GATE_REASON = "shadow gate: 412/640 comparisons, 3.0 h of 7 d, quality certified"
RECORD = RolloutRecord("c", PLAN, RolloutStatus.RUNNING, -1, 0, T0, T0, T0, None, 1)


def test_the_gate_says_what_it_waits_for() -> None:
    """Before the first step with a gate: phase shadow_gate, waiting for the gate's reason."""
    view = phase_view(RECORD, GATE_REASON)
    assert view.phase == "shadow_gate" and view.waiting == GATE_REASON
    assert "no user sees gpt-5.5" in view.headline and "7 d of shadow traffic" in view.headline


def test_the_watch_says_when_the_baseline_may_go() -> None:
    """At 100 % with a watch: not before the watch's end; after COMPLETE: yes."""
    watching = replace(RECORD, step_index=3, percent=100)
    view = phase_view(watching, "watch: triggers armed; waiting for 5 min of 1440 min")
    assert view.phase == "watch"
    assert view.decommission.startswith("not yet: not before 2026-07-02 12:00")
    done = phase_view(replace(watching, status=RolloutStatus.COMPLETED), None)
    assert done.decommission.startswith("yes: the watch passed")


def test_status_shows_the_phase_and_what_it_waits_for() -> None:
    """`rollout status NAME` prints the phase, what it waits for and the decommission answer."""
    row = {
        "name": "c", "flag": "f", "baseline": "gpt-5.2", "candidate": "gpt-5.5",
        "status": "running", "percent": 0, "started_at": T0.isoformat(), "step_index": -1,
        "steps": [10, 30, 50, 100], "step_started_at": T0.isoformat(), "baseline_p99_ms": None,
        "last_decision": None, "last_change": None, "phase": "shadow_gate",
        "phase_headline": "shadow gate: no user sees gpt-5.5", "waiting_for": GATE_REASON,
        "baseline_decommission": "no",
    }  # fmt: skip
    out = io.StringIO()
    Console(file=out, width=200).print(render_rollout(row))
    text = out.getvalue()
    assert "shadow gate" in text and "412/640 comparisons" in text
    assert "decommission gpt-5.2?" in text


def test_spans_read_like_a_plan() -> None:
    """Durations print as an SRE writes them."""
    assert PLAN.shadow is not None and PLAN.watch is not None
    assert [span(PLAN.shadow.min_duration), span(PLAN.watch.duration)] == ["7 d", "24 h"]


def test_spend_goes_to_the_first_decision_after_its_minute_closed() -> None:
    """A minute's replays count for the first decision taken once that minute is closed."""

    def entry(minutes: float) -> AuditEntry:
        at = T0 + timedelta(minutes=minutes)
        return AuditEntry(None, at, "c", "controller", AuditAction.HOLD, 0, None, "r", {"k": 1})

    minutes = [SpendMinute(T0 + timedelta(minutes=m), 10, 100, 0.5) for m in range(4)]
    spent = spend_per_decision([entry(1.5), entry(3.0)], minutes)
    assert [(s.replays, s.tokens) for s in spent] == [(10, 100), (20, 200)]  # minute 3 is open
