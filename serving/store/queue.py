"""The routing log and the review queue: routings logged per request, items enqueued, listed
most urgent first, and claimed exclusively (see serving/store/service.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from model.duty import (
    DEFAULT_TIME_LIMIT,
    due_date,
)
from model.errors import Conflict, InvalidInput, NotFound
from model.taxonomy import HEADS
from serving.store.audit import aware_utc, current_time, item_state, record_audit, rowcount
from serving.store.db import write_transaction
from serving.store.tables import (
    REVIEW_REASONS,
    ReviewItem,
    RoutingLog,
)

if TYPE_CHECKING:
    from model.router import Routing


# An officer keeps a claimed item this long without touching it; then anyone may take it.
CLAIM_TTL = timedelta(minutes=30)
MAX_PAGE = 500
_CLAIM_ATTEMPTS = 10


@dataclass(frozen=True)
class RoutedText:
    """One routed complaint to log: its text and `Routing.to_dict()` (or the Routing itself)."""

    text: str
    routing: Mapping[str, Any] | Routing
    complaint_id: str | None = None
    channel: str | None = None
    location: str | None = None
    received_at: datetime | None = None


@dataclass(frozen=True)
class QueueFilter:
    """Which review items to list or take. Ages count from when the complaint was received.

    status: "open" (free to claim, including claims that expired), "claimed" (claimed now),
    "done", or None for any.
    """

    department: str | None = None
    category: str | None = None
    channel: str | None = None
    min_age: timedelta | None = None
    max_age: timedelta | None = None
    status: str | None = "open"

    def __post_init__(self) -> None:
        if self.status not in ("open", "claimed", "done", None):
            raise InvalidInput(f"queue status {self.status!r} is not one of open, claimed, done "
                               "(or leave it out for all)", field="status")
        for name in ("min_age", "max_age"):
            age = getattr(self, name)
            if age is not None and age < timedelta(0):
                raise InvalidInput(f"{name} must not be negative, got {age}", field=name)


@dataclass(frozen=True)
class QueuePage:
    items: list[ReviewItem]
    total: int  # items matching the filter, over all pages
    limit: int
    offset: int


def log_routing(session: Session, request_id: str, routed: Sequence[RoutedText], *, actor: str,
                enqueue: bool = True, now: datetime | None = None) -> list[RoutingLog]:
    """Log the routings of one request; with `enqueue`, those decided `review` join the queue."""
    now = current_time(now)
    with write_transaction(session):
        return log_routed(session, request_id, routed, actor=actor, enqueue=enqueue, now=now)


def log_routed(session: Session, request_id: str, routed: Sequence[RoutedText], *, actor: str,
                 enqueue: bool, now: datetime) -> list[RoutingLog]:
    rows = []
    for r in routed:
        routing = routing_dict(r.routing)
        decision, version = routing.get("decision"), routing.get("model_version")
        if decision not in ("auto", "review"):
            raise InvalidInput(f"routing decision {decision!r} is neither auto nor review",
                               field="decision")
        if not version:
            raise InvalidInput("the routing has no model_version; log Routing.to_dict()",
                               field="model_version")
        received = None if r.received_at is None else aware_utc(r.received_at, "received_at")
        row = RoutingLog(request_id=request_id, complaint_id=r.complaint_id, text=r.text,
                         channel=r.channel, location=r.location, received_at=received,
                         model_version=str(version),
                         suggestions=routing, decision=decision, created_at=now)
        session.add(row)
        rows.append(row)
    session.flush()
    if enqueue:
        for row in rows:
            if row.decision == "review":
                _enqueue(session, text=row.text, suggestion=row.suggestions,
                         reason="low_confidence", actor=actor, complaint_id=row.complaint_id,
                         routing_log_id=row.id, channel=row.channel,
                         received_at=row.received_at, due_at=None,
                         model_version=row.model_version, default_sla=DEFAULT_TIME_LIMIT, now=now)
    return rows


def enqueue_review(session: Session, *, text: str, suggestion: Mapping[str, Any] | Routing,
                   reason: str, actor: str, complaint_id: str | None = None,
                   routing_log_id: int | None = None, channel: str | None = None,
                   received_at: datetime | None = None, due_at: datetime | None = None,
                   model_version: str | None = None, default_sla: timedelta = DEFAULT_TIME_LIMIT,
                   now: datetime | None = None) -> ReviewItem:
    """Put a complaint in the review queue (or return the item already waiting for it).

    `due_at` defaults to the received time plus the duty list's time limit for the suggested
    subcategory, else plus `default_sla`.
    """
    now = current_time(now)
    if reason not in REVIEW_REASONS:
        raise InvalidInput(f"review reason {reason!r} is not one of {', '.join(REVIEW_REASONS)}",
                           field="reason")
    with write_transaction(session):
        return _enqueue(session, text=text, suggestion=routing_dict(suggestion), reason=reason,
                        actor=actor, complaint_id=complaint_id, routing_log_id=routing_log_id,
                        channel=channel, received_at=received_at, due_at=due_at,
                        model_version=model_version, default_sla=default_sla, now=now)


def get_review_item(session: Session, item_id: int) -> ReviewItem:
    item = session.get(ReviewItem, item_id)
    if item is None:
        raise NotFound(f"review item {item_id} does not exist")
    return item


def list_queue(session: Session, filters: QueueFilter | None = None, *, limit: int = 50,
               offset: int = 0, now: datetime | None = None) -> QueuePage:
    """Review items matching `filters`, most urgent first: earliest due, then least confident."""
    now = current_time(now)
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}, got {limit}", field="limit")
    if offset < 0:
        raise InvalidInput(f"offset must not be negative, got {offset}", field="offset")
    where = _queue_filter(filters or QueueFilter(), now)
    total = session.scalar(select(func.count()).select_from(ReviewItem).where(*where)) or 0
    items = session.scalars(select(ReviewItem).where(*where).order_by(*_URGENCY)
                            .limit(limit).offset(offset)).all()
    return QueuePage(items=list(items), total=total, limit=limit, offset=offset)


def claim(session: Session, item_id: int, officer: str, *, ttl: timedelta = CLAIM_TTL,
          now: datetime | None = None) -> ReviewItem:
    """Claim one item for `officer` (renewing their own claim). Conflict if someone else holds it
    or it is done."""
    now = current_time(now)
    check_officer(officer)
    with write_transaction(session):
        item = lock_item(session, item_id, skip_locked=False)
        return take_item(session, item, officer, ttl, now)


def claim_next(session: Session, officer: str, filters: QueueFilter | None = None, *,
               ttl: timedelta = CLAIM_TTL, now: datetime | None = None) -> ReviewItem | None:
    """Claim the most urgent free item matching `filters` (status is ignored); None if none is."""
    now = current_time(now)
    check_officer(officer)
    where = _queue_filter(filters or QueueFilter(), now, status="open")
    with write_transaction(session):
        for _ in range(_CLAIM_ATTEMPTS):
            candidate = session.scalars(
                select(ReviewItem).where(*where).order_by(*_URGENCY).limit(1)
                .with_for_update(skip_locked=True)  # PostgreSQL; SQLite already holds the lock
                .execution_options(populate_existing=True)).first()
            if candidate is None:
                return None
            try:
                return take_item(session, candidate, officer, ttl, now)
            except Conflict:  # taken between our read and our write: the lock prevents it, but
                continue      # if it happened, the conditional UPDATE caught it; try the next one
        raise Conflict(f"could not claim an item in {_CLAIM_ATTEMPTS} attempts; try again")


_URGENCY = (ReviewItem.due_at.asc(), ReviewItem.min_confidence.asc(), ReviewItem.id.asc())


def routing_dict(routing: Mapping[str, Any] | Routing) -> dict[str, Any]:
    if isinstance(routing, Mapping):
        return dict(routing)
    return routing.to_dict()


def suggested_label(suggestion: Mapping[str, Any] | None, head: str) -> str | None:
    entry = (suggestion or {}).get(head)
    return entry.get("label") if isinstance(entry, Mapping) else None


def _min_confidence(suggestion: Mapping[str, Any]) -> float:
    values = [float(e["confidence"]) for h in HEADS
              if isinstance(e := suggestion.get(h), Mapping) and "confidence" in e]
    return min(values) if values else 0.0


def _enqueue(session: Session, *, text: str, suggestion: dict[str, Any], reason: str, actor: str,
             complaint_id: str | None, routing_log_id: int | None, channel: str | None,
             received_at: datetime | None, due_at: datetime | None, model_version: str | None,
             default_sla: timedelta, now: datetime) -> ReviewItem:
    if complaint_id is not None:
        waiting = session.scalars(select(ReviewItem).where(
            ReviewItem.complaint_id == complaint_id, ReviewItem.status != "done")).first()
        if waiting is not None:
            return waiting
    received = now if received_at is None else aware_utc(received_at, "received_at")
    if due_at is None:
        duty = suggestion.get("duty")
        limit = duty.get("time_limit") if isinstance(duty, Mapping) else None
        due_at = due_date(received, limit, default_sla)
    item = ReviewItem(complaint_id=complaint_id, routing_log_id=routing_log_id, text=text,
                      channel=channel, category=suggested_label(suggestion, "category"),
                      subcategory=suggested_label(suggestion, "subcategory"),
                      department=suggested_label(suggestion, "department"),
                      suggestion=suggestion,
                      model_version=model_version or suggestion.get("model_version"),
                      reason=reason, min_confidence=_min_confidence(suggestion),
                      received_at=received, due_at=aware_utc(due_at, "due_at"), created_at=now,
                      status="open")
    session.add(item)
    session.flush()
    record_audit(session, actor, "review_item.enqueued", item, None, item_state(item), now)
    return item


def is_free(now: datetime) -> ColumnElement[bool]:
    """Claimable by anyone: open, or claimed but the claim expired."""
    return or_(ReviewItem.status == "open",
               and_(ReviewItem.status == "claimed", ReviewItem.claim_expires_at <= now))


def held_by(officer: str) -> ColumnElement[bool]:
    return and_(ReviewItem.status == "claimed", ReviewItem.claimed_by == officer)


def _queue_filter(f: QueueFilter, now: datetime,
                  status: str | None = None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    status = status or f.status
    if status == "open":
        where.append(is_free(now))
    elif status == "claimed":
        where.append(and_(ReviewItem.status == "claimed", ReviewItem.claim_expires_at > now))
    elif status == "done":
        where.append(ReviewItem.status == "done")
    for column, value in ((ReviewItem.department, f.department),
                          (ReviewItem.category, f.category), (ReviewItem.channel, f.channel)):
        if value is not None:
            where.append(column == value)
    if f.min_age is not None:
        where.append(ReviewItem.received_at <= now - f.min_age)
    if f.max_age is not None:
        where.append(ReviewItem.received_at >= now - f.max_age)
    return where


def lock_item(session: Session, item_id: int, *, skip_locked: bool) -> ReviewItem:
    """Load an item with its row locked (PostgreSQL; SQLite's writer lock already covers it)."""
    item = session.scalars(select(ReviewItem).where(ReviewItem.id == item_id)
                           .with_for_update(skip_locked=skip_locked)
                           .execution_options(populate_existing=True)).first()
    if item is None:
        raise NotFound(f"review item {item_id} does not exist")
    return item


def take_item(session: Session, item: ReviewItem, officer: str, ttl: timedelta, now: datetime, *,
          audit: bool = True) -> ReviewItem:
    """The claim itself: a conditional UPDATE that only a free item or the holder's own passes."""
    before = item_state(item)
    result = session.execute(
        update(ReviewItem).where(ReviewItem.id == item.id, or_(is_free(now), held_by(officer)))
        .values(status="claimed", claimed_by=officer, claimed_at=now, claim_expires_at=now + ttl)
        .execution_options(synchronize_session=False))
    if rowcount(result) != 1:
        raise not_yours(item, officer, now)
    session.refresh(item)
    if audit or before["claimed_by"] != officer:
        record_audit(session, officer, "review_item.claimed", item, before, item_state(item), now)
    return item


def not_yours(item: ReviewItem, officer: str, now: datetime, what: str = "work on") -> Exception:
    session = Session.object_session(item)
    if session is not None:
        session.refresh(item)
    if item.status == "done":
        return Conflict(f"review item {item.id} is already done; post feedback to change the "
                        "final routing of its complaint")
    if item.status == "claimed" and item.claimed_by != officer:
        until = item.claim_expires_at.isoformat() if item.claim_expires_at else "?"
        return Conflict(f"review item {item.id} is claimed by {item.claimed_by} until {until}; "
                        "take another item")
    return Conflict(f"review item {item.id} is not claimed by {officer}; claim it before you "
                    f"{what} it")


def check_officer(officer: str) -> None:
    if not officer:
        raise InvalidInput("an officer name is required", field="officer")
