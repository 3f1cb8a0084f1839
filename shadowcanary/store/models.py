"""The Postgres schema: raw rows (captures, replays, comparisons, dead letters) and rollups.

Raw rows are kept for the retention period so a person can look at any single
event. Decisions read only the per-minute rollups, which are additive (counters and
sums) or mergeable (latency sketches), so a controller tick costs O(buckets).

The schema is owned by Alembic (``migrations/``); a test fails when these models and
the migrations drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NAME = 200  # max length of a route/tenant/rollout/model name (events.Name)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        float: Double(),
        int: BigInteger(),
        dict[str, Any]: JSONB(),
    }


class CaptureRow(Base):
    """One live call as captured (already redacted), with its output flags."""

    __tablename__ = "captures"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    started_at: Mapped[datetime]
    rollout: Mapped[str | None] = mapped_column(String(NAME))
    route: Mapped[str] = mapped_column(String(NAME))
    tenant: Mapped[str] = mapped_column(String(NAME))
    arm: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(NAME))
    status: Mapped[str] = mapped_column(String(32))
    error_class: Mapped[str | None] = mapped_column(String(NAME))
    http_status: Mapped[int | None] = mapped_column(SmallInteger)
    latency_ms: Mapped[float]
    ttft_ms: Mapped[float | None]
    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    cost_usd: Mapped[float | None]
    stickiness_key: Mapped[str | None] = mapped_column(String(64))
    # OutputFlags of the live answer; NULL when the judge did not assess it.
    empty: Mapped[bool | None]
    truncated: Mapped[bool | None]
    refusal: Mapped[bool | None]
    json_expected: Mapped[bool | None]
    json_invalid: Mapped[bool | None]
    tool_schema_invalid: Mapped[bool | None]
    tool_unknown: Mapped[bool | None]
    # The full event as model_dump(mode="json"); the source of truth for replays.
    event: Mapped[dict[str, Any]]

    __table_args__ = (Index("ix_captures_rollout_started_at", "rollout", "started_at"),)


class ReplayRow(Base):
    """One shadow replay of a capture: the candidate (C) or the baseline again (B2)."""

    __tablename__ = "replays"

    event_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("captures.event_id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(NAME))
    # {"text", "tool_calls", "finish_reason", "refusal"}; NULL when there was no answer.
    output: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    latency_ms: Mapped[float | None]
    ttft_ms: Mapped[float | None]
    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    cost_usd: Mapped[float | None]
    attempts: Mapped[int] = mapped_column(Integer)
    error_class: Mapped[str | None] = mapped_column(String(NAME))
    error_message: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(index=True)


class ComparisonRow(Base):
    """How one replay differs from the live answer (every field of judge.types.Comparison)."""

    __tablename__ = "comparisons"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    rollout: Mapped[str | None] = mapped_column(String(NAME))
    recorded_at: Mapped[datetime] = mapped_column(index=True)
    exact_match: Mapped[bool]
    normalized_match: Mapped[bool]
    lexical_similarity: Mapped[float]
    embedding_similarity: Mapped[float | None]
    tool_name_agreement: Mapped[bool | None]
    tool_args_agreement: Mapped[bool | None]
    length_ratio: Mapped[float | None]
    latency_delta_ms: Mapped[float | None]
    ttft_delta_ms: Mapped[float | None]
    completion_token_delta: Mapped[int | None]
    cost_delta_usd: Mapped[float | None]
    reference_empty: Mapped[bool]
    reference_truncated: Mapped[bool]
    reference_refusal: Mapped[bool]
    reference_json_expected: Mapped[bool]
    reference_json_invalid: Mapped[bool]
    reference_tool_schema_invalid: Mapped[bool]
    reference_tool_unknown: Mapped[bool]
    other_empty: Mapped[bool]
    other_truncated: Mapped[bool]
    other_refusal: Mapped[bool]
    other_json_expected: Mapped[bool]
    other_json_invalid: Mapped[bool]
    other_tool_schema_invalid: Mapped[bool]
    other_tool_unknown: Mapped[bool]
    notes: Mapped[list[str]] = mapped_column(ARRAY(Text))

    __table_args__ = (
        ForeignKeyConstraint(
            ["event_id", "kind"], ["replays.event_id", "replays.kind"], ondelete="CASCADE"
        ),
    )


class DeadLetterRow(Base):
    """An event that could not be processed, kept for a person to look at."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    recorded_at: Mapped[datetime] = mapped_column(index=True)
    stage: Mapped[str] = mapped_column(String(32))
    # No foreign key: the event may never have validated, or may be purged first.
    event_id: Mapped[str | None] = mapped_column(String(128), index=True)
    error_class: Mapped[str] = mapped_column(String(NAME))
    message: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class LiveRollupRow(Base):
    """Live outcomes of one arm of one rollout in one minute (by the call's started_at).

    ``rollout`` is '' for traffic outside any rollout, so the key has no NULLs.
    Means and variances come from the ``*_sum``/``*_sq_sum`` pairs; ``*_n`` count
    how many calls reported an optional figure (TTFT, tokens, cost).
    """

    __tablename__ = "live_rollups"

    rollout: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    arm: Mapped[str] = mapped_column(String(16), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    requests: Mapped[int]
    failures: Mapped[int]  # status != ok
    errors: Mapped[int]
    timeouts: Mapped[int]
    rate_limited: Mapped[int]
    cancelled: Mapped[int]
    assessed: Mapped[int]  # calls with OutputFlags; the denominator of the flag counts
    truncated: Mapped[int]
    refusals: Mapped[int]
    empty: Mapped[int]
    json_expected: Mapped[int]
    json_invalid: Mapped[int]
    tool_schema_invalid: Mapped[int]
    tool_unknown: Mapped[int]
    latency_sum: Mapped[float]
    latency_sq_sum: Mapped[float]
    ttft_n: Mapped[int]
    ttft_sum: Mapped[float]
    ttft_sq_sum: Mapped[float]
    tokens_n: Mapped[int]
    prompt_tokens_sum: Mapped[int]
    completion_tokens_sum: Mapped[int]
    completion_tokens_sq_sum: Mapped[float]
    cost_n: Mapped[int]
    cost_usd_sum: Mapped[float]
    cost_usd_sq_sum: Mapped[float]
    # User outcomes joined to this minute's calls (shadowcanary.store.outcomes): calls
    # with any outcome reported, with a task outcome, abandoned tasks, thumbs down or
    # retried, escalated to a person, the optional value; ``outcome_updates`` grows on
    # every join so the evidence cache sees late reports.
    outcomes_reported: Mapped[int] = mapped_column(server_default=text("0"))
    tasks_reported: Mapped[int] = mapped_column(server_default=text("0"))
    tasks_abandoned: Mapped[int] = mapped_column(server_default=text("0"))
    outcomes_negative: Mapped[int] = mapped_column(server_default=text("0"))
    outcomes_escalated: Mapped[int] = mapped_column(server_default=text("0"))
    outcome_value_n: Mapped[int] = mapped_column(server_default=text("0"))
    outcome_value_sum: Mapped[float] = mapped_column(server_default=text("0"))
    outcome_value_sq_sum: Mapped[float] = mapped_column(server_default=text("0"))
    outcome_updates: Mapped[int] = mapped_column(server_default=text("0"))
    # shadowcanary.store.sketch.QuantileSketch.to_json() documents
    latency_sketch: Mapped[dict[str, Any]]
    ttft_sketch: Mapped[dict[str, Any]]


class ShadowRollupRow(Base):
    """Replays and comparisons of one kind for one rollout in one minute of the live call.

    ``paired_*`` (kind 'candidate' only) accumulate, once per event that has both a
    candidate and a noise comparison, D = candidate lexical similarity - noise lexical
    similarity: the candidate's difference beyond the baseline-vs-itself difference.
    """

    __tablename__ = "shadow_rollups"

    rollout: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    replays: Mapped[int]
    other_failed: Mapped[int]  # replay status 'failed'
    skipped_budget: Mapped[int]
    n: Mapped[int]  # comparisons
    exact_matches: Mapped[int]
    normalized_matches: Mapped[int]
    lexical_sum: Mapped[float]
    lexical_sq_sum: Mapped[float]
    embedding_n: Mapped[int]
    embedding_sum: Mapped[float]
    embedding_sq_sum: Mapped[float]
    other_empty: Mapped[int]
    other_truncated: Mapped[int]
    other_refusal: Mapped[int]
    other_json_invalid: Mapped[int]
    other_tool_schema_invalid: Mapped[int]
    other_tool_unknown: Mapped[int]
    tool_compared_n: Mapped[int]  # comparisons where a tool was called on either side
    tool_name_disagree: Mapped[int]
    tool_args_disagree: Mapped[int]
    latency_delta_n: Mapped[int]
    latency_delta_sum: Mapped[float]
    latency_delta_sq_sum: Mapped[float]
    cost_delta_n: Mapped[int]
    cost_delta_sum: Mapped[float]
    completion_token_delta_n: Mapped[int]
    completion_token_delta_sum: Mapped[int]
    paired_n: Mapped[int]
    paired_diff_sum: Mapped[float]
    paired_diff_sq_sum: Mapped[float]


LIVE_COUNTERS: tuple[str, ...] = tuple(
    c.name
    for c in LiveRollupRow.__table__.columns
    if not c.primary_key and not c.name.endswith("_sketch")
)
SHADOW_COUNTERS: tuple[str, ...] = tuple(
    c.name for c in ShadowRollupRow.__table__.columns if not c.primary_key
)


class FlagRow(Base):
    """A flag of the embedded backend (flags/embedded.py): its Unleash feature JSON.

    ``feature`` is one entry of the Unleash client API's ``features`` list, so the
    evaluator hands it to yggdrasil-engine exactly as UnleashClient would. ``revision``
    goes up by one on every change: evaluators re-read only when it moved.
    """

    __tablename__ = "flags"

    name: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    project: Mapped[str] = mapped_column(String(NAME))
    environment: Mapped[str] = mapped_column(String(NAME))
    feature: Mapped[dict[str, Any]]
    revision: Mapped[int]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RolloutRow(Base):
    """A rollout the controller drives (shadowcanary.store.rollouts), one row per name.

    ``plan`` is ``RolloutPlan.model_dump(mode="json")``. ``version`` goes up by one on
    every write: a writer that read an older version loses (optimistic concurrency).
    """

    __tablename__ = "rollouts"

    name: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    plan: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(32))
    step_index: Mapped[int] = mapped_column(Integer)  # -1 before the first step
    percent: Mapped[int] = mapped_column(SmallInteger)  # what the controller last set
    started_at: Mapped[datetime]
    step_started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    baseline_p99_ms: Mapped[float | None]
    version: Mapped[int]


