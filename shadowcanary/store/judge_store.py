"""The LLM judge's rows: what it needs to judge an event, its verdicts and their rollups.

Verdicts are written once per (event, kind): a redelivered judge task adds nothing.
Each new verdict is rolled up into ``judge_rollups`` by the minute of its live call
(like the shadow rollups), so the judge_score trigger reads O(minutes) moments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, func, select

from shadowcanary.events import CapturedCall
from shadowcanary.judge.evidence import Bucket, Moments, RouteJudgement
from shadowcanary.judge.pairwise import PairOutcome
from shadowcanary.plan import JudgeRubric
from shadowcanary.shadow_results import JudgeRecord, JudgeStatus, ReplayKind, ReplayStatus
from shadowcanary.store import bulk
from shadowcanary.store.models import JUDGE_COUNTERS, JudgeRollupRow, JudgeVerdictRow
from shadowcanary.store.repository import Store
from shadowcanary.store.rollups import minute_of, rollout_key

VERDICTS: Table = JudgeVerdictRow.__table__  # type: ignore[assignment]
JUDGE_ROLLUPS: Table = JudgeRollupRow.__table__  # type: ignore[assignment]


def answer_text(output: Mapping[str, Any] | None) -> str | None:
    """What the judge reads of a stored answer: its text, else its refusal or tool calls.

    Tool calls are shown as text (name and arguments) and never run.
    """
    if not output:
        return None
    text = output.get("text")
    if isinstance(text, str) and text:
        return text
    calls = output.get("tool_calls") or []
    if calls:
        return "\n".join(
            f"tool call {c.get('name')}({c.get('arguments')})" for c in calls if isinstance(c, dict)
        )
    refusal = output.get("refusal")
    return refusal if isinstance(refusal, str) and refusal else None


@dataclass(frozen=True, slots=True)
class JudgeInputs:
    """One captured event with the answers its replays gave (None: no usable answer)."""

    event: CapturedCall
    candidate: str | None
    baseline_again: str | None
    noise_replayed: bool  # a noise replay finished (ok or not): no need to wait for it
    judged: frozenset[ReplayKind] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class JudgeMinute:
    """One minute of one rollout's judge rollups, as the evidence reads it."""

    candidate: Moments = field(default_factory=Moments)
    noise: Moments = field(default_factory=Moments)
    failed: int = 0
    skipped_budget: int = 0


