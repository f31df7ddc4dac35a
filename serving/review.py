"""The officers' review queue: the store's rows turned into the API's schemas.

    page = await run(store.sessions, queue, QueueFilter(department="公安局"), limit=50, offset=0)
    item = await run(store.sessions, claim_next, officer_id(principal), QueueFilter())

Each function takes a session first, for `serving.storage.run` (a worker thread, a session of its
own); the store does the checking, the claiming and the audit log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import ValidationError
from sqlalchemy.orm import Session

from model.duty import duration
from model.taxonomy import Taxonomy
from serving import replies
from serving.auth import Principal
from serving.schemas import (
    AuditEntryPublic,
    DutyEntryPublic,
    FeedbackIn,
    HeadPublic,
    ResponsePublic,
    ReviewAnswerIn,
    ReviewItemPublic,
    ReviewItemSummaryPublic,
    ReviewQueuePublic,
    SimilarCasePublic,
    SuggestionPublic,
)
from serving.store import service
from serving.store.service import Answer, QueueFilter
from serving.store.tables import Response as ResponseRow
from serving.store.tables import ReviewItem

log = logging.getLogger("huying.serving")

SIMILAR_LIMIT = 5


def officer_id(principal: Principal) -> str:
    """Who a key is in the store (claims, responses, audit log): its name and its public id."""
    return f"{principal.name[:100]} ({principal.key_id})"


# --- the queue -----------------------------------------------------------------------------------

def parse_age(value: str | None, name: str) -> timedelta | None:
    """'30min', '2h', '3d' → a timedelta; None stays None."""
    if value is None or not value.strip():
        return None
    return duration(value, name)


def queue_filter(*, department: str | None = None, category: str | None = None,
                 channel: str | None = None, min_age: str | None = None,
                 max_age: str | None = None) -> QueueFilter:
    """The store's filter of open items from the query string; blank values mean "any"."""
    return QueueFilter(department=department or None, category=category or None,
                       channel=channel or None, min_age=parse_age(min_age, "min_age"),
                       max_age=parse_age(max_age, "max_age"))


def queue(session: Session, filters: QueueFilter, *, limit: int,
          offset: int) -> ReviewQueuePublic:
    page = service.list_queue(session, filters, limit=limit, offset=offset)
    return ReviewQueuePublic(total=page.total, limit=page.limit, offset=page.offset,
                             items=[summary(i) for i in page.items])


def mine(session: Session, officer: str) -> list[ReviewItemSummaryPublic]:
    """The items `officer` holds now (claims not expired), most urgent first."""
    page = service.list_queue(session, QueueFilter(status="claimed"), limit=service.MAX_PAGE)
    return [summary(i) for i in page.items if i.claimed_by == officer]


def claim_next(session: Session, officer: str,
               filters: QueueFilter) -> ReviewItemSummaryPublic | None:
    item = service.claim_next(session, officer, filters)
    return None if item is None else summary(item)


def claim(session: Session, item_id: int, officer: str) -> ReviewItemSummaryPublic:
    return summary(service.claim(session, item_id, officer))


def release(session: Session, item_id: int, officer: str) -> ReviewItemSummaryPublic:
    return summary(service.discard(session, item_id, officer))


# --- one item ------------------------------------------------------------------------------------

class SimilarCaseFinder(Protocol):
    """The optional hook on `Services.duplicates`: registered complaints like a text."""

    def similar(self, text: str, *, limit: int) -> Sequence[Any]: ...


def detail(session: Session, item_id: int, officer: str, taxonomy: Taxonomy,
           similar: SimilarCaseFinder | None = None) -> ReviewItemPublic:
    """Everything an officer needs about one item (viewing it claims nothing)."""
    item = service.get_review_item(session, item_id)
    responses = service.responses_for(session, item.id)
    trail = service.audit_trail(session, "review_item", item.id)
    for r in responses:
        trail += service.audit_trail(session, "response", r.id)
    trail.sort(key=lambda e: e.id)
    draft = next((r for r in reversed(responses)
                  if r.status == "draft" and r.officer == officer), None)
    return ReviewItemPublic(
        **summary(item).model_dump(), suggestion=suggestion_of(item.suggestion),
        duty=duty_entry(taxonomy, item),
        similar=similar_cases(similar, item.text, item.complaint_id),
        registered=(item.complaint_id is not None
                    and replies.is_registered(session, item.complaint_id)),
        replies=(replies.for_registered(session, item.complaint_id, item.text)
                 if item.complaint_id else []),
        draft=None if draft is None else response_public(draft),
        responses=[response_public(r) for r in responses],
        audit=[AuditEntryPublic.model_validate(e, from_attributes=True) for e in trail])


