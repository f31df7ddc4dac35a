"""Officers' answers: drafts, submissions, discards, feedback on any complaint, and the labels
retraining learns from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, func, or_, select, update
from sqlalchemy.orm import Session

from model.duty import (
    check_labels,
    did_you_mean,
    resolve_subcategory,
)
from model.errors import InvalidInput, NotFound
from model.taxonomy import HEADS, Taxonomy
from serving.store.audit import (
    aware_utc,
    current_time,
    item_state,
    record_audit,
    response_state,
    rowcount,
)
from serving.store.db import write_transaction
from serving.store.queue import (
    CLAIM_TTL,
    check_officer,
    held_by,
    is_free,
    lock_item,
    not_yours,
    suggested_label,
    take_item,
)
from serving.store.tables import (
    RESPONSE_KINDS,
    Complaint,
    ReviewItem,
    RoutingLog,
)
from serving.store.tables import Response as ResponseRow

REVIEW_SOURCE = "review"  # `responses.source` of officers' answers to review items


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


def save_draft(session: Session, item_id: int, officer: str, answer: Answer, *,
               ttl: timedelta = CLAIM_TTL, now: datetime | None = None) -> ResponseRow:
    """Save (or overwrite) `officer`'s draft answer; drafting claims the item. Drafts are not
    checked against the duty list and never become labels."""
    now = current_time(now)
    check_officer(officer)
    _check_kind(answer.kind)
    with write_transaction(session):
        item = take_item(session, lock_item(session, item_id, skip_locked=False), officer, ttl, now,
                     audit=False)
        draft = _draft_of(session, item.id, officer)
        before = None if draft is None else response_state(draft)
        if draft is None:
            draft = _new_response(item, officer, REVIEW_SOURCE, now)
            session.add(draft)
        _fill(draft, kind=answer.kind, category=answer.category,
              subcategory=answer.subcategory, department=answer.department,
              parts=[dict(p) for p in answer.parts] if answer.parts is not None else None,
              note=answer.note)
        draft.status, draft.updated_at = "draft", now
        session.flush()
        record_audit(session, officer, "response.draft_saved", draft, before, response_state(draft),
               now)
        return draft


def submit_response(session: Session, item_id: int, officer: str, answer: Answer,
                    taxonomy: Taxonomy, *, now: datetime | None = None) -> ResponseRow:
    """Submit `officer`'s answer to an item they hold (or a free one): the item is done and the
    answer becomes a label. Values are checked against `taxonomy` (InvalidInput names the field)."""
    now = current_time(now)
    check_officer(officer)
    with write_transaction(session):
        item = lock_item(session, item_id, skip_locked=False)
        resolved = resolve_answer(answer, taxonomy, item.suggestion)
        before_item = item_state(item)
        done = session.execute(
            update(ReviewItem)
            .where(ReviewItem.id == item.id, or_(is_free(now), held_by(officer)))
            .values(status="done", done_at=now, claimed_by=officer,
                    claimed_at=func.coalesce(ReviewItem.claimed_at, now), claim_expires_at=None)
            .execution_options(synchronize_session=False))
        if rowcount(done) != 1:
            raise not_yours(item, officer, now)
        session.refresh(item)
        response = _draft_of(session, item.id, officer)
        before = None if response is None else response_state(response)
        if response is None:
            response = _new_response(item, officer, REVIEW_SOURCE, now)
            session.add(response)
        _fill(response, note=answer.note, **resolved)
        response.status, response.updated_at, response.submitted_at = "submitted", now, now
        session.flush()
        record_audit(session, officer, "review_item.done", item, before_item, item_state(item), now)
        record_audit(session, officer, "response.submitted", response, before,
               response_state(response), now)
        return response


def discard(session: Session, item_id: int, officer: str, *,
            now: datetime | None = None) -> ReviewItem:
    """`officer` gives an item back: their draft (if any) is discarded, the item is open again."""
    now = current_time(now)
    check_officer(officer)
    with write_transaction(session):
        item = lock_item(session, item_id, skip_locked=False)
        before_item = item_state(item)
        released = session.execute(
            update(ReviewItem).where(ReviewItem.id == item.id, held_by(officer))
            .values(status="open", claimed_by=None, claimed_at=None, claim_expires_at=None)
            .execution_options(synchronize_session=False))
        if rowcount(released) != 1:
            raise not_yours(item, officer, now, what="discard")
        session.refresh(item)
        record_audit(session, officer, "review_item.released", item, before_item, item_state(item),
               now)
        draft = _draft_of(session, item.id, officer)
        if draft is not None:
            before = response_state(draft)
            draft.status, draft.updated_at = "discarded", now
            session.flush()
            record_audit(session, officer, "response.discarded", draft, before,
                   response_state(draft), now)
        return item


def feedback(session: Session, complaint_id: str, answer: Answer, taxonomy: Taxonomy, *,
             source: str, actor: str, text: str | None = None,
             now: datetime | None = None) -> ResponseRow:
    """Record the final routing of any complaint, posted by an intake system (`source`).

    It is a submitted answer: the latest one for the complaint wins in `submitted_labels`. Review
    items of the complaint that nobody holds are closed. `text` is needed only for complaints the
    store has never seen.
    """
    now = current_time(now)
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
        record_audit(session, actor, "response.feedback", response, None, response_state(response),
               now)
        waiting = session.scalars(
            select(ReviewItem).where(ReviewItem.complaint_id == complaint_id, is_free(now))
            .with_for_update(skip_locked=True)).all()
        for item in waiting:
            before = item_state(item)
            item.status, item.done_at = "done", now
            item.claimed_by = item.claimed_at = item.claim_expires_at = None
            session.flush()
            record_audit(session, actor, "review_item.closed_by_feedback", item, before,
                   item_state(item), now)
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
        stmt = stmt.where(ResponseRow.submitted_at >= aware_utc(since, "since"))
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


def resolve_answer(answer: Answer, taxonomy: Taxonomy,
                   suggestion: Mapping[str, Any] | None) -> dict[str, Any]:
    """The labels an answer stands for, checked against the duty list (InvalidInput names the
    field): kind, category, subcategory (a key), department, parts."""
    _check_kind(answer.kind)
    suggested = {h: suggested_label(suggestion, h) for h in HEADS}
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
