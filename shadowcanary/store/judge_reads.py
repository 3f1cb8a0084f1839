"""What a report shows of the LLM judge: verdicts per kind and route, by length, worst pairs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from shadowcanary.judge.pairwise import LENGTH_BUCKETS, LONGEST_BUCKET


@dataclass(frozen=True, slots=True)
class JudgeTotalsRow:
    kind: str  # candidate (C vs baseline) | noise (baseline again vs baseline)
    route: str
    judged: int
    wins: int
    ties: int
    losses: int
    position_disagreements: int
    redacted: int
    failed: int
    skipped_budget: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class JudgeLengthRow:
    bucket: str  # of the candidate's answer length
    judged: int
    wins: int
    losses: int


@dataclass(frozen=True, slots=True)
class JudgeLossRow:
    event_id: str
    route: str
    reference: str
    rationale: str | None
    event: dict[str, Any]
    candidate_output: dict[str, Any] | None
    baseline_again_output: dict[str, Any] | None


def judge_totals(conn: Connection, rollout: str, since: datetime) -> list[JudgeTotalsRow]:
    rows = conn.exec_driver_sql(
        "SELECT kind, route, sum(judged), sum(wins), sum(ties), sum(losses),"
        " sum(position_disagreements), sum(redacted), sum(failed), sum(skipped_budget),"
        " sum(cost_usd) FROM judge_rollups WHERE rollout = %s AND minute >= %s"
        " GROUP BY kind, route ORDER BY kind, route",
        (rollout, since),
    ).all()
    return [
        JudgeTotalsRow(
            kind=r[0],
            route=r[1],
            judged=int(r[2]),
            wins=int(r[3]),
            ties=int(r[4]),
            losses=int(r[5]),
            position_disagreements=int(r[6]),
            redacted=int(r[7]),
            failed=int(r[8]),
            skipped_budget=int(r[9]),
            cost_usd=float(r[10]),
        )
        for r in rows
    ]


def judge_by_length(conn: Connection, rollout: str, since: datetime) -> list[JudgeLengthRow]:
    """Candidate verdicts by the candidate answer's length: is the judge won over by length?"""
    cases = " ".join(f"WHEN other_chars < {edge} THEN '{label}'" for edge, label in LENGTH_BUCKETS)
    rows = conn.exec_driver_sql(
        f"SELECT CASE {cases} ELSE '{LONGEST_BUCKET}' END AS bucket, count(*),"  # noqa: S608 - constants
        " count(*) FILTER (WHERE outcome = 'win'), count(*) FILTER (WHERE outcome = 'loss')"
        " FROM judge_verdicts WHERE rollout = %s AND kind = 'candidate' AND status = 'ok'"
        " AND recorded_at >= %s GROUP BY bucket",
        (rollout, since),
    ).all()
    order = [label for _, label in LENGTH_BUCKETS] + [LONGEST_BUCKET]
    found = {r[0]: JudgeLengthRow(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows}
    return [found[label] for label in order if label in found]


def judge_worst(
    conn: Connection, rollout: str, since: datetime, limit: int, outcome: str = "loss"
) -> list[JudgeLossRow]:
    """The newest candidate ``outcome``s (losses by default) the judge was sure of (no
    position disagreement)."""
    rows = conn.exec_driver_sql(
        "SELECT v.event_id, v.route, v.reference, v.rationale, c.event,"
        " (SELECT output FROM replays r WHERE r.event_id = v.event_id AND r.kind = 'candidate'),"
        " (SELECT output FROM replays r WHERE r.event_id = v.event_id AND r.kind = 'noise')"
        " FROM judge_verdicts v JOIN captures c USING (event_id)"
        " WHERE v.rollout = %s AND v.kind = 'candidate' AND v.outcome = %s"
        " AND NOT v.position_disagreement AND v.recorded_at >= %s"
        " ORDER BY v.recorded_at DESC, v.event_id LIMIT %s",
        (rollout, outcome, since, limit),
    ).all()
    return [JudgeLossRow(*row) for row in rows]
