"""Registered complaints: registration with its routing log, review items and hot issue in one
transaction, removal, lookup."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from model.errors import Conflict, InvalidInput, NotFound
from model.normalize import text_hash
from serving.store.audit import aware_utc, complaint_state, current_time, record_audit
from serving.store.db import write_transaction
from serving.store.issues import assign_issue
from serving.store.queue import RoutedText, log_routed
from serving.store.tables import AuditLog, Complaint


@dataclass(frozen=True)
class NewComplaint:
    """A complaint to register; `id` is the client's own."""

    id: str
    text: str
    channel: str | None = None
    location: str | None = None
    received_at: datetime | None = None
    # what it was routed with, and the registered complaint it repeats (the same event): it
    # joins that complaint's hot issue, else it opens one
    category: str | None = None
    subcategory: str | None = None
    department: str | None = None
    repeats: str | None = None
    time_limit: str | None = None  # the duty-list limit of its subcategory: its case's due time


@dataclass(frozen=True)
class Registration:
    registered: list[Complaint]
    taken: list[str]  # ids already registered, also by a request committed meanwhile


def register_complaints(session: Session, complaints: Sequence[NewComplaint], *, actor: str,
                        model_version: str | None = None,
                        now: datetime | None = None) -> list[Complaint]:
    """Register complaints (all or none). Conflict if an id is already registered; a removed id
    may be registered again."""
    now = current_time(now)
    _check_new(complaints)
    with write_transaction(session):
        return [_register_one(session, c, actor=actor, model_version=model_version, now=now)
                for c in complaints]


def register_routed(session: Session, request_id: str,
                    complaints: Sequence[tuple[NewComplaint, RoutedText]], *, actor: str,
                    model_version: str | None = None,
                    now: datetime | None = None) -> Registration:
    """Register routed complaints together with their routing log and, for those decided
    `review`, their review items: one transaction, all of it or nothing. An id that is already
    registered — also by a concurrent request — is skipped and listed in `taken`, and the
    others are registered all the same."""
    now = current_time(now)
    _check_new([c for c, _ in complaints])
    registered: list[tuple[Complaint, RoutedText]] = []
    taken = []
    with write_transaction(session):
        for complaint, routed in complaints:
            try:
                with session.begin_nested():  # a savepoint: a lost race undoes only this one
                    row = _register_one(session, complaint, actor=actor,
                                        model_version=model_version, now=now)
            except Conflict:
                taken.append(complaint.id)
                continue
            registered.append((row, routed))
        log_routed(session, request_id, [r for _, r in registered], actor=actor, enqueue=True,
                     now=now)
    return Registration(registered=[row for row, _ in registered], taken=taken)


def _check_new(complaints: Sequence[NewComplaint]) -> None:
    ids = [c.id for c in complaints]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise InvalidInput(f"complaint ids repeat in one request: {', '.join(repeated)}",
                           field="id")
    for c in complaints:
        if not c.id or not c.text:
            raise InvalidInput(f"complaint {c.id!r}: id and text are required",
                               field="id" if not c.id else "text")
        if c.received_at is not None:
            aware_utc(c.received_at, "received_at")


def _register_one(session: Session, c: NewComplaint, *, actor: str, model_version: str | None,
                  now: datetime) -> Complaint:
    """Insert (or re-register a removed) complaint inside the caller's transaction; Conflict if
    the id is registered, including by a concurrent transaction that commits first."""
    row = session.scalars(select(Complaint).where(Complaint.id == c.id).with_for_update()).first()
    if row is not None and not row.removed:
        raise Conflict(f"complaint already registered: {c.id}; remove it first or register it "
                       "under a new id")
    values = dict(text=c.text, text_hash=text_hash(c.text), channel=c.channel,
                  location=c.location, received_at=c.received_at, registered_at=now,
                  model_version=model_version, removed=False, removed_at=None,
                  category=c.category, subcategory=c.subcategory, department=c.department,
                  time_limit=c.time_limit)
    before = None if row is None else complaint_state(row)
    if row is None:
        row = Complaint(id=c.id, **values)
        session.add(row)
    else:
        for k, v in values.items():
            setattr(row, k, v)
    try:
        session.flush()
    except IntegrityError as exc:  # registered at this moment by a concurrent request
        raise Conflict(f"complaint {c.id!r} is already registered; remove it first or "
                       "register it under a new id") from exc
    assign_issue(session, row, c.repeats, now)
    record_audit(session, actor, "complaint.registered", row, before, complaint_state(row), now)
    return row


def remove_complaint(session: Session, complaint_id: str, *, actor: str,
                     now: datetime | None = None) -> Complaint:
    """Mark a complaint removed (kept for history; the similarity index drops it). Idempotent."""
    now = current_time(now)
    with write_transaction(session):
        row = session.scalars(select(Complaint).where(Complaint.id == complaint_id)
                              .with_for_update()).first()
        if row is None:
            raise NotFound(f"complaint {complaint_id!r} is not registered")
        if not row.removed:
            before = complaint_state(row)
            row.removed, row.removed_at = True, now
            session.flush()
            record_audit(session, actor, "complaint.removed", row, before, complaint_state(row), now)
        return row


def get_complaint(session: Session, complaint_id: str, *,
                  include_removed: bool = False) -> Complaint:
    row = session.get(Complaint, complaint_id)
    if row is None or (row.removed and not include_removed):
        raise NotFound(f"complaint {complaint_id!r} is not registered"
                       + (" (it was removed)" if row is not None else ""))
    return row


@dataclass(frozen=True)
class ComplaintChanges:
    """What the audit log (the store's ordered change log) says happened to complaints."""

    seen: list[int]  # every audit-log id read, of any object: how a follower finds gaps
    registered: list[str]  # complaint ids, in log order
    removed: list[str]


def complaint_changes(session: Session, after: int, also: Sequence[int] = ()) -> ComplaintChanges:
    """Audit-log entries with an id above `after` (or in `also`: ids a follower saw missing,
    which a transaction still open may fill), and which complaints they registered or removed."""
    query = select(AuditLog.id, AuditLog.action, AuditLog.object_type, AuditLog.object_id).where(
        or_(AuditLog.id > after, AuditLog.id.in_(list(also))) if also else AuditLog.id > after)
    seen, registered, removed = [], [], []
    for id_, action, object_type, object_id in session.execute(query.order_by(AuditLog.id)):
        seen.append(id_)
        if object_type == "complaint" and action == "complaint.registered":
            registered.append(object_id)
        elif object_type == "complaint" and action == "complaint.removed":
            removed.append(object_id)
    return ComplaintChanges(seen, registered, removed)


def last_change(session: Session) -> int:
    """The newest audit-log id (0 if none): where a follower starts reading."""
    return int(session.scalar(select(func.max(AuditLog.id))) or 0)


def registered_complaints(session: Session) -> list[Complaint]:
    """All complaints not removed, oldest first: what the similarity index is rebuilt from."""
    return list(session.scalars(select(Complaint).where(Complaint.removed.is_(False))
                                .order_by(Complaint.registered_at, Complaint.id)))
