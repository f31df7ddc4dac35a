"""Cases over HTTP: post an event of a registered complaint's case, read its case
(serving/store/cases.py keeps them; this checks the department against the served duty list)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from model.duty import check_labels
from model.taxonomy import Taxonomy
from serving.schemas import CaseEventIn, CaseEventPublic, CasePublic
from serving.store import service


def post(session: Session, complaint_id: str, body: CaseEventIn, taxonomy: Taxonomy, *,
         actor: str) -> CasePublic:
    if body.department is not None and taxonomy.departments:
        check_labels(taxonomy, {"department": body.department}, "")
    posted = service.post_event(session, complaint_id, service.NewEvent(
        event_id=body.event_id, kind=body.kind, at=body.at, department=body.department,
        reply=body.reply, note=body.note), actor=actor)
    return public(posted.case, replayed=posted.replayed)


def case(session: Session, complaint_id: str) -> CasePublic:
    return public(service.get_case(session, complaint_id))


def public(case: service.Case, *, replayed: bool | None = None,
           now: datetime | None = None) -> CasePublic:
    return CasePublic(
        complaint_id=case.complaint.id, state=case.state, department=case.department,
        routed_department=case.complaint.department, time_limit=case.complaint.time_limit,
        reported_at=case.reported_at, due_at=case.due_at, responded_at=case.responded_at,
        closed_at=case.closed_at, overdue=case.overdue(now or datetime.now(UTC)),
        events=[CaseEventPublic(event_id=e.event_id, kind=e.kind, at=e.at, department=e.department,
                                reply=e.reply, note=e.note, actor=e.actor,
                                recorded_at=e.recorded_at) for e in case.events],
        replayed=replayed)
