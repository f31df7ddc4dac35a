"""Statistics for decision makers, from cases: volumes over time, share closed, time to close and
overdue per department, repeat complaints. One computation for `GET /v1/stats` and `huying stats`,
so both give the same numbers to the row.

    rows = case_rows(session, since, until, zone, districts)     # from the store
    rows = read_case_rows(Path("cases.csv"))                    # or from an export of it
    stats = statistics(rows, since, until, zone, by="week", as_of=end)

Definitions (each a number a reader can recompute from the case rows):
- a complaint counts in the period it was reported (received, else registered), in local days;
- closed: its case's state is `closed`; time to close = closing time − reported time, in hours;
  median and p90 with linear interpolation (numpy's default);
- overdue: the case has a due time (a duty-list limit) and its first reply came after it, or
  has not come by `as_of` (the period's end, or now if that is earlier);
- repeat: the complaint joined a hot issue that an earlier complaint had opened;
- reply quality: its latest reply scored against its text on the Teddy Cup criteria
  (model/reply_quality.py: relevance, completeness, interpretability, each 0–1), averaged over
  the replied cases; reply hours = first reply − reported time, median.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy.orm import Session

from model.errors import DataError
from model.reply_quality import assess
from serving.store import service

Granularity = Literal["day", "week", "month"]
DIMENSIONS = ("category", "subcategory", "district", "department")
UNKNOWN = "未知"  # a complaint without the label (or naming no district)


@dataclass(frozen=True)
class CaseRow:
    """One case, flat: what every statistic is computed from (and what `cases.csv` holds)."""

    complaint_id: str
    reported_at: datetime
    category: str
    subcategory: str
    department: str
    district: str
    state: str
    due_at: datetime | None
    responded_at: datetime | None
    closed_at: datetime | None
    repeat: bool
    reply_relevance: float | None = None  # of its latest reply (model/reply_quality.py)
    reply_completeness: float | None = None
    reply_interpretability: float | None = None

    def overdue(self, as_of: datetime) -> bool:
        if self.due_at is None:
            return False
        return self.responded_at > self.due_at if self.responded_at else as_of > self.due_at


def district_of(location: str | None, text: str, districts: Sequence[str]) -> str:
    """The first of `districts` the location names, else the first the text names."""
    for where in (location or "", text):
        named = [(where.find(d), d) for d in districts if d in where]
        if named:
            return min(named)[1]
    return UNKNOWN


def period_bounds(since: date, until: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    return (datetime.combine(since, time(), zone),
            datetime.combine(until + timedelta(days=1), time(), zone))


def case_rows(session: Session, since: date, until: date, zone: ZoneInfo,
              districts: Sequence[str]) -> list[CaseRow]:
    """The cases of the complaints reported in the period (local days, both included)."""
    start, end = period_bounds(since, until, zone)
    complaints = service.reports_between(session, start, end)
    opened = service.issues_opened(session, {c.issue_id for c in complaints if c.issue_id})
    rows = []
    for case in service.cases_of(session, complaints):
        c = case.complaint
        first = opened.get(c.issue_id) if c.issue_id else None
        replies = [e.reply for e in case.events if e.kind == "replied" and e.reply]
        quality = assess(c.text, replies[-1]) if replies else None
        rows.append(CaseRow(
            complaint_id=c.id, reported_at=case.reported_at, category=c.category or UNKNOWN,
            subcategory=c.subcategory or UNKNOWN, department=case.department or UNKNOWN,
            district=district_of(c.location, c.text, districts), state=case.state,
            due_at=case.due_at, responded_at=case.responded_at, closed_at=case.closed_at,
            repeat=first is not None and first != c.id,
            reply_relevance=round(quality.relevance, 4) if quality else None,
            reply_completeness=round(quality.completeness, 4) if quality else None,
            reply_interpretability=round(quality.interpretability, 4) if quality else None))
    return rows


def period_start(day: date, by: Granularity) -> date:
    if by == "week":
        return day - timedelta(days=day.weekday())  # Monday
    if by == "month":
        return day.replace(day=1)
    return day


@dataclass(frozen=True)
class Statistics:
    since: date
    until: date
    by: Granularity
    as_of: datetime
    summary: dict[str, Any]
    volumes: list[dict[str, Any]]  # period, dimension, value, complaints
    departments: list[dict[str, Any]]
    rows: list[CaseRow]  # what they were computed from

    def table(self, name: str) -> list[dict[str, Any]]:
        """summary, volumes, departments or cases, as rows of a CSV."""
        if name == "cases":
            return export_rows(self.rows)
        return {"summary": [self.summary], "volumes": self.volumes,
                "departments": self.departments}[name]


def statistics(rows: Iterable[CaseRow], since: date, until: date, zone: ZoneInfo, *,
               by: Granularity = "day", as_of: datetime) -> Statistics:
    rows = [r for r in rows if since <= r.reported_at.astimezone(zone).date() <= until]
    volumes: Counter[tuple[date, str, str]] = Counter()
    per_department: dict[str, list[CaseRow]] = defaultdict(list)
    for r in rows:
        start = period_start(r.reported_at.astimezone(zone).date(), by)
        for d in DIMENSIONS:
            volumes[(start, d, getattr(r, d))] += 1
        per_department[r.department].append(r)
    departments = sorted((_department(name, cases, as_of) for name, cases in
                          per_department.items()), key=lambda d: (-d["complaints"],
                                                                  d["department"]))
    return Statistics(
        since=since, until=until, by=by, as_of=as_of,
        summary=_department("全部", rows, as_of) | {"from": since.isoformat(),
                                                   "to": until.isoformat(), "by": by},
        volumes=[{"period": p.isoformat(), "dimension": d, "value": v, "complaints": n}
                 for (p, d, v), n in sorted(volumes.items(),
                                            key=lambda kv: (kv[0][0], DIMENSIONS.index(
                                                kv[0][1]), -kv[1], kv[0][2]))],
        departments=departments, rows=rows)


def _department(name: str, cases: Sequence[CaseRow], as_of: datetime) -> dict[str, Any]:
    hours = [(c.closed_at - c.reported_at).total_seconds() / 3600 for c in cases
             if c.closed_at is not None]
    limited = [c for c in cases if c.due_at is not None]
    overdue = sum(c.overdue(as_of) for c in limited)
    reply_hours = [(c.responded_at - c.reported_at).total_seconds() / 3600 for c in cases
                   if c.responded_at is not None]
    scored = [c for c in cases if c.reply_relevance is not None]
    return {
        "department": name, "complaints": len(cases),
        "closed": len(hours), "closed_share": _share(len(hours), len(cases)),
        "close_hours_median": _round(np.percentile(hours, 50)) if hours else None,
        "close_hours_p90": _round(np.percentile(hours, 90)) if hours else None,
        "with_time_limit": len(limited), "overdue": overdue,
        "overdue_share": _share(overdue, len(limited)),
        "repeats": sum(c.repeat for c in cases),
        "reply_hours_median": _round(np.percentile(reply_hours, 50)) if reply_hours else None,
        "replies_scored": len(scored),
        **{f"reply_{k}": _mean([getattr(c, f"reply_{k}") for c in scored])
           for k in ("relevance", "completeness", "interpretability")},
    }


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def _share(n: int, total: int) -> float | None:
    return round(n / total, 4) if total else None


def _round(value: Any) -> float:
    return round(float(value), 2)


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """CSV with a byte-order mark, so that Excel reads the Chinese as UTF-8."""
    out = io.StringIO()
    out.write("\ufeff")
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    return out.getvalue()


def export_rows(rows: Sequence[CaseRow]) -> list[dict[str, Any]]:
    return [{k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(r).items()}
            for r in rows]


def read_case_rows(path: Path) -> list[CaseRow]:
    """Case rows from a CSV (as `GET /v1/stats/cases.csv` writes it) or JSONL."""
    names = [f.name for f in fields(CaseRow)]
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            raw = ([json.loads(line) for line in f if line.strip()] if path.suffix == ".jsonl"
                   else list(csv.DictReader(f)))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read case rows: {exc}") from None
    rows = []
    for n, r in enumerate(raw, 1):
        missing = [k for k in names if k not in r]
        if missing:
            raise DataError(f"{path}:{n}: missing {', '.join(missing)}; expected the columns "
                            f"{', '.join(names)}")
        try:
            rows.append(CaseRow(**{k: _parse(k, r[k]) for k in names}))
        except ValueError as exc:
            raise DataError(f"{path}:{n}: {exc}") from None
    return rows


def _parse(name: str, value: Any) -> Any:
    if name in ("reported_at", "due_at", "responded_at", "closed_at"):
        if value in ("", None):
            if name == "reported_at":
                raise ValueError("reported_at is empty")
            return None
        parsed = datetime.fromisoformat(str(value))
        if parsed.tzinfo is None:
            raise ValueError(f"{name} {value!r} has no time zone")
        return parsed
    if name == "repeat":
        return value in (True, "True", "true", "1", 1)
    if name.startswith("reply_"):
        return None if value in ("", None) else float(value)
    return str(value)
