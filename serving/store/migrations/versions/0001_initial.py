"""Initial schema: routing_log, complaints, review_items, responses, append-only audit_log.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=128)
LABEL = sa.String(length=255)


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _str(name: str, type_: sa.String, nullable: bool = True) -> sa.Column:
    return sa.Column(name, type_, nullable=nullable)


def _check(column: str, values: tuple[str, ...], table: str) -> sa.CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=op.f(f"ck_{table}_{column}"))


def upgrade() -> None:
    op.create_table(
        "routing_log",
        sa.Column("id", sa.Integer(), nullable=False),
        _str("request_id", ID, nullable=False),
        _str("complaint_id", ID),
        sa.Column("text", sa.Text(), nullable=False),
        _str("channel", ID),
        _str("location", LABEL),
        _time("received_at", nullable=True),
        _str("model_version", ID, nullable=False),
        sa.Column("suggestions", sa.JSON(), nullable=False),
        _str("decision", sa.String(length=16), nullable=False),
        _time("created_at"),
        _check("decision", ("auto", "review"), "routing_log"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_log")),
    )
    op.create_index(op.f("ix_routing_log_complaint_id"), "routing_log", ["complaint_id"])
    op.create_index(op.f("ix_routing_log_created_at"), "routing_log", ["created_at"])
    op.create_index(op.f("ix_routing_log_request_id"), "routing_log", ["request_id"])

    op.create_table(
        "complaints",
        _str("id", ID, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        _str("text_hash", sa.String(length=64), nullable=False),
        _str("channel", ID),
        _str("location", LABEL),
        _time("received_at", nullable=True),
        _time("registered_at"),
        _str("model_version", ID),
        sa.Column("removed", sa.Boolean(), nullable=False),
        _time("removed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaints")),
    )
    op.create_index(op.f("ix_complaints_text_hash"), "complaints", ["text_hash"])

    op.create_table(
        "review_items",
        sa.Column("id", sa.Integer(), nullable=False),
        _str("complaint_id", ID),
        sa.Column("routing_log_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        _str("channel", ID),
        _str("category", LABEL),
        _str("subcategory", LABEL),
        _str("department", LABEL),
        sa.Column("suggestion", sa.JSON(), nullable=False),
        _str("model_version", ID),
        _str("reason", sa.String(length=32), nullable=False),
        sa.Column("min_confidence", sa.Float(), nullable=False),
        _time("received_at"),
        _time("due_at"),
        _time("created_at"),
        _str("status", sa.String(length=16), nullable=False),
        _str("claimed_by", ID),
        _time("claimed_at", nullable=True),
        _time("claim_expires_at", nullable=True),
        _time("done_at", nullable=True),
        _check("reason", ("low_confidence", "audit", "spot_check", "manual"), "review_items"),
        _check("status", ("open", "claimed", "done"), "review_items"),
        sa.ForeignKeyConstraint(["routing_log_id"], ["routing_log.id"],
                                name=op.f("fk_review_items_routing_log_id_routing_log")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_items")),
    )
    op.create_index(op.f("ix_review_items_complaint_id"), "review_items", ["complaint_id"])
    op.create_index(op.f("ix_review_items_routing_log_id"), "review_items", ["routing_log_id"])
    op.create_index("ix_review_items_queue", "review_items",
                    ["status", "due_at", "min_confidence"])

    op.create_table(
        "responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("review_item_id", sa.Integer(), nullable=True),
        _str("complaint_id", ID),
        sa.Column("text", sa.Text(), nullable=False),
        _str("kind", sa.String(length=32), nullable=False),
        _str("category", LABEL),
        _str("subcategory", LABEL),
        _str("department", LABEL),
        sa.Column("parts", sa.JSON(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        _str("status", sa.String(length=16), nullable=False),
        _str("officer", ID),
        _str("source", ID, nullable=False),
        _time("created_at"),
        _time("updated_at"),
        _time("submitted_at", nullable=True),
        sa.Column("suggestion", sa.JSON(), nullable=True),
        _str("model_version", ID),
        _check("kind", ("accept", "correct", "not_a_complaint", "split"), "responses"),
        _check("status", ("draft", "submitted", "discarded"), "responses"),
        sa.ForeignKeyConstraint(["review_item_id"], ["review_items.id"],
                                name=op.f("fk_responses_review_item_id_review_items")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_responses")),
    )
    op.create_index(op.f("ix_responses_complaint_id"), "responses", ["complaint_id"])
    op.create_index(op.f("ix_responses_review_item_id"), "responses", ["review_item_id"])
    op.create_index("ix_responses_status_submitted_at", "responses", ["status", "submitted_at"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        _time("at"),
        _str("actor", ID, nullable=False),
        _str("action", sa.String(length=64), nullable=False),
        _str("object_type", sa.String(length=32), nullable=False),
        _str("object_id", ID, nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"])
    op.create_index("ix_audit_log_object", "audit_log", ["object_type", "object_id"])
    _make_audit_log_append_only()


def downgrade() -> None:
    _drop_audit_log_guards()
    for table in ("audit_log", "responses", "review_items", "complaints", "routing_log"):
        op.drop_table(table)


# The audit log cannot be edited: the database itself refuses, whoever connects.
_REFUSAL = "audit_log is append-only: its rows cannot be changed or deleted"


def _make_audit_log_append_only() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{_REFUSAL}' USING ERRCODE = 'insufficient_privilege';
            END $$""")
        op.execute("""
            CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
            FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()""")
        op.execute("""
            CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change()""")
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log
                BEGIN SELECT RAISE(ABORT, '{_REFUSAL}'); END""")


def _drop_audit_log_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION audit_log_refuse_change()")
    else:
        op.execute("DROP TRIGGER audit_log_no_delete")
        op.execute("DROP TRIGGER audit_log_no_update")
