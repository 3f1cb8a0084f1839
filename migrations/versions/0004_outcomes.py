"""User outcomes: reports keyed by event id, joined to captures and rolled up per minute.

``outcomes`` keeps one merged row per event id; ``live_rollups`` gains the per-minute
counters the outcome triggers (completion_rate, negative_feedback, escalation_rate)
read, defaulting to 0 for the minutes rolled up before this revision.

Revision ID: 0004_outcomes
Revises: 0003
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_outcomes"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE_COLUMNS = (
    ("outcomes_reported", sa.BigInteger()),
    ("tasks_reported", sa.BigInteger()),
    ("tasks_abandoned", sa.BigInteger()),
    ("outcomes_negative", sa.BigInteger()),
    ("outcomes_escalated", sa.BigInteger()),
    ("outcome_value_n", sa.BigInteger()),
    ("outcome_value_sum", sa.Double()),
    ("outcome_value_sq_sum", sa.Double()),
    ("outcome_updates", sa.BigInteger()),
)


def upgrade() -> None:
    for name, kind in _LIVE_COLUMNS:
        op.add_column(
            "live_rollups",
            sa.Column(name, kind, server_default=sa.text("0"), nullable=False),
        )
    op.create_table(
        "outcomes",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("tenant", sa.String(length=200), nullable=True),
        sa.Column("rollout", sa.String(length=200), nullable=True),
        sa.Column("task", sa.String(length=16), nullable=True),
        sa.Column("feedback", sa.String(length=8), nullable=True),
        sa.Column("retried", sa.Boolean(), nullable=False),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("reports", sa.BigInteger(), nullable=False),
        sa.Column("first_reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("dirty", sa.Boolean(), nullable=False),
        sa.Column("refused_reason", sa.String(length=200), nullable=True),
        sa.Column("joined_rollout", sa.String(length=200), nullable=True),
        sa.Column("arm", sa.String(length=16), nullable=True),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=True),
        sa.Column("counted", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_outcomes")),
    )
    op.create_index(op.f("ix_outcomes_received_at"), "outcomes", ["received_at"])
    op.create_index(
        "ix_outcomes_dirty",
        "outcomes",
        ["received_at"],
        postgresql_where=sa.text("dirty"),
    )


def downgrade() -> None:
    op.drop_index("ix_outcomes_dirty", table_name="outcomes")
    op.drop_index(op.f("ix_outcomes_received_at"), table_name="outcomes")
    op.drop_table("outcomes")
    for name, _ in reversed(_LIVE_COLUMNS):
        op.drop_column("live_rollups", name)
