"""Cases: what happens to a registered complaint after routing, as events posted by the
case-handling system or an officer — assigned (to a department), replied, closed, reopened.

A case's state is its last event's (`routed` before any). Its due time comes from the duty-list
time limit its complaint was routed with (`due_date`: 30min, 24h, 3d, 5wd); a case without one
has no due time and is never overdue. Overdue is computed, never stored: a case is overdue when
its first reply (or its closing, if it was closed without one) came after the due time, or has
not come and the due time has passed. Haikou's stated limit is "contact the citizen and respond
within 30 minutes", so the reply is what the limit measures.

Posting is idempotent by the poster's `event_id`: the same event again is answered with the stored
one (`replayed`), a different event under a used id is a Conflict. Events of one case are
serialised by locking its complaint row, and each is committed before it is acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from model.duty import due_date
from model.errors import Conflict, InvalidInput, NotFound
from serving.store.audit import aware_utc, current_time, record_audit
from serving.store.db import write_transaction
from serving.store.tables import CASE_EVENT_KINDS, CaseEvent, Complaint

# what may follow each state (a case may be closed without a department's reply, e.g. a
# consultation the hotline answered itself)
NEXT = {"routed": ("assigned", "replied", "closed"), "assigned": ("assigned", "replied", "closed"),
        "replied": ("assigned", "replied", "closed"), "reopened": ("assigned", "replied", "closed"),
        "closed": ("reopened",)}
CaseState = Literal["routed", "assigned", "replied", "closed", "reopened"]
CLOCK_SKEW = timedelta(minutes=5)  # how far in the future an event's time may be


@dataclass(frozen=True)
class NewEvent:
    event_id: str
    kind: str
    at: datetime
    department: str | None = None
    reply: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Case:
    """A complaint's case as its events make it."""

    complaint: Complaint
    events: tuple[CaseEvent, ...]

    @property
    def state(self) -> CaseState:
        return cast(CaseState, self.events[-1].kind if self.events else "routed")

    @property
    def reported_at(self) -> datetime:
        return self.complaint.received_at or self.complaint.registered_at

    @property
    def department(self) -> str | None:
        """The department it was last assigned to, else the one it was routed to."""
        assigned = [e.department for e in self.events if e.kind == "assigned"]
        return assigned[-1] if assigned else self.complaint.department

    @property
    def due_at(self) -> datetime | None:
        limit = self.complaint.time_limit
        return due_date(self.reported_at, limit) if limit else None

    @property
    def responded_at(self) -> datetime | None:
        return next((e.at for e in self.events if e.kind in ("replied", "closed")), None)

    @property
    def closed_at(self) -> datetime | None:
        return self.events[-1].at if self.state == "closed" else None

    def overdue(self, now: datetime) -> bool:
        due = self.due_at
        if due is None:
            return False
        responded = self.responded_at
        return responded > due if responded is not None else now > due


@dataclass(frozen=True)
class Posted:
    case: Case
    event: CaseEvent
    replayed: bool  # the same event was posted before: nothing changed


def post_event(session: Session, complaint_id: str, new: NewEvent, *, actor: str,
               now: datetime | None = None) -> Posted:
    """Record one event of a complaint's case (committed when this returns)."""
    now = current_time(now)
    at = aware_utc(new.at, "at")
    _check(new)
    with write_transaction(session):
        complaint = session.scalars(select(Complaint).where(Complaint.id == complaint_id)
                                    .with_for_update()).first()
        if complaint is None or complaint.removed:
            raise NotFound(f"complaint {complaint_id!r} is not registered: register it with "
                           "POST /v1/complaints before posting its case events")
        earlier = session.scalars(select(CaseEvent)
                                  .where(CaseEvent.event_id == new.event_id)).first()
        if earlier is not None:
            return Posted(get_case(session, earlier.complaint_id),
                          _same(earlier, complaint_id, new, at), replayed=True)
        case = get_case(session, complaint_id)
        _check_order(case, new.kind, at, now)
        event = CaseEvent(event_id=new.event_id, complaint_id=complaint_id, kind=new.kind, at=at,
                          department=new.department, reply=new.reply, note=new.note,
                          actor=actor, recorded_at=now)
        session.add(event)
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError:  # the same id posted at this moment for another complaint
            raise Conflict(f"event_id {new.event_id!r} is already used; give each event its "
                           "own id") from None
        record_audit(session, actor, f"case.{new.kind}", complaint, {"state": case.state},
                     {"state": new.kind, "event_id": new.event_id, "at": at.isoformat(),
                      "department": new.department}, now)
    return Posted(get_case(session, complaint_id), event, replayed=False)


