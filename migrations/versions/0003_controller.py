"""Controller state: rollouts (optimistic concurrency) and their append-only audit log.

The audit log is what an on-call engineer and an auditor read after the fact, so the
database itself refuses to change it: a trigger rejects UPDATE and DELETE of audit
rows (and TRUNCATE of the table), whatever client tries. ``downgrade`` drops the table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REFUSE_CHANGES = """
CREATE FUNCTION rollout_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rollout_audit is append-only: % is not allowed', TG_OP
        USING HINT = 'audit rows are evidence; write a new entry instead of changing one';
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("plan", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("percent", sa.SmallInteger(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("baseline_p99_ms", sa.Double(), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rollouts")),
    )
    op.create_table(
        "rollout_audit",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rollout", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_percent", sa.SmallInteger(), nullable=True),
        sa.Column("to_percent", sa.SmallInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decision", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("inputs", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["rollout"], ["rollouts.name"], name=op.f("fk_rollout_audit_rollout_rollouts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_audit")),
    )
    op.create_index("ix_rollout_audit_rollout_at", "rollout_audit", ["rollout", "at"], unique=False)
    op.create_index(
        "ix_rollout_audit_percent_changes",
        "rollout_audit",
        ["rollout", "at"],
        unique=False,
        postgresql_where=sa.text("to_percent IS NOT NULL"),
    )
    op.execute(_REFUSE_CHANGES)
    op.execute(
        "CREATE TRIGGER rollout_audit_no_change BEFORE UPDATE OR DELETE ON rollout_audit "
        "FOR EACH ROW EXECUTE FUNCTION rollout_audit_append_only()"
    )
    op.execute(
        "CREATE TRIGGER rollout_audit_no_truncate BEFORE TRUNCATE ON rollout_audit "
        "FOR EACH STATEMENT EXECUTE FUNCTION rollout_audit_append_only()"
    )


def downgrade() -> None:
    op.drop_index("ix_rollout_audit_percent_changes", table_name="rollout_audit")
    op.drop_index("ix_rollout_audit_rollout_at", table_name="rollout_audit")
    op.drop_table("rollout_audit")  # its triggers go with it
    op.execute("DROP FUNCTION rollout_audit_append_only()")
    op.drop_table("rollouts")
