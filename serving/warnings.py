"""Early warnings for one local day, from the store's complaints and cases, stored with their
evidence (once per kind, subject and day, so detecting a day twice adds nothing):

- surge: a (subcategory, district) or a department whose count that day is abnormal against its
  own last 28 days (serving/early_warning.py: negative-binomial tail, weekday-adjusted);
- repeated_event: one event (hot issue) reported REPEATED times or more in the 7 days to that day,
  once a week per issue;
- overdue_cases: a department's cases past their time limit without a reply at the day's end (or
  now), and those due within DUE_SOON;
- overdue_share: a department whose overdue share in the 7 days to that day is SHARE_RISE above
  its share in the 4 weeks before, with at least SHARE_MIN overdue cases.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from serving import early_warning as ew
from serving.stats import district_of, period_bounds
from serving.store import service
from serving.store.tables import EarlyWarning

REPEATED = 3
DUE_SOON = timedelta(hours=1)
SHARE_RISE = 0.2
SHARE_MIN = 5
MAX_IDS = 50  # complaint ids kept as evidence per warning


def detect_day(session: Session, day: date, zone: ZoneInfo, districts: Sequence[str], *,
               actor: str, now: datetime | None = None) -> list[EarlyWarning]:
    """Detect the warnings of `day` and store the new ones; the ones added."""
    now = now or datetime.now(UTC)
    first = day - timedelta(days=35)
    start, end = period_bounds(first, day, zone)
    as_of = min(end, now)
    cases = service.cases_of(session, service.reports_between(session, start, end))
    local = {c.complaint.id: c.reported_at.astimezone(zone).date() for c in cases}
    new = (_surges(cases, local, day, zone, districts)
           + _repeated_events(session, cases, local, day)
           + _overdue(cases, local, day, as_of))
    return service.add_warnings(session, new, actor=actor, now=now)


def _surges(cases, local, day: date, zone: ZoneInfo,
            districts: Sequence[str]) -> list[service.NewWarning]:
    days = ew.day_range(day - timedelta(days=ew.WINDOW), day)
    series: dict[tuple[str, str], Counter[date]] = defaultdict(Counter)
    members: dict[tuple[str, str], list] = defaultdict(list)
    for c in cases:
        when = local[c.complaint.id]
        if when < days[0]:
            continue
        sub = c.complaint.subcategory or "未知"
        keys = [("subcategory", f"{sub}@{district_of(c.complaint.location, c.complaint.text, districts)}"),
                ("department", c.complaint.department or "未知")]
        for key in keys:
            series[key][when] += 1
            if when == day:
                members[key].append(c)
    totals = Counter(local[c.complaint.id] for c in cases)
    history = days[:-1]
    profile = (ew.weekday_profile(history, [totals[d] for d in history])
               if sum(totals[d] > 0 for d in history) >= 14 else ew.weekday_profile([], []))
    out = []
    for alarm in ew.detect(series, days, profile, check=[day]):
        family, name = alarm.series
        today = members[alarm.series]
        departments = Counter(c.complaint.department for c in today if c.complaint.department)
        subcategory, _, district = name.partition("@")
        out.append(service.NewWarning(
            kind="surge", key=f"{family}={name}", day=day, observed=alarm.observed,
            expected=alarm.expected, p_value=alarm.p_value,
            department=name if family == "department" else (
                departments.most_common(1)[0][0] if departments else None),
            evidence={"family": family, **({"subcategory": subcategory, "district": district}
                                           if family == "subcategory" else {}),
                      "method": ew.METHOD, "alpha": ew.ALPHA,
                      "days": [d.isoformat() for d in days],
                      "counts": [*alarm.history, alarm.observed],
                      "complaint_ids": [c.complaint.id for c in today][:MAX_IDS]}))
    return out


def _repeated_events(session: Session, cases, local, day: date) -> list[service.NewWarning]:
    week = day - timedelta(days=6)
    per_issue: dict[int, list] = defaultdict(list)
    for c in cases:
        if c.complaint.issue_id is not None and week <= local[c.complaint.id] <= day:
            per_issue[c.complaint.issue_id].append(c)
    raised = {w.key for w in service.list_warnings(session, week, day - timedelta(days=1),
                                                   kind="repeated_event")}
    out = []
    for issue, members in sorted(per_issue.items()):
        key = f"issue={issue}"
        if (len(members) < REPEATED or key in raised
                or not any(local[c.complaint.id] == day for c in members)):
            continue
        departments = Counter(c.complaint.department for c in members if c.complaint.department)
        out.append(service.NewWarning(
            kind="repeated_event", key=key, day=day, observed=len(members),
            department=departments.most_common(1)[0][0] if departments else None,
            evidence={"issue_id": issue, "threshold": REPEATED,
                      "first": min(c.reported_at for c in members).isoformat(),
                      "last": max(c.reported_at for c in members).isoformat(),
                      "complaint_ids": [c.complaint.id for c in members][:MAX_IDS]}))
    return out


def _overdue(cases, local, day: date, as_of: datetime) -> list[service.NewWarning]:
    week, month = day - timedelta(days=6), day - timedelta(days=34)
    late: dict[str, list] = defaultdict(list)
    soon: dict[str, list] = defaultdict(list)
    share: dict[str, dict[str, list[bool]]] = defaultdict(lambda: {"week": [], "before": []})
    for c in cases:
        due, department = c.due_at, c.department or "未知"
        if due is None:
            continue
        if c.responded_at is None and due <= as_of:
            late[department].append(c)
        elif c.responded_at is None and due <= as_of + DUE_SOON:
            soon[department].append(c)
        when = local[c.complaint.id]
        if due <= as_of:
            span = "week" if when >= week else "before" if when >= month else None
            if span:
                share[department][span].append(c.overdue(as_of))
    out = []
    for department in sorted(set(late) | set(soon)):
        out.append(service.NewWarning(
            kind="overdue_cases", key=f"department={department}", day=day,
            observed=len(late[department]), department=department,
            evidence={"as_of": as_of.isoformat(), "due_soon_within_h": DUE_SOON / timedelta(hours=1),
                      "overdue": [{"id": c.complaint.id, "due_at": c.due_at.isoformat()}
                                  for c in late[department]][:MAX_IDS],
                      "due_soon": [{"id": c.complaint.id, "due_at": c.due_at.isoformat()}
                                   for c in soon[department]][:MAX_IDS]}))
    for department, spans in sorted(share.items()):
        now_share = sum(spans["week"]) / len(spans["week"]) if spans["week"] else 0.0
        before = sum(spans["before"]) / len(spans["before"]) if spans["before"] else None
        if before is None or sum(spans["week"]) < SHARE_MIN or now_share - before < SHARE_RISE:
            continue
        out.append(service.NewWarning(
            kind="overdue_share", key=f"department={department}", day=day,
            observed=round(now_share, 4), expected=round(before, 4), department=department,
            evidence={"week": {"cases": len(spans["week"]), "overdue": sum(spans["week"])},
                      "four_weeks_before": {"cases": len(spans["before"]),
                                            "overdue": sum(spans["before"])},
                      "rise_threshold": SHARE_RISE, "min_overdue": SHARE_MIN}))
    return out
