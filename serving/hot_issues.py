"""Hot issues behind /v1/hot-issues: the issues registration assigned (serving/store/issues.py),
ranked over a period by the heat of model/hot_issues.py, with a daily trend; one issue; merge
and split. Functions take a store session (run them through serving.storage.run)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from model.errors import InvalidInput
from model.hot_issues import Issue, Report, description_of, place_of, rank
from model.normalize import normalize_text
from serving.schemas import (
    HotIssueComplaintPublic,
    HotIssueDetailPublic,
    HotIssuePublic,
    HotIssuesResponse,
)
from serving.store import service
from serving.store.tables import Complaint

MAX_DAYS = 366
DEFAULT_DAYS = 30


def period(since: date | None, until: date | None, zone: ZoneInfo) -> tuple[date, date]:
    """The period asked for: by default the 30 days up to today (local time), both included."""
    until = until or datetime.now(zone).date()
    since = since or until - timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        raise InvalidInput(f"from {since} is after to {until}: swap them", field="from")
    if (until - since).days + 1 > MAX_DAYS:
        raise InvalidInput(f"from {since} to {until} is {(until - since).days + 1} days; ask for "
                           f"at most {MAX_DAYS}", field="from")
    return since, until


def ranked(session: Session, since: date, until: date, zone: ZoneInfo, *, district: str | None,
           top: int) -> HotIssuesResponse:
    """Issues with a complaint reported in the period, hottest first (heat at the period's end,
    or now if that is earlier), counting only the period's complaints."""
    start = datetime.combine(since, time(), zone)
    end = datetime.combine(until + timedelta(days=1), time(), zone)
    members: dict[int, list[Complaint]] = defaultdict(list)
    for row in service.reports_between(session, start, end, district):
        members[row.issue_id or 0].append(row)
    issues = [Issue(id=str(i), reports=[_report(r) for r in rows]) for i, rows in members.items()]
    now = min(end, datetime.now(UTC))
    days = [since + timedelta(days=k) for k in range((until - since).days + 1)]
    out = []
    for n, issue in enumerate(rank(issues, now)[:top], 1):
        rows = members[int(issue.id)]
        per_day = Counter(r.time.astimezone(zone).date() for r in issue.reports)
        departments = Counter(r.department for r in rows if r.department).most_common(1)
        out.append(HotIssuePublic(
            rank=n, id=int(issue.id), heat=round(issue.heat(now), 4), reports=len(rows),
            first_reported=issue.first, last_reported=issue.last, place=place_of(issue),
            description=description_of(issue),
            department=departments[0][0] if departments else None,
            complaint_ids=[r.id for r in issue.reports], trend=[per_day[d] for d in days]))
    return HotIssuesResponse.model_validate(dict(from_=since, to=until, time_zone=zone.key,
                                                 district=district, days=days, total=len(issues),
                                                 issues=out))


def detail(session: Session, issue_id: int) -> HotIssueDetailPublic:
    issue, rows = service.get_issue(session, issue_id)
    return HotIssueDetailPublic(
        id=issue.id, opened_at=issue.opened_at, merged_into=issue.merged_into,
        complaints=[HotIssueComplaintPublic(id=r.id, text=r.text, reported_at=_reported(r),
                                            channel=r.channel, location=r.location,
                                            department=r.department) for r in rows])


def merge(session: Session, issue_id: int, into: int, officer: str) -> HotIssueDetailPublic:
    kept = service.merge_issues(session, issue_id, into, actor=officer)
    return detail(session, kept.id)


def split(session: Session, issue_id: int, complaint_ids: list[str],
          officer: str) -> HotIssueDetailPublic:
    new = service.split_issue(session, issue_id, complaint_ids, actor=officer)
    return detail(session, new.id)


def _reported(row: Complaint) -> datetime:
    return row.received_at or row.registered_at


def _report(row: Complaint) -> Report:
    return Report(id=row.id, text=normalize_text(row.text), time=_reported(row), place=row.location)


def check_district(district: str | None) -> str | None:
    if district is not None and not district.strip():
        raise InvalidInput("district is empty; leave it out for every district", field="district")
    return district.strip() if district else None