def get_case(session: Session, complaint_id: str) -> Case:
    complaint = session.get(Complaint, complaint_id)
    if complaint is None or complaint.removed:
        raise NotFound(f"complaint {complaint_id!r} is not registered")
    events = session.scalars(select(CaseEvent).where(CaseEvent.complaint_id == complaint_id)
                             .order_by(CaseEvent.at, CaseEvent.id)).all()
    return Case(complaint, tuple(events))


def cases_of(session: Session, complaints: Sequence[Complaint]) -> list[Case]:
    """The cases of many complaints, with one query for their events."""
    ids = [c.id for c in complaints]
    events: dict[str, list[CaseEvent]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        for e in session.scalars(select(CaseEvent).where(CaseEvent.complaint_id.in_(
                ids[start:start + 500])).order_by(CaseEvent.at, CaseEvent.id)):
            events[e.complaint_id].append(e)
    return [Case(c, tuple(events[c.id])) for c in complaints]


def _check(new: NewEvent) -> None:
    if new.kind not in CASE_EVENT_KINDS:
        raise InvalidInput(f"kind {new.kind!r} is not one of assigned, replied, closed, reopened",
                           field="kind")
    if new.kind == "assigned" and not new.department:
        raise InvalidInput("an `assigned` event needs the `department` it was assigned to",
                           field="department")
    if new.kind == "replied" and not new.reply:
        raise InvalidInput("a `replied` event needs the `reply` text", field="reply")
    if new.kind != "replied" and new.reply:
        raise InvalidInput(f"only a `replied` event carries a reply, not {new.kind!r}",
                           field="reply")


def _check_order(case: Case, kind: str, at: datetime, now: datetime) -> None:
    if kind not in NEXT[case.state]:
        raise Conflict(f"case {case.complaint.id!r} is {case.state}: it can be "
                       f"{' or '.join(NEXT[case.state])} next, not {kind}")
    if at > now + CLOCK_SKEW:
        raise InvalidInput(f"at {at.isoformat()} is in the future (now {now.isoformat()})",
                           field="at")
    if at < case.reported_at:
        raise InvalidInput(f"at {at.isoformat()} is before the complaint was reported "
                           f"({case.reported_at.isoformat()})", field="at")
    if case.events and at < case.events[-1].at:
        last = case.events[-1]
        raise InvalidInput(f"at {at.isoformat()} is before the case's last event "
                           f"({last.kind} at {last.at.isoformat()}): post events in the order "
                           "they happened", field="at")


def _same(earlier: CaseEvent, complaint_id: str, new: NewEvent, at: datetime) -> CaseEvent:
    """The stored event, if `new` repeats it; Conflict if the id was used for another event."""
    if (earlier.complaint_id, earlier.kind, earlier.at, earlier.department, earlier.reply,
            earlier.note) != (complaint_id, new.kind, at, new.department, new.reply, new.note):
        raise Conflict(f"event_id {new.event_id!r} was already used for another event "
                       f"({earlier.kind} of complaint {earlier.complaint_id!r} at "
                       f"{earlier.at.isoformat()}); give each event its own id")
    return earlier