class RolloutAuditRow(Base):
    """One entry of a rollout's audit log; append-only (a database trigger refuses changes).

    ``decision`` is ``Decision.to_dict()`` and ``inputs`` the ``DecisionInputs`` JSON, so
    the decision can be recomputed exactly from this row alone.
    """

    __tablename__ = "rollout_audit"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    rollout: Mapped[str] = mapped_column(String(NAME), ForeignKey("rollouts.name"))
    actor: Mapped[str] = mapped_column(String(NAME))
    action: Mapped[str] = mapped_column(String(32))
    from_percent: Mapped[int | None] = mapped_column(SmallInteger)
    to_percent: Mapped[int | None] = mapped_column(SmallInteger)
    reason: Mapped[str] = mapped_column(Text)
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (Index("ix_rollout_audit_rollout_at", "rollout", "at"),)


# The flag's timeline (every controller tick reads it) skips the many HOLD entries.
Index(
    "ix_rollout_audit_percent_changes",
    RolloutAuditRow.rollout,
    RolloutAuditRow.at,
    postgresql_where=RolloutAuditRow.to_percent.is_not(None),
)


class OutcomeRow(Base):
    """What services reported after one answer, merged per event id (shadowcanary.outcomes).

    ``dirty`` rows have something not yet added to ``live_rollups``: new or changed
    reports, or reports whose capture has not arrived (yet). ``counted`` is what the
    row already added there, so a join adds only the difference (reports merge
    monotonically: first value per field wins, flags only turn on).
    """

    __tablename__ = "outcomes"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant: Mapped[str | None] = mapped_column(String(NAME))
    rollout: Mapped[str | None] = mapped_column(String(NAME))  # as reported
    task: Mapped[str | None] = mapped_column(String(16))
    feedback: Mapped[str | None] = mapped_column(String(8))
    retried: Mapped[bool]
    escalated: Mapped[bool]
    value: Mapped[float | None]
    reports: Mapped[int]
    first_reported_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(index=True)
    # 'pending' (no capture joined yet), 'joined', 'refused' (see refused_reason).
    state: Mapped[str] = mapped_column(String(16))
    dirty: Mapped[bool]
    refused_reason: Mapped[str | None] = mapped_column(String(NAME))
    joined_rollout: Mapped[str | None] = mapped_column(String(NAME))
    arm: Mapped[str | None] = mapped_column(String(16))
    minute: Mapped[datetime | None]
    counted: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


