"""Hot issues: one row per real-world event; each registered complaint belongs to one, and keeps
the labels it was routed with (the issue's department, and the statistics, read them).

Complaints registered before this revision each get an issue of their own and the labels of
their latest routing-log row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LABEL = sa.String(length=255)
HEADS = ("category", "subcategory", "department")


def upgrade() -> None:
    op.create_table(
        "hot_issues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("merged_into", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["merged_into"], ["hot_issues.id"],
                                name=op.f("fk_hot_issues_merged_into_hot_issues")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hot_issues")),
    )
    with op.batch_alter_table("complaints") as batch:
        for head in HEADS:
            batch.add_column(sa.Column(head, LABEL, nullable=True))
        batch.add_column(sa.Column("issue_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_complaints_issue_id_hot_issues"), "hot_issues",
                                 ["issue_id"], ["id"])
        batch.create_index(op.f("ix_complaints_issue_id"), ["issue_id"])

    connection = op.get_bind()
    complaints = sa.table("complaints", sa.column("id", sa.String),
                          sa.column("registered_at", sa.DateTime(timezone=True)),
                          sa.column("issue_id", sa.Integer),
                          *(sa.column(h, sa.String) for h in HEADS))
    issues = sa.table("hot_issues", sa.column("id", sa.Integer),
                      sa.column("opened_at", sa.DateTime(timezone=True)))
    log = sa.table("routing_log", sa.column("id", sa.Integer),
                   sa.column("complaint_id", sa.String), sa.column("suggestions", sa.JSON))
    rows = connection.execute(sa.select(complaints.c.id, complaints.c.registered_at)
                              .order_by(complaints.c.registered_at, complaints.c.id)).all()
    for id_, registered_at in rows:
        issue = connection.execute(issues.insert().values(opened_at=registered_at)
                                   .returning(issues.c.id)).scalar_one()
        suggestions = connection.execute(
            sa.select(log.c.suggestions).where(log.c.complaint_id == id_)
            .order_by(log.c.id.desc()).limit(1)).scalar()
        labels = {h: ((suggestions or {}).get(h) or {}).get("label") for h in HEADS}
        connection.execute(complaints.update().where(complaints.c.id == id_)
                           .values(issue_id=issue, **labels))


def downgrade() -> None:
    with op.batch_alter_table("complaints") as batch:
        batch.drop_index(op.f("ix_complaints_issue_id"))
        batch.drop_constraint(op.f("fk_complaints_issue_id_hot_issues"), type_="foreignkey")
        batch.drop_column("issue_id")
        for head in reversed(HEADS):
            batch.drop_column(head)
    op.drop_table("hot_issues")
