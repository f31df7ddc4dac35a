"""The store's tables (SQLAlchemy 2.0 typed ORM), which the migrations in `migrations/` build.

The model's *suggestion* and the officer's *response* are kept apart, as in argilla:

    routing_log   one row per routed text: what the model suggested (per head, with confidences)
    complaints    registered complaints, with the labels they were routed with; the similarity
                  index is rebuilt from this table
    hot_issues    one row per real-world event; every registered complaint belongs to one
    case_events   what happened to a registered complaint after routing, as the case-handling
                  system or an officer posted it: assigned, replied, closed, reopened
    warnings      early warnings with their evidence (series, expected vs observed, complaints);
                  an officer acknowledges them
    review_items  the review queue: a snapshot of the suggestion, why it is queued, SLA, claim
    responses     what a person said: draft | submitted | discarded; only submitted ones are labels,
                  each with who, when and what the model had said (suggestion + model version)
    audit_log     append-only record of every change; UPDATE and DELETE are refused by triggers
    idempotency_keys  the answer given to a write sent with an Idempotency-Key, kept a day so a
                  retry (on any replica) gets that answer instead of a second write

Times are stored in UTC and read back timezone-aware on every backend.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DECISIONS = ("auto", "review")
REVIEW_REASONS = ("low_confidence", "audit", "spot_check", "manual")
REVIEW_STATUSES = ("open", "claimed", "done")
RESPONSE_KINDS = ("accept", "correct", "not_a_complaint", "split")
CASE_EVENT_KINDS = ("assigned", "replied", "closed", "reopened")
WARNING_KINDS = ("surge", "repeated_event", "overdue_cases", "overdue_share")
RESPONSE_STATUSES = ("draft", "submitted", "discarded")

ID = 128  # complaint ids, request ids, officer and source names
LABEL = 255  # category, subcategory key `category/subcategory`, department


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that must be timezone-aware going in and is UTC-aware coming out.

    SQLite has no time zones: values are converted to UTC before storing, so they also compare
    correctly as text there, and read back with UTC attached.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware time "
                             "(e.g. datetime.now(UTC)); the store keeps UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class RoutingLog(Base):
    """One routed text and the model's suggestion for it (`Routing.to_dict()`)."""

    __tablename__ = "routing_log"
    __table_args__ = (CheckConstraint(_one_of("decision", DECISIONS), name="decision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(ID), index=True)
    complaint_id: Mapped[str | None] = mapped_column(String(ID), index=True)
    text: Mapped[str] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(ID))
    location: Mapped[str | None] = mapped_column(String(LABEL))
    received_at: Mapped[datetime | None]
    model_version: Mapped[str] = mapped_column(String(ID))
    # per head: {"label", "confidence", "top": [{"label", "confidence"}, …]}, plus "duty"
    suggestions: Mapped[dict[str, Any]]
    decision: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(index=True)


class Complaint(Base):
    """A registered complaint (id chosen by the client); removal is a flag, history stays."""

    __tablename__ = "complaints"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str | None] = mapped_column(String(ID))
    location: Mapped[str | None] = mapped_column(String(LABEL))
    received_at: Mapped[datetime | None]
    registered_at: Mapped[datetime]
    model_version: Mapped[str | None] = mapped_column(String(ID))
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    removed_at: Mapped[datetime | None]
    # what it was routed with at registration; `subcategory` is the key `category/subcategory`
    category: Mapped[str | None] = mapped_column(String(LABEL))
    subcategory: Mapped[str | None] = mapped_column(String(LABEL))
    department: Mapped[str | None] = mapped_column(String(LABEL))
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("hot_issues.id"), index=True)
    # the duty-list time limit of its routed subcategory (30min, 5wd…): its case's due time
    time_limit: Mapped[str | None] = mapped_column(String(16))


class HotIssue(Base):
    """One real-world event that complaints report (热点问题). A complaint joins the issue of the
    registered complaint it repeats (same event) or opens one; an officer may merge two issues
    (the merged one keeps `merged_into`, its members move) or split one."""

    __tablename__ = "hot_issues"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    opened_at: Mapped[datetime]
    merged_into: Mapped[int | None] = mapped_column(ForeignKey("hot_issues.id"))


