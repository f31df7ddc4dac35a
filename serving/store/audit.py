"""The audit log: every write's before and after, and the trail of one object; and the time and
row-count helpers every store module uses (this is the module the others build on)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from model.errors import InvalidInput
from serving.store.tables import (
    AuditLog,
    Complaint,
    EarlyWarning,
    HotIssue,
    ReviewItem,
)
from serving.store.tables import Response as ResponseRow


def aware_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{name} {value.isoformat()} has no time zone; give one, e.g. "
                           f"{value.replace(tzinfo=UTC).isoformat()}", field=name)
    return value.astimezone(UTC)


def current_time(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else aware_utc(now, "now")


def rowcount(result: Any) -> int:
    return int(result.rowcount)


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def item_state(item: ReviewItem) -> dict[str, Any]:
    return {k: _json(getattr(item, k)) for k in (
        "status", "claimed_by", "claimed_at", "claim_expires_at", "done_at", "complaint_id",
        "reason", "due_at", "min_confidence", "category", "subcategory", "department")}


def response_state(r: ResponseRow) -> dict[str, Any]:
    return {k: _json(getattr(r, k)) for k in (
        "status", "kind", "category", "subcategory", "department", "parts", "note", "officer",
        "source", "review_item_id", "complaint_id", "submitted_at", "model_version")}


def complaint_state(c: Complaint) -> dict[str, Any]:
    return {k: _json(getattr(c, k)) for k in (
        "text_hash", "channel", "location", "received_at", "registered_at", "model_version",
        "removed", "removed_at", "category", "subcategory", "department", "issue_id",
        "time_limit")}


_OBJECT_TYPES = {ReviewItem: "review_item", ResponseRow: "response", Complaint: "complaint",
                 HotIssue: "hot_issue", EarlyWarning: "warning"}
Audited = ReviewItem | ResponseRow | Complaint | HotIssue | EarlyWarning


def record_audit(session: Session, actor: str, action: str, obj: Audited,
           before: dict[str, Any] | None, after: dict[str, Any] | None, now: datetime) -> None:
    session.add(AuditLog(at=now, actor=actor, action=action,
                         object_type=_OBJECT_TYPES[type(obj)], object_id=str(obj.id),
                         before=before, after=after))


def audit_trail(session: Session, object_type: str, object_id: str | int) -> list[AuditLog]:
    """The audit-log entries of one object, oldest first."""
    return list(session.scalars(select(AuditLog).where(AuditLog.object_type == object_type,
                                                       AuditLog.object_id == str(object_id))
                                .order_by(AuditLog.id)))
