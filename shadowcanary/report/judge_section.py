"""The report's "LLM judge" section: verdicts per kind and route, by length, worst pairs.

Built from ``store.judge_reads``; rendered in Markdown here (JSON renders it generically).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from shadowcanary.store.judge_reads import (
    JudgeLengthRow,
    JudgeTotalsRow,
    judge_by_length,
    judge_totals,
    judge_worst,
)
from shadowcanary.store.judge_store import answer_text

WORST_PAIRS = 3
KIND_LABEL = {
    "candidate": "candidate vs baseline",
    "noise": "baseline again vs baseline (noise floor)",
}


@dataclass(frozen=True, slots=True)
class JudgedLoss:
    """A pair the judge called the same in both orders (a loss, in the report), with its
    rationale (redacted texts)."""

    event_id: str
    route: str
    reference: str  # live | baseline_again (the prompt was redacted)
    rationale: str
    prompt: str
    baseline_answer: str
    candidate_answer: str


@dataclass(frozen=True, slots=True)
class JudgeSection:
    rows: tuple[JudgeTotalsRow, ...]
    by_length: tuple[JudgeLengthRow, ...]
    worst: tuple[JudgedLoss, ...]

    @property
    def empty(self) -> bool:
        return not self.rows


def load_judge_section(
    conn: Connection, rollout: str, since: datetime, clean: Callable[[str], str]
) -> JudgeSection:
    """``clean`` redacts and clips a text for the report (as the divergent pairs are)."""
    return JudgeSection(
        rows=tuple(judge_totals(conn, rollout, since)),
        by_length=tuple(judge_by_length(conn, rollout, since)),
        worst=judged_pairs(conn, rollout, since, clean, outcome="loss", limit=WORST_PAIRS),
    )


def judged_pairs(
    conn: Connection,
    rollout: str,
    since: datetime,
    clean: Callable[[str], str],
    *,
    outcome: str,
    limit: int,
) -> tuple[JudgedLoss, ...]:
    """The newest pairs the judge called ``outcome`` for the candidate in both orders."""
    pairs = []
    for row in judge_worst(conn, rollout, since, limit, outcome):
        messages = row.event.get("request", {}).get("messages", [])
        prompt = "\n\n".join(
            f"[{m.get('role')}] {m.get('content') if isinstance(m.get('content'), str) else ''}"
            for m in messages
        )
        if row.reference == "baseline_again":
            baseline = answer_text(row.baseline_again_output) or ""
        else:
            baseline = answer_text(row.event.get("response")) or ""
        pairs.append(
            JudgedLoss(
                event_id=row.event_id,
                route=row.route,
                reference=row.reference,
                rationale=row.rationale or "",
                prompt=clean(prompt),
                baseline_answer=clean(baseline),
                candidate_answer=clean(answer_text(row.candidate_output) or ""),
            )
        )
    return tuple(pairs)


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def judge_markdown(section: JudgeSection | None, fence: Callable[[str], str]) -> list[str]:
    """The section's Markdown lines."""
    out = ["", "## LLM judge (pairwise, both orders)", ""]
    if section is None or section.empty:
        return [*out, "_no judged pairs (no judge configured, or none sampled yet)_"]
    out += [
        "| pairs | route | judged | wins | ties | losses | net loss | position disagreement "
        "| redacted prompts | failed | skipped (budget) | judge cost |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in section.rows:
        out.append(
            f"| {KIND_LABEL.get(r.kind, r.kind)} | {r.route} | {r.judged} | {r.wins} | {r.ties} "
            f"| {r.losses} | {_pct(r.losses - r.wins, r.judged)} "
            f"| {_pct(r.position_disagreements, r.judged)} | {r.redacted} | {r.failed} "
            f"| {r.skipped_budget} | ${r.cost_usd:.4f} |"
        )
    out += [
        "",
        "A verdict counts only when it survives the swap of the two answers; the noise floor "
        "is how often the baseline beats or loses to itself. Prompts changed by redaction are "
        "judged against the baseline asked again on the same redacted prompt.",
    ]
    if section.by_length:
        out += [
            "",
            "| candidate answer length | judged | win rate | loss rate |",
            "|---|---|---|---|",
        ]
        out += [
            f"| {b.bucket} chars | {b.judged} | {_pct(b.wins, b.judged)} "
            f"| {_pct(b.losses, b.judged)} |"
            for b in section.by_length
        ]
    for i, pair in enumerate(section.worst, 1):
        against = (
            "the baseline asked again" if pair.reference == "baseline_again" else "the live answer"
        )
        out += [
            "",
            f"### Lost pair {i} — route {pair.route}, event {pair.event_id} (against {against})",
            "",
            f"Judge: {pair.rationale}",
            "",
            "Prompt:",
            "",
            fence(pair.prompt),
            "",
            "Baseline answer:",
            "",
            fence(pair.baseline_answer),
            "",
            "Candidate answer:",
            "",
            fence(pair.candidate_answer),
        ]
    return out
