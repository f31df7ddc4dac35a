"""The store's service layer: every read and write the API makes, with no HTTP in sight.

Each write is one transaction (`write_transaction`): its rows and its audit-log entries are
committed together, or, if anything raises, nothing is. Functions take a `Session` and return
table rows (readable after commit) or small frozen dataclasses.

    log_routing(s, request_id, [RoutedText(text, routing.to_dict(), complaint_id="A1")], actor=key)
    item = claim_next(s, "officer-7", QueueFilter(department="市场监督管理局"))
    submit_response(s, item.id, "officer-7", Answer("correct", department="市交通运输局"), taxonomy)
    submitted_labels(s)  # what retraining learns from: the latest submitted answer per complaint

Claims are exclusive on every backend: a claim is a conditional UPDATE (`… WHERE status = 'open'
OR the claim expired`) whose row count says whether it won, run on a row the transaction has
locked first — SQLite: BEGIN IMMEDIATE serialises writers; PostgreSQL: SELECT … FOR UPDATE, and
SKIP LOCKED when taking the next item, so officers never wait on each other's rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, String, and_, cast, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from model.duty import (
    DEFAULT_TIME_LIMIT,
    check_labels,
    did_you_mean,
    due_date,
    resolve_subcategory,
)
from model.errors import Conflict, InvalidInput, NotFound
from model.normalize import text_hash
from model.taxonomy import HEADS, Taxonomy
from serving.store.db import write_transaction
from serving.store.tables import (
    RESPONSE_KINDS,
    REVIEW_REASONS,
    AuditLog,
    Complaint,
    ReviewItem,
    RoutingLog,
)
from serving.store.tables import Response as ResponseRow

if TYPE_CHECKING:
    from model.router import Routing

# An officer keeps a claimed item this long without touching it; then anyone may take it.
CLAIM_TTL = timedelta(minutes=30)
REVIEW_SOURCE = "review"  # `responses.source` of officers' answers to review items
MAX_PAGE = 500
_CLAIM_ATTEMPTS = 10


# --- inputs and results -------------------------------------------------------------------------

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
class NewComplaint:
    """A complaint to register; `id` is the client's own."""

    id: str
    text: str
    channel: str | None = None
    location: str | None = None
    received_at: datetime | None = None


@dataclass(frozen=True)
class Answer:
    """What a person says about a complaint.

    kind: "accept" (the model's suggestion as it is), "correct" (any of category, subcategory,
    department; the others are kept from the suggestion), "not_a_complaint", or "split" (`parts`:
    one mapping per complaint found in the text, with its own labels and optionally its `text`).
    `subcategory` is the duty-list key `category/subcategory`; a bare subcategory name is accepted
    together with its `category`.
    """

    kind: str
    category: str | None = None
    subcategory: str | None = None
    department: str | None = None
    parts: Sequence[Mapping[str, Any]] | None = None
    note: str | None = None


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


@dataclass(frozen=True)
class Label:
    """A training label: one submitted answer, the latest for its complaint."""

    response_id: int
    complaint_id: str | None
    text: str
    kind: str
    category: str | None
    subcategory: str | None
    department: str | None
    parts: list[dict[str, Any]] | None
    officer: str | None
    source: str
    submitted_at: datetime
    model_version: str | None  # the model whose suggestion the person saw
    suggestion: dict[str, Any] | None = field(repr=False)


# --- routing log and review queue ---------------------------------------------------------------

def log_routing(session: Session, request_id: str, routed: Sequence[RoutedText], *, actor: str,
                enqueue: bool = True, now: datetime | None = None) -> list[RoutingLog]:
    """Log the routings of one request; with `enqueue`, those decided `review` join the queue."""
    now = _now(now)
    with write_transaction(session):
        return _log_routing(session, request_id, routed, actor=actor, enqueue=enqueue, now=now)


