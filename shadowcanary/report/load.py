"""Reading one rollout's report figures from Postgres: ``load_report(engine, settings, name)``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from shadowcanary.controller.records import AuditEntry, RolloutRecord
from shadowcanary.controller.store import ControllerStore, unavailable
from shadowcanary.events import Arm, CapturedCall
from shadowcanary.report import queries
from shadowcanary.report.data import (
    MINUTE,
    arm_cost,
    arm_summary,
    bucket_series,
    choose_bucket_minutes,
    decision_entries,
    project_monthly_cost,
    similarity_histogram,
    step_marks,
    traffic_span,
    trigger_series,
)
from shadowcanary.report.model import (
    ARMS,
    DivergentPair,
    LastDecision,
    ReportData,
    RolloutInfo,
)
from shadowcanary.settings import Settings
from shadowcanary.store.repository import Store
from shadowcanary.store.rollups import minute_of
from shadowcanary.tap.redaction import Redactor

AUDIT_LIMIT = 5_000
HISTOGRAM_BINS = 20
DIVERGENT_PAIRS = 5
MAX_TEXT_CHARS = 4_000


def load_report(
    engine: Engine,
    settings: Settings,
    name: str,
    *,
    now: datetime,
    pairs: int = DIVERGENT_PAIRS,
    tenant: str | None = None,
) -> ReportData:
    """Every figure of the report of rollout ``name`` for its current run, up to ``now``.

    Raises:
        RolloutNotFound: no rollout has this name (the hint lists the known ones).
        ServiceUnavailable: Postgres could not be read.
    """
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware (e.g. datetime.now(UTC)), got {now}")
    controller = ControllerStore(engine)
    record = controller.get(name)
    history = controller.history(name, limit=AUDIT_LIMIT)
    # A name may have run before: only this run's entries (history is newest first).
    entries = [e for e in reversed(history) if e.at >= record.started_at]
    since = minute_of(record.started_at)
    # The open minute is included: a report is a look at what is there now.
    until = max(minute_of(now), since) + MINUTE
    plan = record.plan
    totals = Store(engine).live_totals(name, since, until)
    try:
        with engine.connect() as conn:
            minutes = queries.live_minutes(conn, name, since, until)
            shadow = queries.shadow_tokens(conn, name, since)
            counts, means = queries.similarity_counts(conn, name, since, HISTOGRAM_BINS)
            pair_rows = queries.most_divergent(conn, name, since, pairs, tenant=tenant)
    except OperationalError as exc:
        raise unavailable("reading the report", exc) from exc

    bucket_minutes = choose_bucket_minutes(until - since)
    arms = {
        Arm.BASELINE.value: arm_summary("baseline", plan.baseline, totals[Arm.BASELINE]),
        Arm.CANDIDATE.value: arm_summary("candidate", plan.candidate, totals[Arm.CANDIDATE]),
    }
    live_b, live_c = arms["baseline"], arms["candidate"]
    baseline_cost = arm_cost(
        "baseline",
        plan.baseline,
        source="live",
        requests=totals[Arm.BASELINE].tokens_n,
        prompt_tokens=live_b.prompt_tokens_per_request,
        completion_tokens=live_b.completion_tokens_per_request,
        observed_cost_usd=live_b.observed_cost_per_request_usd,
        price=settings.models.get(plan.baseline),
    )
    # The candidate's own live traffic when it has some; before the first step, what it
    # used answering the mirrored prompts.
    if totals[Arm.CANDIDATE].tokens_n:
        candidate_cost = arm_cost(
            "candidate",
            plan.candidate,
            source="live",
            requests=totals[Arm.CANDIDATE].tokens_n,
            prompt_tokens=live_c.prompt_tokens_per_request,
            completion_tokens=live_c.completion_tokens_per_request,
            observed_cost_usd=live_c.observed_cost_per_request_usd,
            price=settings.models.get(plan.candidate),
        )
    else:
        candidate_cost = arm_cost(
            "candidate",
            plan.candidate,
            source="shadow",
            requests=shadow.replays,
            prompt_tokens=shadow.prompt_tokens,
            completion_tokens=shadow.completion_tokens,
            observed_cost_usd=shadow.cost_usd,
            price=settings.models.get(plan.candidate),
        )
    observed, first, last = traffic_span(minutes)
    redactor = Redactor(settings.tap.redact_patterns)
    return ReportData(
        rollout=_info(record),
        generated_at=now,
        since=since,
        until=until,
        bucket_minutes=bucket_minutes,
        arms=arms,
        series=bucket_series(minutes, ARMS, since, until, bucket_minutes),
        steps=step_marks(entries),
        cost=project_monthly_cost(
            baseline_cost,
            candidate_cost,
            observed_requests=observed,
            observed_since=first,
            observed_until=last,
        ),
        similarity=similarity_histogram(counts, means, HISTOGRAM_BINS),
        triggers=trigger_series(entries),
        last_decision=_last_decision(entries),
        divergent=tuple(_pair(row, redactor) for row in pair_rows),
        audit_truncated=len(history) >= AUDIT_LIMIT,
        tenant=tenant,
    )


def _info(record: RolloutRecord) -> RolloutInfo:
    plan = record.plan
    return RolloutInfo(
        name=record.name,
        flag=plan.flag,
        baseline=plan.baseline,
        candidate=plan.candidate,
        project=plan.unleash.project,
        environment=plan.unleash.environment,
        status=record.status.value,
        percent=record.percent,
        step_index=record.step_index,
        steps=plan.step_percents,
        started_at=record.started_at,
        updated_at=record.updated_at,
        escalation=plan.escalation,
    )


def _last_decision(entries: list[AuditEntry]) -> LastDecision | None:
    decided = decision_entries(entries)
    if not decided:
        return None
    last = decided[-1]
    return LastDecision(at=last.at, action=last.action.value, actor=last.actor, reason=last.reason)


def _pair(row: queries.PairRow, redactor: Redactor) -> DivergentPair:
    """Texts were redacted at capture; redact again in case patterns were added since."""
    event = CapturedCall.model_validate(row.event)
    prompt = "\n\n".join(f"[{message.role}] {message.text()}" for message in event.request.messages)
    live = event.response
    live_text = "" if live is None else _answer(live.text, live.refusal, live.tool_calls)
    output = row.candidate_output or {}
    candidate_text = _answer(output.get("text"), output.get("refusal"), output.get("tool_calls"))
    return DivergentPair(
        event_id=row.event_id,
        route=row.route,
        started_at=row.started_at,
        similarity=row.similarity,
        live_model=row.live_model,
        candidate_model=row.candidate_model,
        prompt=_clip(redactor.redact_text(prompt)),
        live_answer=_clip(redactor.redact_text(live_text)),
        candidate_answer=_clip(redactor.redact_text(candidate_text)),
    )


def _answer(text: object, refusal: object, tool_calls: object) -> str:
    parts = [str(text)] if text else []
    if refusal:
        parts.append(f"[refusal] {refusal}")
    for call in tool_calls or ():  # type: ignore[attr-defined]
        name = call.name if hasattr(call, "name") else call.get("name", "?")
        arguments = call.arguments if hasattr(call, "arguments") else call.get("arguments", "")
        parts.append(f"[tool call] {name}({arguments})")
    return "\n".join(parts)


def _clip(text: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    return text[:MAX_TEXT_CHARS] + f"\n[... {len(text) - MAX_TEXT_CHARS:,} more characters]"
