"""Reading one rollout's report figures from Postgres: ``load_report(engine, settings, name)``."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from shadowcanary.controller.phase_view import phase_view
from shadowcanary.events import Arm, CapturedCall
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
    trigger_series,
)
from shadowcanary.report.judge_section import load_judge_section
from shadowcanary.report.model import (
    ARMS,
    REASON_WITHHELD,
    ArmCost,
    ArmSummary,
    DivergentPair,
    LastDecision,
    ReportData,
    RolloutInfo,
    StepMark,
    TenantScope,
    TriggerSeries,
)
from shadowcanary.report.outcomes import outcome_section
from shadowcanary.report.spend import spend_per_decision
from shadowcanary.rollout_records import AuditEntry, RolloutRecord
from shadowcanary.settings import ModelEndpoint, Settings
from shadowcanary.store import report_reads as queries
from shadowcanary.store.live_reads import rollout_live, tenant_live
from shadowcanary.store.models import NAME
from shadowcanary.store.outcomes import OutcomeStore, OutcomeSummary
from shadowcanary.store.rollouts import RolloutStore, unavailable
from shadowcanary.store.rollups import minute_of
from shadowcanary.store.totals import LiveTotals
from shadowcanary.tap.redaction import Redactor

AUDIT_LIMIT = 5_000
HISTOGRAM_BINS = 20
DIVERGENT_PAIRS = 5
MAX_TEXT_CHARS = 4_000
# events.Name: what a captured call's tenant can be.
TENANT_NAME = re.compile(rf"[\w.:/@+-]{{1,{NAME}}}")


def load_report(
    engine: Engine,
    settings: Settings,
    name: str,
    *,
    now: datetime,
    pairs: int = DIVERGENT_PAIRS,
    tenant: str | None = None,
) -> ReportData:
    """Every figure of the report of rollout ``name`` for its current run.

    The window runs from the rollout's start to ``now``, or to its end (its last
    update) when it has finished.

    With ``tenant``, every figure and text comes from that tenant's calls only (read
    from the raw rows, as the rollups hold no tenant), the window starts no earlier
    than the raw rows' retention, and the controller's evidence, which is about
    every tenant's calls, is left out (see ``TenantScope``).

    Raises:
        RolloutNotFound: no rollout has this name (the hint lists the known ones).
        ServiceUnavailable: Postgres could not be read.
        ValueError: ``now`` is naive or ``tenant`` is not a tenant name.
    """
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware (e.g. datetime.now(UTC)), got {now}")
    if tenant is not None:
        check_tenant_name(tenant)
    controller = RolloutStore(engine)
    record = controller.get(name)
    history = controller.history(name, limit=AUDIT_LIMIT)
    # A name may have run before: only this run's entries (history is newest first).
    entries = [e for e in reversed(history) if e.at >= record.started_at]
    since = minute_of(record.started_at)
    retention_start = minute_of(now - timedelta(days=settings.retention_days))
    starts_at_retention = tenant is not None and retention_start > since
    if starts_at_retention:
        since = retention_start
    # The charts span the rollout: to now while it runs (the open minute included, a
    # report is a look at what is there now), to its last minute once it has finished,
    # however long after that the report is made.
    end = now if record.status.active else min(now, record.updated_at)
    until = max(minute_of(end), since) + MINUTE
    bucket_minutes = choose_bucket_minutes(until - since)
    plan = record.plan
    try:
        with engine.connect() as conn:
            if tenant is None:
                live = rollout_live(conn, name, since, until, bucket_minutes)
            else:
                live = tenant_live(conn, name, tenant, since, until, bucket_minutes)
            shadow = queries.shadow_tokens(conn, name, since, tenant=tenant)
            counts, means = queries.similarity_counts(
                conn, name, since, HISTOGRAM_BINS, tenant=tenant
            )
            pair_rows = queries.most_divergent(conn, name, since, pairs, tenant=tenant)
            spend = [] if tenant else queries.shadow_spend_by_minute(conn, name, since)
            redactor = Redactor(settings.tap.redact_patterns)
            judge = (
                load_judge_section(
                    conn, name, since, lambda text: _clip(redactor.redact_text(text))
                )
                if tenant is None  # verdict rows hold no tenant
                else None
            )
    except OperationalError as exc:
        raise unavailable("reading the report", exc) from exc

    totals = live.totals
    arms = {
        Arm.BASELINE.value: arm_summary("baseline", plan.baseline, totals[Arm.BASELINE]),
        Arm.CANDIDATE.value: arm_summary("candidate", plan.candidate, totals[Arm.CANDIDATE]),
    }
    baseline_cost, candidate_cost = _arm_costs(arms, totals, shadow, settings, record)
    steps, triggers, last_decision = (
        step_marks(entries),
        trigger_series(entries),
        _last_decision(entries),
    )
    scope = None
    if tenant is not None:
        steps, triggers, last_decision = _whole_rollout_evidence_withheld(steps, last_decision)
        scope = TenantScope(
            tenant=tenant,
            calls=live.calls,
            retention_days=settings.retention_days,
            starts_at_retention=starts_at_retention,
        )
    cost = project_monthly_cost(
        baseline_cost,
        candidate_cost,
        observed_requests=live.calls,
        observed_since=live.first_call,
        observed_until=live.last_call,
        tenant=tenant,
    )
    # Outcomes are rolled up per rollout, not per tenant: a tenant's report leaves them out.
    outcomes = None
    if tenant is None:
        reports = _outcome_summary(engine, settings, record, now)
        outcomes = outcome_section(
            totals, cost, reports, unknown_after_s=settings.outcomes.unknown_after_s
        )
    return ReportData(
        rollout=_info(record),
        generated_at=now,
        since=since,
        until=until,
        bucket_minutes=bucket_minutes,
        arms=arms,
        series=bucket_series(live.rows, ARMS, since, until, bucket_minutes),
        steps=steps,
        cost=cost,
        similarity=similarity_histogram(counts, means, HISTOGRAM_BINS),
        triggers=triggers,
        last_decision=last_decision,
        divergent=tuple(_pair(row, redactor) for row in pair_rows),
        audit_truncated=len(history) >= AUDIT_LIMIT,
        tenant=tenant,
        tenant_scope=scope,
        shadow_spend=spend_per_decision(entries, spend),
        outcomes=outcomes,
        judge=judge,
    )


def _outcome_summary(
    engine: Engine, settings: Settings, record: RolloutRecord, now: datetime
) -> OutcomeSummary:
    return OutcomeStore(engine).summary(
        since=record.started_at,
        now=now,
        unknown_after=timedelta(seconds=settings.outcomes.unknown_after_s),
        rollout=record.name,
    )


def check_tenant_name(tenant: str) -> None:
    """Refuse what no event can carry as its tenant (a typo would report nothing)."""
    if not TENANT_NAME.fullmatch(tenant):
        raise ValueError(
            f"{tenant!r} is not a tenant name: tenant names are 1 to {NAME} characters of "
            "letters, digits and . : / @ + - _, exactly as the services send them"
        )


def _arm_costs(
    arms: dict[str, ArmSummary],
    totals: dict[Arm, LiveTotals],
    shadow: queries.TokenUse,
    settings: Settings,
    record: RolloutRecord,
) -> tuple[ArmCost, ArmCost]:
    """Baseline and candidate cost per request, at the configured prices."""
    baseline, candidate = arms["baseline"], arms["candidate"]
    baseline_use = _live_use(baseline, totals[Arm.BASELINE])
    price = settings.models.get
    baseline_cost = _cost(baseline, "live", baseline_use, price(record.plan.baseline))
    # The candidate's own live traffic when it has some; before the first step, what it
    # used answering the mirrored prompts.
    if totals[Arm.CANDIDATE].tokens_n:
        use, source = _live_use(candidate, totals[Arm.CANDIDATE]), "live"
    else:
        use, source = shadow, "shadow"
    return baseline_cost, _cost(candidate, source, use, price(record.plan.candidate))


def _live_use(summary: ArmSummary, totals: LiveTotals) -> queries.TokenUse:
    """What an arm's served calls used, per call."""
    return queries.TokenUse(
        calls=totals.tokens_n,
        prompt_tokens=summary.prompt_tokens_per_request,
        completion_tokens=summary.completion_tokens_per_request,
        cost_usd=summary.observed_cost_per_request_usd,
    )


