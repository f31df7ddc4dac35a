"""The store's side of the learning loop: labels out for retraining, audit suspects into the queue.

    with Session() as s:
        corrections = export_submitted(s, since=None)        # → training.retrain.retrain(...)
        enqueue_suspects(s, audit_result.to_dicts(), actor="cli:audit")

serving/ may import model/ but not training/ (and training/ never imports serving/), so both
functions speak plain dicts: the `huying` CLI passes them from one side to the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from model.errors import InvalidInput
from serving.store import service
from serving.store.tables import Complaint, ReviewItem, RoutingLog
from serving.store.tables import Response as ResponseRow

# Audit items are not urgent: due this long after they are queued, so they wait behind live
# complaints in a queue ordered by due time.
AUDIT_DUE_IN = timedelta(days=14)


def export_submitted(session: Session, since: datetime | None = None) -> list[dict[str, Any]]:
    """Submitted answers as plain dicts, the latest per complaint (drafts and discarded answers
    never count), oldest first; `since` keeps those submitted at or after it.

    Keys: response_id, complaint_id, text, kind, category, subcategory (key
    `category/subcategory`), department, parts, officer, source, submitted_at, received_at (when
    the complaint arrived, if the store knows), model_version (what the person had seen).
    """
    labels = service.submitted_labels(session, since)
    received = _received_times(session, sorted({lab.complaint_id for lab in labels
                                                if lab.complaint_id}))
    return [{"response_id": lab.response_id, "complaint_id": lab.complaint_id, "text": lab.text,
             "kind": lab.kind, "category": lab.category, "subcategory": lab.subcategory,
             "department": lab.department, "parts": lab.parts, "officer": lab.officer,
             "source": lab.source, "submitted_at": lab.submitted_at,
             "received_at": received.get(lab.complaint_id) if lab.complaint_id else None,
             "model_version": lab.model_version} for lab in labels]


def _received_times(session: Session, ids: Sequence[str]) -> dict[str, datetime]:
    """When each complaint arrived: as registered, else as routed, else as queued."""
    out: dict[str, datetime] = {}
    for start in range(0, len(ids), 500):  # bounded IN lists
        chunk = ids[start:start + 500]
        sources = ((ReviewItem.complaint_id, ReviewItem.received_at),
                   (RoutingLog.complaint_id, RoutingLog.received_at),
                   (Complaint.id, Complaint.received_at))
        for key, received in sources:  # later sources win
            rows = session.execute(select(key, received)
                                   .where(key.in_(chunk), received.is_not(None)))
            out.update({cid: at for cid, at in rows if cid is not None and at is not None})
    return out


def enqueue_suspects(session: Session, suspects: Sequence[Mapping[str, Any]], actor: str, *,
                     due_in: timedelta = AUDIT_DUE_IN, skip_answered: bool = True,
                     now: datetime | None = None) -> list[ReviewItem]:
    """Put label-audit suspects (`training.audit.AuditResult.to_dicts()`: complaint_id, text,
    suggestion) in the review queue with reason `audit`; returns their items.

    A complaint already waiting in the queue keeps its item; with `skip_answered`, complaints a
    person has already answered are skipped (their label is the person's, not the data's).
    """
    now = now or datetime.now(UTC)
    for n, s in enumerate(suspects):
        if not isinstance(s.get("text"), str) or not isinstance(s.get("suggestion"), Mapping):
            raise InvalidInput(f"suspect {n}: needs `text` and a `suggestion` mapping (pass "
                               "AuditResult.to_dicts())", field="suspects")
    answered: set[str] = set()
    ids = [str(s["complaint_id"]) for s in suspects if s.get("complaint_id")]
    if skip_answered and ids:
        answered = set(session.scalars(select(ResponseRow.complaint_id).where(
            ResponseRow.complaint_id.in_(ids), ResponseRow.status == "submitted")))
    items = []
    for s in suspects:
        cid = str(s["complaint_id"]) if s.get("complaint_id") else None
        if cid in answered:
            continue
        suggestion = dict(s["suggestion"])
        items.append(service.enqueue_review(
            session, text=s["text"], suggestion=suggestion, reason="audit", actor=actor,
            complaint_id=cid, due_at=now + due_in,
            model_version=str(suggestion.get("model_version") or "label-audit"), now=now))
    return items