class JudgeStore(Store):
    """Reads and writes of the LLM judge (same engine and transactions as ``Store``)."""

    def judge_inputs(self, event_ids: Sequence[str]) -> dict[str, JudgeInputs]:
        """The captures, their replays' answers and what is judged already, in one query."""
        if not event_ids:
            return {}
        rows = self._read(
            "reading events to judge",
            lambda conn: conn.exec_driver_sql(
                "SELECT c.event_id, c.event::text,"
                " (SELECT json_agg(json_build_array(r.kind, r.status, r.output))"
                "  FROM replays r WHERE r.event_id = c.event_id),"
                " (SELECT array_agg(j.kind) FROM judge_verdicts j WHERE j.event_id = c.event_id)"
                " FROM captures c WHERE c.event_id = ANY(%s)",
                (list(event_ids),),
            ).all(),
        )
        out: dict[str, JudgeInputs] = {}
        for event_id, event_json, replays, judged in rows:
            answers: dict[str, str | None] = {}
            finished: set[str] = set()
            for kind, status, output in replays or ():
                finished.add(kind)
                answers[kind] = answer_text(output) if status == ReplayStatus.OK.value else None
            out[event_id] = JudgeInputs(
                event=CapturedCall.model_validate_json(event_json),
                candidate=answers.get(ReplayKind.CANDIDATE.value),
                baseline_again=answers.get(ReplayKind.NOISE.value),
                noise_replayed=ReplayKind.NOISE.value in finished,
                judged=frozenset(ReplayKind(k) for k in judged or ()),
            )
        return out

    def record_verdicts(self, records: Sequence[JudgeRecord], *, recorded_at: datetime) -> int:
        """Store verdicts and roll up the new ones; returns how many were new."""
        unique = {(r.event_id, r.kind.value): r for r in records}
        if not unique:
            return 0
        ordered = [unique[key] for key in sorted(unique)]
        event_ids = sorted({r.event_id for r in ordered})

        def work(conn: Connection) -> int:
            captured = {
                row.event_id: row
                for row in conn.exec_driver_sql(
                    "SELECT event_id, rollout, route, started_at FROM captures "
                    "WHERE event_id = ANY(%s) ORDER BY event_id FOR NO KEY UPDATE",
                    (event_ids,),
                )
            }
            kept = [r for r in ordered if r.event_id in captured]
            if not kept:
                return 0
            new_keys = set(
                bulk.insert_new(
                    conn,
                    VERDICTS,
                    [_verdict_row(r, captured[r.event_id], recorded_at) for r in kept],
                    conflict=("event_id", "kind"),
                    returning=("event_id", "kind"),
                )
            )
            new = [r for r in kept if (r.event_id, r.kind.value) in new_keys]
            buckets: dict[tuple[str, str, str, datetime], dict[str, float]] = {}
            for record in new:
                capture = captured[record.event_id]
                key = (
                    rollout_key(capture.rollout),
                    record.kind.value,
                    capture.route,
                    minute_of(capture.started_at),
                )
                _add(buckets.setdefault(key, dict.fromkeys(JUDGE_COUNTERS, 0.0)), record)
            rows = [
                {"rollout": k[0], "kind": k[1], "route": k[2], "minute": k[3]} | _typed(buckets[k])
                for k in sorted(buckets)
            ]
            bulk.upsert_add(conn, JUDGE_ROLLUPS, rows, keys=("rollout", "kind", "route", "minute"))
            return len(new)

        return self._transaction("recording judge verdicts", work)

    def plan_judging(self, rollout: str) -> tuple[JudgeRubric, bool] | None:
        """A rollout plan's rubric and whether its ``judge_score`` trigger is on (None: no
        such rollout)."""
        found = self._read(
            "reading a plan's judge settings",
            lambda conn: conn.exec_driver_sql(
                "SELECT plan->'judge', (plan->'triggers'->'judge_score'->>'enabled')::boolean"
                " FROM rollouts WHERE name = %s",
                (rollout,),
            ).first(),
        )
        if found is None:
            return None
        rubric = JudgeRubric.model_validate(found[0]) if found[0] else JudgeRubric()
        return rubric, bool(found[1])

    def judge_totals(self, rollout: str) -> dict[ReplayKind, dict[str, float]]:
        """Every judge counter of a rollout summed per kind (reports, tests)."""
        stmt = (
            select(
                JUDGE_ROLLUPS.c.kind,
                *(func.coalesce(func.sum(JUDGE_ROLLUPS.c[n]), 0) for n in JUDGE_COUNTERS),
            )
            .where(JUDGE_ROLLUPS.c.rollout == rollout)
            .group_by(JUDGE_ROLLUPS.c.kind)
        )
        rows = self._read("reading judge totals", lambda conn: conn.execute(stmt).all())
        totals = {kind: dict.fromkeys(JUDGE_COUNTERS, 0.0) for kind in ReplayKind}
        for kind, *values in rows:
            totals[ReplayKind(kind)] = {
                n: float(v) for n, v in zip(JUDGE_COUNTERS, values, strict=True)
            }
        return totals