def _cost(
    summary: ArmSummary, source: str, use: queries.TokenUse, price: ModelEndpoint | None
) -> ArmCost:
    return arm_cost(
        summary.arm,
        summary.model,
        source=source,
        requests=use.calls,
        prompt_tokens=use.prompt_tokens,
        completion_tokens=use.completion_tokens,
        observed_cost_usd=use.cost_usd,
        price=price,
    )


def _whole_rollout_evidence_withheld(
    steps: tuple[StepMark, ...], last: LastDecision | None
) -> tuple[tuple[StepMark, ...], tuple[TriggerSeries, ...], LastDecision | None]:
    """A tenant's report keeps when the shared flag moved, not why.

    The reasons and the trigger statistics are computed over every tenant's calls: next
    to the tenant's own figures they would tell the other tenants' by difference.
    """
    return (
        tuple(replace(mark, reason=REASON_WITHHELD) for mark in steps),
        (),
        None if last is None else replace(last, reason=REASON_WITHHELD),
    )


def _info(record: RolloutRecord) -> RolloutInfo:
    plan = record.plan
    phase = phase_view(record, None)  # what the phase waits for is the last decision's reason
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
        phase=phase.headline,
        decommission=phase.decommission,
        gate_rule=phase.gate_rule,
        watch_rule=phase.watch_rule,
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
