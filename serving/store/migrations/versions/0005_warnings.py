"""Early warnings, each with its evidence, acknowledged by an officer.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=128)
LABEL = sa.String(length=255)


def upgrade() -> None:
    op.create_table(
        "warnings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", LABEL, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("department", LABEL, nullable=True),
        sa.Column("observed", sa.Float(), nullable=False),
        sa.Column("expected", sa.Float(), nullable=True),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_by", ID, nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('surge', 'repeated_event', 'overdue_cases', "
                           "'overdue_share')", name=op.f("ck_warnings_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warnings")),
        sa.UniqueConstraint("kind", "key", "day", name=op.f("uq_warnings_kind_key_day")),
    )
    op.create_index(op.f("ix_warnings_day"), "warnings", ["day"])
    op.create_index(op.f("ix_warnings_department"), "warnings", ["department"])


def downgrade() -> None:
    op.drop_index(op.f("ix_warnings_department"), table_name="warnings")
    op.drop_index(op.f("ix_warnings_day"), table_name="warnings")
    op.drop_table("warnings")