def _log_routing(session: Session, request_id: str, routed: Sequence[RoutedText], *, actor: str,
                 enqueue: bool, now: datetime) -> list[RoutingLog]:
    rows = []
    for r in routed:
        routing = _routing_dict(r.routing)
        decision, version = routing.get("decision"), routing.get("model_version")
        if decision not in ("auto", "review"):
            raise InvalidInput(f"routing decision {decision!r} is neither auto nor review",
                               field="decision")
        if not version:
            raise InvalidInput("the routing has no model_version; log Routing.to_dict()",
                               field="model_version")
        received = None if r.received_at is None else _aware(r.received_at, "received_at")
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
    now = _now(now)
    if reason not in REVIEW_REASONS:
        raise InvalidInput(f"review reason {reason!r} is not one of {', '.join(REVIEW_REASONS)}",
                           field="reason")
    with write_transaction(session):
        return _enqueue(session, text=text, suggestion=_routing_dict(suggestion), reason=reason,
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
    now = _now(now)
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
    now = _now(now)
    _check_officer(officer)
    with write_transaction(session):
        item = _lock(session, item_id, skip_locked=False)
        return _take(session, item, officer, ttl, now)


def claim_next(session: Session, officer: str, filters: QueueFilter | None = None, *,
               ttl: timedelta = CLAIM_TTL, now: datetime | None = None) -> ReviewItem | None:
    """Claim the most urgent free item matching `filters` (status is ignored); None if none is."""
    now = _now(now)
    _check_officer(officer)
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
                return _take(session, candidate, officer, ttl, now)
            except Conflict:  # taken between our read and our write: the lock prevents it, but
                continue      # if it happened, the conditional UPDATE caught it; try the next one
        raise Conflict(f"could not claim an item in {_CLAIM_ATTEMPTS} attempts; try again")


def save_draft(session: Session, item_id: int, officer: str, answer: Answer, *,
               ttl: timedelta = CLAIM_TTL, now: datetime | None = None) -> ResponseRow:
    """Save (or overwrite) `officer`'s draft answer; drafting claims the item. Drafts are not
    checked against the duty list and never become labels."""
    now = _now(now)
    _check_officer(officer)
    _check_kind(answer.kind)
    with write_transaction(session):
        item = _take(session, _lock(session, item_id, skip_locked=False), officer, ttl, now,
                     audit=False)
        draft = _draft_of(session, item.id, officer)
        before = None if draft is None else _response_state(draft)
        if draft is None:
            draft = _new_response(item, officer, REVIEW_SOURCE, now)
            session.add(draft)
        _fill(draft, kind=answer.kind, category=answer.category,
              subcategory=answer.subcategory, department=answer.department,
              parts=[dict(p) for p in answer.parts] if answer.parts is not None else None,
              note=answer.note)
        draft.status, draft.updated_at = "draft", now
        session.flush()
        _audit(session, officer, "response.draft_saved", draft, before, _response_state(draft),
               now)
        return draft


def submit_response(session: Session, item_id: int, officer: str, answer: Answer,
                    taxonomy: Taxonomy, *, now: datetime | None = None) -> ResponseRow:
    """Submit `officer`'s answer to an item they hold (or a free one): the item is done and the
    answer becomes a label. Values are checked against `taxonomy` (InvalidInput names the field)."""
    now = _now(now)
    _check_officer(officer)
    with write_transaction(session):
        item = _lock(session, item_id, skip_locked=False)
        resolved = resolve_answer(answer, taxonomy, item.suggestion)
        before_item = _item_state(item)
        done = session.execute(
            update(ReviewItem)
            .where(ReviewItem.id == item.id, or_(_free(now), _held_by(officer)))
            .values(status="done", done_at=now, claimed_by=officer,
                    claimed_at=func.coalesce(ReviewItem.claimed_at, now), claim_expires_at=None)
            .execution_options(synchronize_session=False))
        if _rowcount(done) != 1:
            raise _not_yours(item, officer, now)
        session.refresh(item)
        response = _draft_of(session, item.id, officer)
        before = None if response is None else _response_state(response)
        if response is None:
            response = _new_response(item, officer, REVIEW_SOURCE, now)
            session.add(response)
        _fill(response, note=answer.note, **resolved)
        response.status, response.updated_at, response.submitted_at = "submitted", now, now
        session.flush()
        _audit(session, officer, "review_item.done", item, before_item, _item_state(item), now)
        _audit(session, officer, "response.submitted", response, before,
               _response_state(response), now)
        return response


def discard(session: Session, item_id: int, officer: str, *,
            now: datetime | None = None) -> ReviewItem:
    """`officer` gives an item back: their draft (if any) is discarded, the item is open again."""
    now = _now(now)
    _check_officer(officer)
    with write_transaction(session):
        item = _lock(session, item_id, skip_locked=False)
        before_item = _item_state(item)
        released = session.execute(
            update(ReviewItem).where(ReviewItem.id == item.id, _held_by(officer))
            .values(status="open", claimed_by=None, claimed_at=None, claim_expires_at=None)
            .execution_options(synchronize_session=False))
        if _rowcount(released) != 1:
            raise _not_yours(item, officer, now, what="discard")
        session.refresh(item)
        _audit(session, officer, "review_item.released", item, before_item, _item_state(item),
               now)
        draft = _draft_of(session, item.id, officer)
        if draft is not None:
            before = _response_state(draft)
            draft.status, draft.updated_at = "discarded", now
            session.flush()
            _audit(session, officer, "response.discarded", draft, before,
                   _response_state(draft), now)
        return item


def feedback(session: Session, complaint_id: str, answer: Answer, taxonomy: Taxonomy, *,
             source: str, actor: str, text: str | None = None,
             now: datetime | None = None) -> ResponseRow:
    """Record the final routing of any complaint, posted by an intake system (`source`).

    It is a submitted answer: the latest one for the complaint wins in `submitted_labels`. Review
    items of the complaint that nobody holds are closed. `text` is needed only for complaints the
    store has never seen.
    """
    now = _now(now)
    if not source:
        raise InvalidInput("feedback needs its source: the intake system's name", field="source")
    with write_transaction(session):
        logged = session.scalars(select(RoutingLog).where(RoutingLog.complaint_id == complaint_id)
                                 .order_by(RoutingLog.created_at.desc(), RoutingLog.id.desc())
                                 .limit(1)).first()
        queued = session.scalars(select(ReviewItem).where(ReviewItem.complaint_id == complaint_id)
                                 .order_by(ReviewItem.id.desc()).limit(1)).first()
        if text is None:
            complaint = session.get(Complaint, complaint_id)
            known = complaint or logged or queued
            if known is None:
                raise NotFound(f"complaint {complaint_id!r} was never routed, queued or "
                               "registered here; send its text with the feedback")
            text = known.text
        # what the model had said: its latest routing of the complaint, else the review item's
        suggestion, model_version = (
            (logged.suggestions, logged.model_version) if logged is not None
            else (queued.suggestion, queued.model_version) if queued is not None
            else (None, None))
        resolved = resolve_answer(answer, taxonomy, suggestion)
        response = ResponseRow(review_item_id=None, complaint_id=complaint_id, text=text,
                               status="submitted", officer=None, source=source, created_at=now,
                               updated_at=now, submitted_at=now, suggestion=suggestion,
                               model_version=model_version)
        _fill(response, note=answer.note, **resolved)
        session.add(response)
        session.flush()
        _audit(session, actor, "response.feedback", response, None, _response_state(response),
               now)
        waiting = session.scalars(
            select(ReviewItem).where(ReviewItem.complaint_id == complaint_id, _free(now))
            .with_for_update(skip_locked=True)).all()
        for item in waiting:
            before = _item_state(item)
            item.status, item.done_at = "done", now
            item.claimed_by = item.claimed_at = item.claim_expires_at = None
            session.flush()
            _audit(session, actor, "review_item.closed_by_feedback", item, before,
                   _item_state(item), now)
        return response


def submitted_labels(session: Session, since: datetime | None = None) -> list[Label]:
    """The labels retraining uses: submitted answers only, the latest per complaint (answers
    without a complaint id each stand alone), optionally only those submitted at or after `since`.
    """
    key = func.coalesce(ResponseRow.complaint_id, "#" + cast(ResponseRow.id, String))
    rank = func.row_number().over(partition_by=key, order_by=(ResponseRow.submitted_at.desc(),
                                                              ResponseRow.id.desc()))
    latest = (select(ResponseRow.id, rank.label("rank"))
              .where(ResponseRow.status == "submitted").subquery())
    stmt = (select(ResponseRow).join(latest, latest.c.id == ResponseRow.id)
            .where(latest.c.rank == 1).order_by(ResponseRow.submitted_at, ResponseRow.id))
    if since is not None:
        stmt = stmt.where(ResponseRow.submitted_at >= _aware(since, "since"))
    rows = session.scalars(stmt).all()
    return [Label(response_id=r.id, complaint_id=r.complaint_id, text=r.text, kind=r.kind,
                  category=r.category, subcategory=r.subcategory, department=r.department,
                  parts=r.parts, officer=r.officer, source=r.source,
                  submitted_at=r.submitted_at or r.updated_at, model_version=r.model_version,
                  suggestion=r.suggestion) for r in rows]


def responses_for(session: Session, item_id: int) -> list[ResponseRow]:
    """Every answer given to one review item (drafts, submitted, discarded), oldest first."""
    return list(session.scalars(select(ResponseRow).where(ResponseRow.review_item_id == item_id)
                                .order_by(ResponseRow.id)))


def audit_trail(session: Session, object_type: str, object_id: str | int) -> list[AuditLog]:
    """The audit-log entries of one object, oldest first."""
    return list(session.scalars(select(AuditLog).where(AuditLog.object_type == object_type,
                                                       AuditLog.object_id == str(object_id))
                                .order_by(AuditLog.id)))


# --- registered complaints ----------------------------------------------------------------------

def register_complaints(session: Session, complaints: Sequence[NewComplaint], *, actor: str,
                        model_version: str | None = None,
                        now: datetime | None = None) -> list[Complaint]:
    """Register complaints (all or none). Conflict if an id is already registered; a removed id
    may be registered again."""
    now = _now(now)
    _check_new(complaints)
    with write_transaction(session):
        return [_register_one(session, c, actor=actor, model_version=model_version, now=now)
                for c in complaints]


@dataclass(frozen=True)
class Registration:
    registered: list[Complaint]
    taken: list[str]  # ids already registered, also by a request committed meanwhile


def register_routed(session: Session, request_id: str,
                    complaints: Sequence[tuple[NewComplaint, RoutedText]], *, actor: str,
                    model_version: str | None = None,
                    now: datetime | None = None) -> Registration:
    """Register routed complaints together with their routing log and, for those decided
    `review`, their review items: one transaction, all of it or nothing. An id that is already
    registered — also by a concurrent request — is skipped and listed in `taken`, and the
    others are registered all the same."""
    now = _now(now)
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
        _log_routing(session, request_id, [r for _, r in registered], actor=actor, enqueue=True,
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
            _aware(c.received_at, "received_at")


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
                  model_version=model_version, removed=False, removed_at=None)
    before = None if row is None else _complaint_state(row)
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
    _audit(session, actor, "complaint.registered", row, before, _complaint_state(row), now)
    return row


def remove_complaint(session: Session, complaint_id: str, *, actor: str,
                     now: datetime | None = None) -> Complaint:
    """Mark a complaint removed (kept for history; the similarity index drops it). Idempotent."""
    now = _now(now)
    with write_transaction(session):
        row = session.scalars(select(Complaint).where(Complaint.id == complaint_id)
                              .with_for_update()).first()
        if row is None:
            raise NotFound(f"complaint {complaint_id!r} is not registered")
        if not row.removed:
            before = _complaint_state(row)
            row.removed, row.removed_at = True, now
            session.flush()
            _audit(session, actor, "complaint.removed", row, before, _complaint_state(row), now)
        return row


def get_complaint(session: Session, complaint_id: str, *,
                  include_removed: bool = False) -> Complaint:
    row = session.get(Complaint, complaint_id)
    if row is None or (row.removed and not include_removed):
        raise NotFound(f"complaint {complaint_id!r} is not registered"
                       + (" (it was removed)" if row is not None else ""))
    return row


def registered_complaints(session: Session) -> list[Complaint]:
    """All complaints not removed, oldest first: what the similarity index is rebuilt from."""
    return list(session.scalars(select(Complaint).where(Complaint.removed.is_(False))
                                .order_by(Complaint.registered_at, Complaint.id)))


# --- answers ------------------------------------------------------------------------------------

def resolve_answer(answer: Answer, taxonomy: Taxonomy,
                   suggestion: Mapping[str, Any] | None) -> dict[str, Any]:
    """The labels an answer stands for, checked against the duty list (InvalidInput names the
    field): kind, category, subcategory (a key), department, parts."""
    _check_kind(answer.kind)
    suggested = {h: _suggested_label(suggestion, h) for h in HEADS}
    given = {"category": answer.category, "subcategory": answer.subcategory,
             "department": answer.department}
    if answer.kind != "split" and answer.parts:
        raise InvalidInput(f"parts are only for kind 'split', not {answer.kind!r}", field="parts")
    if answer.kind == "not_a_complaint":
        extra = [h for h, v in given.items() if v]
        if extra:
            raise InvalidInput(f"kind 'not_a_complaint' takes no labels, got {extra[0]}",
                               field=extra[0])
        return {"kind": answer.kind, "category": None, "subcategory": None, "department": None,
                "parts": None}
    if answer.kind == "split":
        if not answer.parts or len(answer.parts) < 2:
            raise InvalidInput("kind 'split' needs at least two parts, one per complaint in the "
                               "text", field="parts")
        if any(given.values()):
            raise InvalidInput("kind 'split' takes its labels per part, not for the whole text",
                               field=next(h for h, v in given.items() if v))
        parts = []
        for i, part in enumerate(answer.parts):
            where = f"parts[{i}]."
            unknown = set(part) - {"text", *HEADS}
            if unknown:
                raise InvalidInput(f"part {i} has unknown keys {sorted(unknown)}; a part has "
                                   "text, category, subcategory, department",
                                   field=where + sorted(unknown)[0])
            labels = check_labels(taxonomy, {h: part.get(h) for h in HEADS}, where)
            if not any(labels.values()):
                raise InvalidInput(f"part {i} has no label: give its category, subcategory or "
                                   "department", field=where + "category")
            text = part.get("text")
            if text is not None and not isinstance(text, str):
                raise InvalidInput(f"part {i}: text must be a string", field=where + "text")
            parts.append({"text": text, **labels})
        return {"kind": "split", "category": None, "subcategory": None, "department": None,
                "parts": parts}
    if answer.kind == "accept":
        if not any(suggested.values()):
            raise InvalidInput("there is no model suggestion to accept here; send kind 'correct' "
                               "with the routing", field="kind")
        for head, value in given.items():
            if head == "subcategory" and value:
                value = resolve_subcategory(taxonomy, value, given["category"] or suggested["category"])
            if value and value != suggested[head]:
                raise InvalidInput(f"kind 'accept' keeps the model's {head} "
                                   f"{suggested[head]!r}; to change it send kind 'correct'",
                                   field=head)
        return {"kind": "accept", **check_labels(taxonomy, suggested, ""), "parts": None}
    # correct: given labels replace the suggested ones; a suggested subcategory that no longer
    # fits the category is dropped rather than contradict it
    if not any(given.values()):
        raise InvalidInput("kind 'correct' needs at least one of category, subcategory, "
                           "department; to keep the suggestion send kind 'accept'",
                           field="category")
    labels = dict(suggested)
    labels.update({h: v for h, v in given.items() if v})
    if answer.subcategory and not answer.category:
        key = resolve_subcategory(taxonomy, answer.subcategory, labels["category"])
        if key in taxonomy.subcategories:
            labels["subcategory"], labels["category"] = key, taxonomy.parent(key)
    elif answer.category and not answer.subcategory and labels["subcategory"] \
            and taxonomy.parent(labels["subcategory"]) != answer.category:
        labels["subcategory"] = None
    return {"kind": "correct", **check_labels(taxonomy, labels, ""), "parts": None}


# --- internals ----------------------------------------------------------------------------------

_URGENCY = (ReviewItem.due_at.asc(), ReviewItem.min_confidence.asc(), ReviewItem.id.asc())


def _now(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else _aware(now, "now")


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{name} {value.isoformat()} has no time zone; give one, e.g. "
                           f"{value.replace(tzinfo=UTC).isoformat()}", field=name)
    return value.astimezone(UTC)


def _routing_dict(routing: Mapping[str, Any] | Routing) -> dict[str, Any]:
    if isinstance(routing, Mapping):
        return dict(routing)
    return routing.to_dict()


def _suggested_label(suggestion: Mapping[str, Any] | None, head: str) -> str | None:
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
    received = now if received_at is None else _aware(received_at, "received_at")
    if due_at is None:
        duty = suggestion.get("duty")
        limit = duty.get("time_limit") if isinstance(duty, Mapping) else None
        due_at = due_date(received, limit, default_sla)
    item = ReviewItem(complaint_id=complaint_id, routing_log_id=routing_log_id, text=text,
                      channel=channel, category=_suggested_label(suggestion, "category"),
                      subcategory=_suggested_label(suggestion, "subcategory"),
                      department=_suggested_label(suggestion, "department"),
                      suggestion=suggestion,
                      model_version=model_version or suggestion.get("model_version"),
                      reason=reason, min_confidence=_min_confidence(suggestion),
                      received_at=received, due_at=_aware(due_at, "due_at"), created_at=now,
                      status="open")
    session.add(item)
    session.flush()
    _audit(session, actor, "review_item.enqueued", item, None, _item_state(item), now)
    return item


def _free(now: datetime) -> ColumnElement[bool]:
    """Claimable by anyone: open, or claimed but the claim expired."""
    return or_(ReviewItem.status == "open",
               and_(ReviewItem.status == "claimed", ReviewItem.claim_expires_at <= now))


def _held_by(officer: str) -> ColumnElement[bool]:
    return and_(ReviewItem.status == "claimed", ReviewItem.claimed_by == officer)


def _queue_filter(f: QueueFilter, now: datetime,
                  status: str | None = None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    status = status or f.status
    if status == "open":
        where.append(_free(now))
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


def _lock(session: Session, item_id: int, *, skip_locked: bool) -> ReviewItem:
    """Load an item with its row locked (PostgreSQL; SQLite's writer lock already covers it)."""
    item = session.scalars(select(ReviewItem).where(ReviewItem.id == item_id)
                           .with_for_update(skip_locked=skip_locked)
                           .execution_options(populate_existing=True)).first()
    if item is None:
        raise NotFound(f"review item {item_id} does not exist")
    return item


def _take(session: Session, item: ReviewItem, officer: str, ttl: timedelta, now: datetime, *,
          audit: bool = True) -> ReviewItem:
    """The claim itself: a conditional UPDATE that only a free item or the holder's own passes."""
    before = _item_state(item)
    result = session.execute(
        update(ReviewItem).where(ReviewItem.id == item.id, or_(_free(now), _held_by(officer)))
        .values(status="claimed", claimed_by=officer, claimed_at=now, claim_expires_at=now + ttl)
        .execution_options(synchronize_session=False))
    if _rowcount(result) != 1:
        raise _not_yours(item, officer, now)
    session.refresh(item)
    if audit or before["claimed_by"] != officer:
        _audit(session, officer, "review_item.claimed", item, before, _item_state(item), now)
    return item


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


def _not_yours(item: ReviewItem, officer: str, now: datetime, what: str = "work on") -> Exception:
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


def _check_officer(officer: str) -> None:
    if not officer:
        raise InvalidInput("an officer name is required", field="officer")


def _check_kind(kind: str) -> None:
    if kind not in RESPONSE_KINDS:
        raise InvalidInput(f"kind {kind!r} is not one of {', '.join(RESPONSE_KINDS)}"
                           + did_you_mean(kind, RESPONSE_KINDS), field="kind")


def _draft_of(session: Session, item_id: int, officer: str) -> ResponseRow | None:
    return session.scalars(select(ResponseRow).where(
        ResponseRow.review_item_id == item_id, ResponseRow.officer == officer,
        ResponseRow.status == "draft").order_by(ResponseRow.id.desc())).first()


def _new_response(item: ReviewItem, officer: str, source: str, now: datetime) -> ResponseRow:
    return ResponseRow(review_item_id=item.id, complaint_id=item.complaint_id, text=item.text,
                       officer=officer, source=source, created_at=now, updated_at=now,
                       suggestion=item.suggestion, model_version=item.model_version,
                       status="draft", kind="accept")


def _fill(response: ResponseRow, **values: Any) -> None:
    for k, v in values.items():
        setattr(response, k, v)


# audit-log snapshots: the fields a person would ask about, JSON-ready

def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _item_state(item: ReviewItem) -> dict[str, Any]:
    return {k: _json(getattr(item, k)) for k in (
        "status", "claimed_by", "claimed_at", "claim_expires_at", "done_at", "complaint_id",
        "reason", "due_at", "min_confidence", "category", "subcategory", "department")}


def _response_state(r: ResponseRow) -> dict[str, Any]:
    return {k: _json(getattr(r, k)) for k in (
        "status", "kind", "category", "subcategory", "department", "parts", "note", "officer",
        "source", "review_item_id", "complaint_id", "submitted_at", "model_version")}


def _complaint_state(c: Complaint) -> dict[str, Any]:
    return {k: _json(getattr(c, k)) for k in (
        "text_hash", "channel", "location", "received_at", "registered_at", "model_version",
        "removed", "removed_at")}


_OBJECT_TYPES = {ReviewItem: "review_item", ResponseRow: "response", Complaint: "complaint"}


def _audit(session: Session, actor: str, action: str, obj: ReviewItem | ResponseRow | Complaint,
           before: dict[str, Any] | None, after: dict[str, Any] | None, now: datetime) -> None:
    session.add(AuditLog(at=now, actor=actor, action=action,
                         object_type=_OBJECT_TYPES[type(obj)], object_id=str(obj.id),
                         before=before, after=after))
