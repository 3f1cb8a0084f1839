"""Pairwise LLM judge: verdicts per judged pair and their per-minute rollups.

Revision ID: 0005_judge
Revises: 0004_outcomes
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_judge"
down_revision: str | None = "0004_outcomes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "judge_verdicts",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("rollout", sa.String(length=200), nullable=True),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("judge_model", sa.String(length=200), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("prompt_redacted", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=True),
        sa.Column("reference_first", sa.String(length=8), nullable=True),
        sa.Column("other_first", sa.String(length=8), nullable=True),
        sa.Column("position_disagreement", sa.Boolean(), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("reference_chars", sa.Integer(), nullable=True),
        sa.Column("other_chars", sa.Integer(), nullable=True),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Double(), nullable=False),
        sa.Column("error_class", sa.String(length=200), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["captures.event_id"],
            name=op.f("fk_judge_verdicts_event_id_captures"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", "kind", name=op.f("pk_judge_verdicts")),
    )
    op.create_index(
        op.f("ix_judge_verdicts_recorded_at"), "judge_verdicts", ["recorded_at"], unique=False
    )
    op.create_index(
        "ix_judge_verdicts_rollout_recorded_at",
        "judge_verdicts",
        ["rollout", "recorded_at"],
        unique=False,
    )
    op.create_table(
        "judge_rollups",
        sa.Column("rollout", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in (
                "judged",
                "wins",
                "ties",
                "losses",
                "position_disagreements",
                "redacted",
                "failed",
                "skipped_budget",
            )
        ),
        sa.Column("score_sum", sa.Double(), nullable=False),
        sa.Column("score_sq_sum", sa.Double(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint(
            "rollout", "kind", "route", "minute", name=op.f("pk_judge_rollups")
        ),
    )


def downgrade() -> None:
    op.drop_table("judge_rollups")
    op.drop_index("ix_judge_verdicts_rollout_recorded_at", table_name="judge_verdicts")
    op.drop_index(op.f("ix_judge_verdicts_recorded_at"), table_name="judge_verdicts")
    op.drop_table("judge_verdicts")