def suggestion_of(raw: Mapping[str, Any] | None) -> SuggestionPublic:
    raw = raw or {}
    heads: dict[str, HeadPublic] = {}
    for head in ("category", "subcategory", "department"):
        try:
            if isinstance(raw.get(head), Mapping):
                heads[head] = HeadPublic.model_validate(raw[head])
        except ValidationError:  # a suggestion from elsewhere (e.g. the label audit) may be partial
            continue
    decision, version = raw.get("decision"), raw.get("model_version")
    return SuggestionPublic(**heads, decision=decision if isinstance(decision, str) else None,
                            model_version=version if isinstance(version, str) else None)


def duty_entry(taxonomy: Taxonomy, item: ReviewItem) -> DutyEntryPublic | None:
    """The served duty list's entry for the suggested subcategory, else the one the model saw."""
    if item.subcategory:
        try:
            e = taxonomy.entry(item.subcategory)
            return DutyEntryPublic(category=e.category, subcategory=e.subcategory,
                                   department=e.department, time_limit=e.time_limit,
                                   legal_basis=e.legal_basis, description=e.description)
        except KeyError:
            pass
    snapshot = (item.suggestion or {}).get("duty")
    if isinstance(snapshot, Mapping):
        try:
            return DutyEntryPublic.model_validate(
                {k: v for k, v in snapshot.items() if v is not None})
        except ValidationError:
            return None
    return None


def similar_cases(finder: SimilarCaseFinder | None, text: str,
                  exclude: str | None = None) -> list[SimilarCasePublic]:
    """Registered complaints like `text` other than `exclude` (the item's own complaint), if the
    duplicates service is there; an optional extension that fails costs the officer only this
    list (it is logged)."""
    if finder is None or not hasattr(finder, "similar"):
        return []
    try:
        found = finder.similar(text, limit=SIMILAR_LIMIT + 1)
        cases = [SimilarCasePublic.model_validate(c, from_attributes=not isinstance(c, Mapping))
                 for c in found]
        return [c for c in cases if c.id != exclude][:SIMILAR_LIMIT]
    except Exception:
        log.exception("similar-case search failed; the review item shows none")
        return []


# --- answers -------------------------------------------------------------------------------------

def answer_of(body: ReviewAnswerIn) -> Answer:
    parts = None if body.parts is None else [
        p.model_dump(exclude_none=True) for p in body.parts]
    return Answer(kind=body.kind, category=body.category, subcategory=body.subcategory,
                  department=body.department, parts=parts, note=body.note)


def save_draft(session: Session, item_id: int, officer: str,
               body: ReviewAnswerIn) -> ResponsePublic:
    return response_public(service.save_draft(session, item_id, officer, answer_of(body)))


def submit(session: Session, item_id: int, officer: str, body: ReviewAnswerIn,
           taxonomy: Taxonomy) -> ResponsePublic:
    return response_public(service.submit_response(session, item_id, officer, answer_of(body),
                                                   taxonomy))


def feedback(session: Session, body: FeedbackIn, taxonomy: Taxonomy, *, source: str,
             actor: str) -> ResponsePublic:
    return response_public(service.feedback(session, body.complaint_id, answer_of(body),
                                            taxonomy, source=source, actor=actor,
                                            text=body.text))


# --- rows → schemas ------------------------------------------------------------------------------

def summary(item: ReviewItem) -> ReviewItemSummaryPublic:
    # an expired claim is open again: anyone may take it
    held = item.status == "claimed" and item.claim_expires_at is not None \
        and item.claim_expires_at > datetime.now(UTC)
    status: Literal["open", "claimed", "done"] = (
        "done" if item.status == "done" else "claimed" if held else "open")
    return ReviewItemSummaryPublic(
        id=item.id, complaint_id=item.complaint_id, text=item.text, channel=item.channel,
        reason=item.reason, status=status,
        received_at=item.received_at, due_at=item.due_at, category=item.category,
        subcategory=item.subcategory, department=item.department,
        confidence=round(item.min_confidence, 4), model_version=item.model_version,
        claimed_by=item.claimed_by if held else None,
        claim_expires_at=item.claim_expires_at if held else None)


def response_public(row: ResponseRow) -> ResponsePublic:
    return ResponsePublic.model_validate(row, from_attributes=True)
