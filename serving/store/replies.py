"""Replies in the store: the official answers (`replied` case events) that a new complaint
repeating an answered event may be offered (秒回, instant replies).

    found = find_replies(session, ["lamp-1", "lamp-2"])
    found.by_complaint["lamp-1"]        # its latest reply, if it has one
    found.by_issue[found.issue_of["lamp-1"]]  # every member's latest reply, latest first

Only complaints that are registered (not removed) count, as replier and as issue member. A
complaint's reply is its latest `replied` event (a case may be answered again after it was
reopened: the newer answer supersedes the older).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from serving.store.tables import CaseEvent, Complaint

_CHUNK = 500  # ids per IN (…): well below every backend's parameter limit
PER_ISSUE = 20  # replies kept per hot issue: a suggestion shows a few, not a thousand


@dataclass(frozen=True)
class StoredReply:
    """The latest reply to one registered complaint."""

    complaint_id: str
    issue_id: int | None
    reply: str
    replied_at: datetime
    department: str | None  # who replied, as the case-handling system posted it
    reported_at: datetime  # the complaint's received_at, else registered_at


@dataclass(frozen=True)
class Replies:
    """What `find_replies` found for some complaints: their own replies, their hot issues and
    the replies of those issues' members."""

    by_complaint: dict[str, StoredReply] = field(default_factory=dict)
    issue_of: dict[str, int] = field(default_factory=dict)
    by_issue: dict[int, list[StoredReply]] = field(default_factory=dict)


def latest_replies(session: Session, complaint_ids: Iterable[str]) -> dict[str, StoredReply]:
    """The latest `replied` event of each given complaint that has one (removed ones: none)."""
    ids = sorted(set(complaint_ids))
    out: dict[str, StoredReply] = {}
    for start in range(0, len(ids), _CHUNK):
        for r in _latest(session, Complaint.id.in_(ids[start:start + _CHUNK])):
            out[r.complaint_id] = r
    return out


def issue_replies(session: Session, issue_ids: Iterable[int], *,
                  per_issue: int = PER_ISSUE) -> dict[int, list[StoredReply]]:
    """Per hot issue, the latest reply of each of its members (not removed) that has one,
    latest first, at most `per_issue`; an issue without replies is absent."""
    ids = sorted(set(issue_ids))
    out: dict[int, list[StoredReply]] = {}
    for start in range(0, len(ids), _CHUNK):
        for r in _latest(session, Complaint.issue_id.in_(ids[start:start + _CHUNK])):
            if r.issue_id is not None:  # always, as selected by issue
                out.setdefault(r.issue_id, []).append(r)
    for issue, replies in out.items():
        replies.sort(key=lambda r: (r.replied_at, r.complaint_id), reverse=True)
        out[issue] = replies[:per_issue]
    return out


def find_replies(session: Session, complaint_ids: Sequence[str], *,
                 per_issue: int = PER_ISSUE) -> Replies:
    """The replies of the given complaints and of their hot issues, in one read."""
    ids = sorted(set(complaint_ids))
    issue_of: dict[str, int] = {}
    for start in range(0, len(ids), _CHUNK):
        for cid, issue in session.execute(
                select(Complaint.id, Complaint.issue_id)
                .where(Complaint.id.in_(ids[start:start + _CHUNK]),
                       Complaint.removed.is_(False), Complaint.issue_id.is_not(None))):
            if issue is not None:  # always, as selected
                issue_of[cid] = issue
    by_issue = issue_replies(session, issue_of.values(), per_issue=per_issue)
    # a member's reply found through its issue is its latest one: reuse it when it is kept
    by_complaint = {r.complaint_id: r for replies in by_issue.values() for r in replies
                    if r.complaint_id in issue_of}
    missing = [i for i in ids if i not in by_complaint]
    by_complaint.update(latest_replies(session, missing))
    return Replies(by_complaint=by_complaint, issue_of=issue_of, by_issue=by_issue)


def _latest(session: Session, which: ColumnElement[bool]) -> list[StoredReply]:
    """The latest reply of each complaint (not removed) selected by `which`."""
    ranked = (select(CaseEvent.id.label("event"),
                     func.row_number().over(partition_by=CaseEvent.complaint_id,
                                            order_by=(CaseEvent.at.desc(), CaseEvent.id.desc()))
                     .label("n"))
              .join(Complaint, Complaint.id == CaseEvent.complaint_id)
              .where(CaseEvent.kind == "replied", Complaint.removed.is_(False), which)
              .subquery())
    rows = session.execute(
        select(CaseEvent, Complaint.issue_id, Complaint.received_at, Complaint.registered_at)
        .join(ranked, ranked.c.event == CaseEvent.id)
        .join(Complaint, Complaint.id == CaseEvent.complaint_id)
        .where(ranked.c.n == 1))
    return [StoredReply(complaint_id=e.complaint_id, issue_id=issue, reply=e.reply or "",
                        replied_at=e.at, department=e.department,
                        reported_at=received or registered)
            for e, issue, received, registered in rows]