class CaseEvent(Base):
    """One step of a complaint's case, idempotent by the poster's `event_id`. The case's state is
    its last event's (`routed` before any); nothing else about the case is stored."""

    __tablename__ = "case_events"
    __table_args__ = (CheckConstraint(_one_of("kind", CASE_EVENT_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(ID), unique=True)
    complaint_id: Mapped[str] = mapped_column(ForeignKey("complaints.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(index=True)  # when it happened
    department: Mapped[str | None] = mapped_column(String(LABEL))  # assigned to / replying
    reply: Mapped[str | None] = mapped_column(Text)  # the official reply (replied)
    note: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(ID))
    recorded_at: Mapped[datetime]


class EarlyWarning(Base):
    """An early warning for one day (serving/warnings.py): a surge in a series, an event reported
    again and again, a department's overdue cases or its rising overdue share."""

    __tablename__ = "warnings"
    __table_args__ = (CheckConstraint(_one_of("kind", WARNING_KINDS), name="kind"),
                      UniqueConstraint("kind", "key", "day"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(LABEL))  # the series, issue or department it is about
    day: Mapped[date] = mapped_column(Date, index=True)  # the local day it is about
    department: Mapped[str | None] = mapped_column(String(LABEL), index=True)  # who should act
    observed: Mapped[float] = mapped_column(Float)
    expected: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    evidence: Mapped[dict[str, Any]]  # series, complaint ids: what the numbers came from
    created_at: Mapped[datetime]
    acknowledged_by: Mapped[str | None] = mapped_column(String(ID))
    acknowledged_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)


class ReviewItem(Base):
    """A complaint waiting for (or done with) a person's check; claimed by one officer at a time."""

    __tablename__ = "review_items"
    __table_args__ = (
        CheckConstraint(_one_of("reason", REVIEW_REASONS), name="reason"),
        CheckConstraint(_one_of("status", REVIEW_STATUSES), name="status"),
        # the queue's order: SLA urgency, then least confidence
        Index("ix_review_items_queue", "status", "due_at", "min_confidence"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    complaint_id: Mapped[str | None] = mapped_column(String(ID), index=True)
    routing_log_id: Mapped[int | None] = mapped_column(ForeignKey("routing_log.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(ID))
    # the suggestion's labels, copied out of `suggestion` so the queue can filter on them
    category: Mapped[str | None] = mapped_column(String(LABEL))
    subcategory: Mapped[str | None] = mapped_column(String(LABEL))
    department: Mapped[str | None] = mapped_column(String(LABEL))
    suggestion: Mapped[dict[str, Any]]
    model_version: Mapped[str | None] = mapped_column(String(ID))
    reason: Mapped[str] = mapped_column(String(32))
    min_confidence: Mapped[float] = mapped_column(Float)
    received_at: Mapped[datetime]
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="open")
    claimed_by: Mapped[str | None] = mapped_column(String(ID))
    claimed_at: Mapped[datetime | None]
    claim_expires_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]


class Response(Base):
    """What a person said about a complaint: an officer reviewing an item, or an intake system's
    final routing (`source` says which). Only `submitted` responses become training labels."""

    __tablename__ = "responses"
    __table_args__ = (
        CheckConstraint(_one_of("kind", RESPONSE_KINDS), name="kind"),
        CheckConstraint(_one_of("status", RESPONSE_STATUSES), name="status"),
        Index("ix_responses_status_submitted_at", "status", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    review_item_id: Mapped[int | None] = mapped_column(ForeignKey("review_items.id"), index=True)
    complaint_id: Mapped[str | None] = mapped_column(String(ID), index=True)
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    category: Mapped[str | None] = mapped_column(String(LABEL))
    subcategory: Mapped[str | None] = mapped_column(String(LABEL))  # key `category/subcategory`
    department: Mapped[str | None] = mapped_column(String(LABEL))
    parts: Mapped[list[Any] | None]  # kind "split": [{"text", "category", "subcategory", …}, …]
    note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    officer: Mapped[str | None] = mapped_column(String(ID))
    source: Mapped[str] = mapped_column(String(ID))  # "review", or the intake system's name
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None]
    # what the model had said when the person answered
    suggestion: Mapped[dict[str, Any] | None]
    model_version: Mapped[str | None] = mapped_column(String(ID))


class AuditLog(Base):
    """Append-only: who changed what, with the object before and after. Never updated or deleted."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(ID))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(ID))
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]


class IdempotencyKey(Base):
    """The answer to one write sent with an `Idempotency-Key` (serving/store/idempotency.py),
    stored in the write's own transaction: either both are there or neither."""

    __tablename__ = "idempotency_keys"

    actor: Mapped[str] = mapped_column(String(ID), primary_key=True)  # whose key it is
    key: Mapped[str] = mapped_column(String(LABEL), primary_key=True)
    request: Mapped[str] = mapped_column(String(LABEL))  # method and path
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of the canonical JSON body
    answer: Mapped[dict[str, Any] | None]  # the response body (None while being written)
    created_at: Mapped[datetime] = mapped_column(index=True)