def judge_minutes(
    conn: Connection, rollout: str, since: datetime, until: datetime
) -> tuple[dict[datetime, JudgeMinute], tuple[RouteJudgement, ...]]:
    """The rollout's judge rollups per minute in [since, until), and per route (evidence)."""
    t = JUDGE_ROLLUPS
    stmt = select(
        t.c.kind,
        t.c.route,
        t.c.minute,
        t.c.judged,
        t.c.score_sum,
        t.c.score_sq_sum,
        t.c.failed,
        t.c.skipped_budget,
    ).where(t.c.rollout == rollout, t.c.minute >= since, t.c.minute < until)
    minutes: dict[datetime, dict[str, Any]] = {}
    routes: dict[str, Moments] = {}
    for kind, route, minute, judged, total, sq, failed, skipped in conn.execute(stmt):
        found = minutes.setdefault(
            minute_of(minute),
            {"candidate": Moments(), "noise": Moments(), "failed": 0, "skipped": 0},
        )
        moments = Moments(int(judged), float(total), float(sq))
        if kind == ReplayKind.CANDIDATE.value:
            found["candidate"] += moments
            routes[route] = routes.get(route, Moments()) + moments
        else:
            found["noise"] += moments
        found["failed"] += int(failed)
        found["skipped"] += int(skipped)
    by_minute = {
        at: JudgeMinute(f["candidate"], f["noise"], f["failed"], f["skipped"])
        for at, f in minutes.items()
    }
    by_route = tuple(RouteJudgement(route, m) for route, m in sorted(routes.items()))
    return by_minute, by_route


def _verdict_row(record: JudgeRecord, capture: Any, recorded_at: datetime) -> dict[str, Any]:
    verdict = record.verdict
    return {
        "event_id": record.event_id,
        "kind": record.kind.value,
        "rollout": capture.rollout,
        "route": capture.route,
        "recorded_at": recorded_at,
        "status": record.status.value,
        "judge_model": record.judge_model,
        "reference": record.reference.value,
        "prompt_redacted": record.prompt_redacted,
        "outcome": verdict.outcome.value if verdict else None,
        "reference_first": verdict.reference_first.value if verdict else None,
        "other_first": verdict.other_first.value if verdict else None,
        "position_disagreement": verdict.position_disagreement if verdict else None,
        "rationale": record.rationale,
        "reference_chars": record.reference_chars,
        "other_chars": record.other_chars,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cost_usd": record.cost_usd,
        "error_class": record.error_class,
        "error_message": record.error_message,
    }


def _add(c: dict[str, float], record: JudgeRecord) -> None:
    c["prompt_tokens"] += record.prompt_tokens
    c["completion_tokens"] += record.completion_tokens
    c["cost_usd"] += record.cost_usd
    if record.status is JudgeStatus.FAILED:
        c["failed"] += 1
        return
    if record.status is JudgeStatus.SKIPPED_BUDGET or record.verdict is None:
        c["skipped_budget"] += 1
        return
    verdict = record.verdict
    c["judged"] += 1
    c["wins"] += verdict.outcome is PairOutcome.WIN
    c["ties"] += verdict.outcome is PairOutcome.TIE
    c["losses"] += verdict.outcome is PairOutcome.LOSS
    c["position_disagreements"] += verdict.position_disagreement
    c["redacted"] += record.prompt_redacted
    c["score_sum"] += verdict.net_loss
    c["score_sq_sum"] += verdict.net_loss**2


def _typed(counters: Mapping[str, float]) -> dict[str, Any]:
    t = JUDGE_ROLLUPS
    return {
        name: value if t.c[name].type.python_type is float else int(value)
        for name, value in counters.items()
    }


def with_judge(
    buckets: tuple[Bucket, ...], judged: Mapping[datetime, JudgeMinute]
) -> tuple[Bucket, ...]:
    """The buckets with their minute's judge rollups in ``shadow`` (read apart: not cached)."""
    if not judged:
        return buckets
    out = []
    for b in buckets:
        minute = judged.get(b.start)
        if minute is None:
            out.append(b)
            continue
        shadow = replace(
            b.shadow,
            judge_diff=minute.candidate,
            judge_noise=minute.noise,
            judge_failed=minute.failed,
            judge_skipped_budget=minute.skipped_budget,
        )
        out.append(replace(b, shadow=shadow))
    return tuple(out)