# The sweep looks for dirty rows only; once joined a row leaves this index.
Index("ix_outcomes_dirty", OutcomeRow.received_at, postgresql_where=OutcomeRow.dirty)


class JudgeVerdictRow(Base):
    """One pair judged by the LLM judge in both orders (judge/pairwise.py), with its cost.

    ``kind`` 'candidate': the candidate against ``reference`` (the live answer, or the
    baseline asked again where redaction changed the prompt); 'noise': the baseline
    asked again against the live answer (the judge's noise floor).
    """

    __tablename__ = "judge_verdicts"

    event_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("captures.event_id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    rollout: Mapped[str | None] = mapped_column(String(NAME))
    route: Mapped[str] = mapped_column(String(NAME))
    recorded_at: Mapped[datetime] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(32))
    judge_model: Mapped[str] = mapped_column(String(NAME))
    reference: Mapped[str] = mapped_column(String(32))
    prompt_redacted: Mapped[bool]
    outcome: Mapped[str | None] = mapped_column(String(8))  # win | tie | loss
    reference_first: Mapped[str | None] = mapped_column(String(8))  # first | second | tie
    other_first: Mapped[str | None] = mapped_column(String(8))
    position_disagreement: Mapped[bool | None]
    rationale: Mapped[str | None] = mapped_column(Text)
    reference_chars: Mapped[int | None] = mapped_column(Integer)
    other_chars: Mapped[int | None] = mapped_column(Integer)
    prompt_tokens: Mapped[int]
    completion_tokens: Mapped[int]
    cost_usd: Mapped[float]
    error_class: Mapped[str | None] = mapped_column(String(NAME))
    error_message: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_judge_verdicts_rollout_recorded_at", "rollout", "recorded_at"),)


class JudgeRollupRow(Base):
    """Judge verdicts of one kind for one rollout and route in one minute of the live call.

    ``score_*`` accumulate the per-pair net loss (+1 loss, 0 tie, -1 win): the
    judge_score trigger's moments (judge/judge_score.py).
    """

    __tablename__ = "judge_rollups"

    rollout: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    route: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    judged: Mapped[int]
    wins: Mapped[int]
    ties: Mapped[int]
    losses: Mapped[int]
    position_disagreements: Mapped[int]
    redacted: Mapped[int]  # judged pairs whose prompt redaction had changed
    failed: Mapped[int]
    skipped_budget: Mapped[int]
    score_sum: Mapped[float]
    score_sq_sum: Mapped[float]
    prompt_tokens: Mapped[int]
    completion_tokens: Mapped[int]
    cost_usd: Mapped[float]


JUDGE_COUNTERS: tuple[str, ...] = tuple(
    c.name for c in JudgeRollupRow.__table__.columns if not c.primary_key
)
