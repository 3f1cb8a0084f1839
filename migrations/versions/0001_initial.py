"""Initial schema: captures, replays, comparisons, dead letters and the minute rollups.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "captures",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rollout", sa.String(length=200), nullable=True),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("tenant", sa.String(length=200), nullable=False),
        sa.Column("arm", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("error_class", sa.String(length=200), nullable=True),
        sa.Column("http_status", sa.SmallInteger(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.Column("ttft_ms", sa.Double(), nullable=True),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=True),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=True),
        sa.Column("cost_usd", sa.Double(), nullable=True),
        sa.Column("stickiness_key", sa.String(length=64), nullable=True),
        sa.Column("empty", sa.Boolean(), nullable=True),
        sa.Column("truncated", sa.Boolean(), nullable=True),
        sa.Column("refusal", sa.Boolean(), nullable=True),
        sa.Column("json_expected", sa.Boolean(), nullable=True),
        sa.Column("json_invalid", sa.Boolean(), nullable=True),
        sa.Column("tool_schema_invalid", sa.Boolean(), nullable=True),
        sa.Column("tool_unknown", sa.Boolean(), nullable=True),
        sa.Column("event", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_captures")),
    )
    op.create_index(op.f("ix_captures_received_at"), "captures", ["received_at"], unique=False)
    op.create_index(
        "ix_captures_rollout_started_at", "captures", ["rollout", "started_at"], unique=False
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=True),
        sa.Column("error_class", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_index(op.f("ix_dead_letters_event_id"), "dead_letters", ["event_id"], unique=False)
    op.create_index(
        op.f("ix_dead_letters_recorded_at"), "dead_letters", ["recorded_at"], unique=False
    )
    op.create_table(
        "live_rollups",
        sa.Column("rollout", sa.String(length=200), nullable=False),
        sa.Column("arm", sa.String(length=16), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("timeouts", sa.BigInteger(), nullable=False),
        sa.Column("rate_limited", sa.BigInteger(), nullable=False),
        sa.Column("cancelled", sa.BigInteger(), nullable=False),
        sa.Column("assessed", sa.BigInteger(), nullable=False),
        sa.Column("truncated", sa.BigInteger(), nullable=False),
        sa.Column("refusals", sa.BigInteger(), nullable=False),
        sa.Column("empty", sa.BigInteger(), nullable=False),
        sa.Column("json_expected", sa.BigInteger(), nullable=False),
        sa.Column("json_invalid", sa.BigInteger(), nullable=False),
        sa.Column("tool_schema_invalid", sa.BigInteger(), nullable=False),
        sa.Column("tool_unknown", sa.BigInteger(), nullable=False),
        sa.Column("latency_sum", sa.Double(), nullable=False),
        sa.Column("latency_sq_sum", sa.Double(), nullable=False),
        sa.Column("ttft_n", sa.BigInteger(), nullable=False),
        sa.Column("ttft_sum", sa.Double(), nullable=False),
        sa.Column("ttft_sq_sum", sa.Double(), nullable=False),
        sa.Column("tokens_n", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens_sum", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens_sum", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens_sq_sum", sa.Double(), nullable=False),
        sa.Column("cost_n", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd_sum", sa.Double(), nullable=False),
        sa.Column("cost_usd_sq_sum", sa.Double(), nullable=False),
        sa.Column("latency_sketch", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("ttft_sketch", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("rollout", "arm", "minute", name=op.f("pk_live_rollups")),
    )
    op.create_table(
        "shadow_rollups",
        sa.Column("rollout", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replays", sa.BigInteger(), nullable=False),
        sa.Column("other_failed", sa.BigInteger(), nullable=False),
        sa.Column("skipped_budget", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("exact_matches", sa.BigInteger(), nullable=False),
        sa.Column("normalized_matches", sa.BigInteger(), nullable=False),
        sa.Column("lexical_sum", sa.Double(), nullable=False),
        sa.Column("lexical_sq_sum", sa.Double(), nullable=False),
        sa.Column("embedding_n", sa.BigInteger(), nullable=False),
        sa.Column("embedding_sum", sa.Double(), nullable=False),
        sa.Column("embedding_sq_sum", sa.Double(), nullable=False),
        sa.Column("other_empty", sa.BigInteger(), nullable=False),
        sa.Column("other_truncated", sa.BigInteger(), nullable=False),
        sa.Column("other_refusal", sa.BigInteger(), nullable=False),
        sa.Column("other_json_invalid", sa.BigInteger(), nullable=False),
        sa.Column("other_tool_schema_invalid", sa.BigInteger(), nullable=False),
        sa.Column("other_tool_unknown", sa.BigInteger(), nullable=False),
        sa.Column("tool_compared_n", sa.BigInteger(), nullable=False),
        sa.Column("tool_name_disagree", sa.BigInteger(), nullable=False),
        sa.Column("tool_args_disagree", sa.BigInteger(), nullable=False),
        sa.Column("latency_delta_n", sa.BigInteger(), nullable=False),
        sa.Column("latency_delta_sum", sa.Double(), nullable=False),
        sa.Column("latency_delta_sq_sum", sa.Double(), nullable=False),
        sa.Column("cost_delta_n", sa.BigInteger(), nullable=False),
        sa.Column("cost_delta_sum", sa.Double(), nullable=False),
        sa.Column("completion_token_delta_n", sa.BigInteger(), nullable=False),
        sa.Column("completion_token_delta_sum", sa.BigInteger(), nullable=False),
        sa.Column("paired_n", sa.BigInteger(), nullable=False),
        sa.Column("paired_diff_sum", sa.Double(), nullable=False),
        sa.Column("paired_diff_sq_sum", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("rollout", "kind", "minute", name=op.f("pk_shadow_rollups")),
    )
    op.create_table(
        "replays",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("output", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("ttft_ms", sa.Double(), nullable=True),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=True),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=True),
        sa.Column("cost_usd", sa.Double(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error_class", sa.String(length=200), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["captures.event_id"],
            name=op.f("fk_replays_event_id_captures"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", "kind", name=op.f("pk_replays")),
    )
    op.create_index(op.f("ix_replays_recorded_at"), "replays", ["recorded_at"], unique=False)
    op.create_table(
        "comparisons",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("rollout", sa.String(length=200), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exact_match", sa.Boolean(), nullable=False),
        sa.Column("normalized_match", sa.Boolean(), nullable=False),
        sa.Column("lexical_similarity", sa.Double(), nullable=False),
        sa.Column("embedding_similarity", sa.Double(), nullable=True),
        sa.Column("tool_name_agreement", sa.Boolean(), nullable=True),
        sa.Column("tool_args_agreement", sa.Boolean(), nullable=True),
        sa.Column("length_ratio", sa.Double(), nullable=True),
        sa.Column("latency_delta_ms", sa.Double(), nullable=True),
        sa.Column("ttft_delta_ms", sa.Double(), nullable=True),
        sa.Column("completion_token_delta", sa.BigInteger(), nullable=True),
        sa.Column("cost_delta_usd", sa.Double(), nullable=True),
        sa.Column("reference_empty", sa.Boolean(), nullable=False),
        sa.Column("reference_truncated", sa.Boolean(), nullable=False),
        sa.Column("reference_refusal", sa.Boolean(), nullable=False),
        sa.Column("reference_json_expected", sa.Boolean(), nullable=False),
        sa.Column("reference_json_invalid", sa.Boolean(), nullable=False),
        sa.Column("reference_tool_schema_invalid", sa.Boolean(), nullable=False),
        sa.Column("reference_tool_unknown", sa.Boolean(), nullable=False),
        sa.Column("other_empty", sa.Boolean(), nullable=False),
        sa.Column("other_truncated", sa.Boolean(), nullable=False),
        sa.Column("other_refusal", sa.Boolean(), nullable=False),
        sa.Column("other_json_expected", sa.Boolean(), nullable=False),
        sa.Column("other_json_invalid", sa.Boolean(), nullable=False),
        sa.Column("other_tool_schema_invalid", sa.Boolean(), nullable=False),
        sa.Column("other_tool_unknown", sa.Boolean(), nullable=False),
        sa.Column("notes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id", "kind"],
            ["replays.event_id", "replays.kind"],
            name=op.f("fk_comparisons_event_id_kind_replays"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", "kind", name=op.f("pk_comparisons")),
    )
    op.create_index(
        op.f("ix_comparisons_recorded_at"), "comparisons", ["recorded_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_comparisons_recorded_at"), table_name="comparisons")
    op.drop_table("comparisons")
    op.drop_index(op.f("ix_replays_recorded_at"), table_name="replays")
    op.drop_table("replays")
    op.drop_table("shadow_rollups")
    op.drop_table("live_rollups")
    op.drop_index(op.f("ix_dead_letters_recorded_at"), table_name="dead_letters")
    op.drop_index(op.f("ix_dead_letters_event_id"), table_name="dead_letters")
    op.drop_table("dead_letters")
    op.drop_index("ix_captures_rollout_started_at", table_name="captures")
    op.drop_index(op.f("ix_captures_received_at"), table_name="captures")
    op.drop_table("captures")
