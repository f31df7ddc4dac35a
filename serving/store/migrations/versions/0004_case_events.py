"""Cases: the events that follow routing (assigned, replied, closed, reopened), and each
complaint's duty-list time limit, from which its due time is computed.

Complaints registered before this revision get the time limit their latest routing-log row's
duty entry gave (none if it gave none).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=128)
LABEL = sa.String(length=255)


def upgrade() -> None:
    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("complaint_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("department", LABEL, nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actor", ID, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('assigned', 'replied', 'closed', 'reopened')",
                           name=op.f("ck_case_events_kind")),
        sa.ForeignKeyConstraint(["complaint_id"], ["complaints.id"],
                                name=op.f("fk_case_events_complaint_id_complaints")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_case_events_event_id")),
    )
    op.create_index(op.f("ix_case_events_complaint_id"), "case_events", ["complaint_id"])
    op.create_index(op.f("ix_case_events_at"), "case_events", ["at"])
    with op.batch_alter_table("complaints") as batch:
        batch.add_column(sa.Column("time_limit", sa.String(length=16), nullable=True))

    connection = op.get_bind()
    complaints = sa.table("complaints", sa.column("id", sa.String),
                          sa.column("time_limit", sa.String))
    log = sa.table("routing_log", sa.column("id", sa.Integer),
                   sa.column("complaint_id", sa.String), sa.column("suggestions", sa.JSON))
    for (id_,) in connection.execute(sa.select(complaints.c.id)).all():
        suggestions = connection.execute(
            sa.select(log.c.suggestions).where(log.c.complaint_id == id_)
            .order_by(log.c.id.desc()).limit(1)).scalar()
        limit = ((suggestions or {}).get("duty") or {}).get("time_limit")
        if limit:
            connection.execute(complaints.update().where(complaints.c.id == id_)
                               .values(time_limit=limit))


def downgrade() -> None:
    with op.batch_alter_table("complaints") as batch:
        batch.drop_column("time_limit")
    op.drop_index(op.f("ix_case_events_at"), table_name="case_events")
    op.drop_index(op.f("ix_case_events_complaint_id"), table_name="case_events")
    op.drop_table("case_events")
