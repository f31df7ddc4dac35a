"""Hot issues in the store: a registered complaint joins the issue of the complaint it repeats
(the same event) or opens one; officers merge two issues or split one (audited); the reports of
a period, for ranking (model/hot_issues.py).

Merging moves every member of one issue into the other and leaves the merged issue behind with
`merged_into` set, so a link to it still says where its complaints went. Issue rows are locked
(`FOR UPDATE` on PostgreSQL; SQLite serialises writers) so a complaint registered during a merge
joins the issue that survives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from model.errors import Conflict, InvalidInput, NotFound
from serving.store.audit import aware_utc, current_time, record_audit
from serving.store.db import write_transaction
from serving.store.tables import Complaint, HotIssue

MAX_SPLIT = 1000  # complaint ids in one split


def report_time() -> Any:
    """When a complaint was reported: received, else registered (a SQL expression)."""
    return func.coalesce(Complaint.received_at, Complaint.registered_at)


def assign_issue(session: Session, row: Complaint, repeats: str | None, now: datetime) -> None:
    """Inside registration's transaction: `row` joins the issue of the registered complaint it
    repeats, or opens a new issue."""
    target = session.get(Complaint, repeats) if repeats else None
    if target is not None and not target.removed and target.issue_id is not None:
        issue = _locked(session, target.issue_id)
        while issue.merged_into is not None:  # merged meanwhile: follow it
            issue = _locked(session, issue.merged_into)
        row.issue_id = issue.id
    else:
        issue = HotIssue(opened_at=now)
        session.add(issue)
        session.flush()
        row.issue_id = issue.id
    session.flush()


def merge_issues(session: Session, issue_id: int, into: int, *, actor: str,
                 now: datetime | None = None) -> HotIssue:
    """Move every complaint of `issue_id` into `into` (all or nothing); the issue that survives."""
    now = current_time(now)
    if issue_id == into:
        raise InvalidInput(f"hot issue {issue_id} cannot be merged into itself", field="into")
    with write_transaction(session):
        issues = {i: _live(session, i, "into" if i == into else "issue_id")
                  for i in sorted((issue_id, into))}  # locked in id order: no deadlock
        source, target = issues[issue_id], issues[into]
        before = {i: issue_state(session, issue) for i, issue in issues.items()}
        session.execute(update(Complaint).where(Complaint.issue_id == issue_id)
                        .values(issue_id=into))
        source.merged_into = into
        session.flush()
        for i, issue in issues.items():
            record_audit(session, actor, "hot_issue.merged", issue, before[i],
                         issue_state(session, issue), now)
        return target


def split_issue(session: Session, issue_id: int, complaint_ids: Sequence[str], *, actor: str,
                now: datetime | None = None) -> HotIssue:
    """Move the given complaints of an issue into a new issue (all or nothing); the new issue."""
    now = current_time(now)
    ids = list(complaint_ids)
    if not ids or len(ids) > MAX_SPLIT:
        raise InvalidInput(f"complaint_ids: give 1 to {MAX_SPLIT} complaints of the issue to "
                           "move into a new issue", field="complaint_ids")
    if len(set(ids)) != len(ids):
        raise InvalidInput("complaint_ids repeat", field="complaint_ids")
    with write_transaction(session):
        source = _live(session, issue_id, "issue_id")
        members = set(_member_ids(session, issue_id))
        strangers = sorted(set(ids) - members)
        if strangers:
            raise InvalidInput(f"not complaints of hot issue {issue_id}: {', '.join(strangers)}",
                               field="complaint_ids")
        if members <= set(ids):
            raise InvalidInput(f"that is every complaint of hot issue {issue_id}: leave at "
                               "least one behind", field="complaint_ids")
        before = issue_state(session, source)
        new = HotIssue(opened_at=now)
        session.add(new)
        session.flush()
        session.execute(update(Complaint).where(Complaint.id.in_(ids)).values(issue_id=new.id))
        session.flush()
        record_audit(session, actor, "hot_issue.split", source, before,
                     issue_state(session, source) | {"split_into": new.id}, now)
        record_audit(session, actor, "hot_issue.split", new, None,
                     issue_state(session, new) | {"split_from": issue_id}, now)
        return new


def get_issue(session: Session, issue_id: int) -> tuple[HotIssue, list[Complaint]]:
    """An issue and its complaints (not removed), in the order they were reported."""
    issue = session.get(HotIssue, issue_id)
    if issue is None:
        raise NotFound(f"hot issue {issue_id} does not exist")
    members = session.scalars(select(Complaint).where(Complaint.issue_id == issue_id,
                                                      Complaint.removed.is_(False))
                              .order_by(report_time(), Complaint.id))
    return issue, list(members)


def reports_between(session: Session, since: datetime, until: datetime,
                    district: str | None = None) -> list[Complaint]:
    """Complaints (not removed) reported in [since, until), oldest first; with `district`, those
    whose location names it (or, without a location, whose text does)."""
    since, until = aware_utc(since, "from"), aware_utc(until, "to")
    when = report_time()
    query = select(Complaint).where(Complaint.removed.is_(False), Complaint.issue_id.is_not(None),
                                    when >= since, when < until)
    if district:
        pattern = "%" + district.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(Complaint.location.like(pattern, escape="\\"),
                                Complaint.location.is_(None)
                                & Complaint.text.like(pattern, escape="\\")))
    return list(session.scalars(query.order_by(when, Complaint.id)))


def issues_opened(session: Session, issue_ids: Iterable[int]) -> dict[int, str]:
    """Per issue, the complaint (not removed) reported first: the others repeat it."""
    ids, first = sorted(issue_ids), dict[int, str]()
    for start in range(0, len(ids), 500):
        for issue_id, complaint_id in session.execute(
                select(Complaint.issue_id, Complaint.id)
                .where(Complaint.issue_id.in_(ids[start:start + 500]),
                       Complaint.removed.is_(False))
                .order_by(report_time().desc(), Complaint.id.desc())):
            if issue_id is not None:
                first[issue_id] = complaint_id  # the last one written is the earliest
    return first


def issue_state(session: Session, issue: HotIssue) -> dict[str, Any]:
    return {"complaint_ids": _member_ids(session, issue.id), "merged_into": issue.merged_into}


def _member_ids(session: Session, issue_id: int) -> list[str]:
    return list(session.scalars(select(Complaint.id).where(Complaint.issue_id == issue_id,
                                                           Complaint.removed.is_(False))
                                .order_by(Complaint.id)))


def _locked(session: Session, issue_id: int) -> HotIssue:
    issue = session.scalars(select(HotIssue).where(HotIssue.id == issue_id)
                            .with_for_update()).first()
    if issue is None:
        raise NotFound(f"hot issue {issue_id} does not exist")
    return issue


def _live(session: Session, issue_id: int, field: str) -> HotIssue:
    """The issue, locked; Conflict if it was merged into another."""
    try:
        issue = _locked(session, issue_id)
    except NotFound as exc:
        raise NotFound(f"{exc} ({field})") from None
    if issue.merged_into is not None:
        raise Conflict(f"hot issue {issue_id} was merged into {issue.merged_into}; use that one")
    return issue
