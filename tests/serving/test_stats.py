"""The statistics' definitions, on hand-made case rows, and their CSV round trip."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from model.errors import DataError
from serving.stats import CaseRow, district_of, read_case_rows, statistics, to_csv

ZONE = ZoneInfo("Asia/Shanghai")
T0 = datetime(2018, 4, 2, 9, 0, tzinfo=ZONE)  # a Monday, local time


def _row(i: int, *, hours_to_close: float | None = None, reply_minutes: float | None = None,
         limit_minutes: float | None = 30, department: str = "市政局", repeat: bool = False,
         day: int = 0, district: str = "龙华区") -> CaseRow:
    reported = T0 + timedelta(days=day)
    closed = reported + timedelta(hours=hours_to_close) if hours_to_close is not None else None
    return CaseRow(
        complaint_id=str(i), reported_at=reported.astimezone(UTC), category="市政",
        subcategory="市政/路灯", department=department, district=district,
        state="closed" if closed else "assigned",
        due_at=reported + timedelta(minutes=limit_minutes) if limit_minutes else None,
        responded_at=reported + timedelta(minutes=reply_minutes) if reply_minutes else None,
        closed_at=closed, repeat=repeat)


def test_closed_share_time_to_close_overdue_and_repeats():
    rows = [_row(1, hours_to_close=2, reply_minutes=10),
            _row(2, hours_to_close=4, reply_minutes=40),  # replied late: overdue
            _row(3, hours_to_close=12, reply_minutes=20, repeat=True),
            _row(4),  # no reply by as_of: overdue
            _row(5, limit_minutes=None),  # no limit: never overdue
            _row(6, department="交警支队", day=8)]  # outside the period
    as_of = T0 + timedelta(days=1)
    s = statistics(rows, date(2018, 4, 2), date(2018, 4, 8), ZONE, by="week", as_of=as_of)
    [d] = s.departments
    assert (d["complaints"], d["closed"], d["closed_share"]) == (5, 3, 0.6)
    assert (d["close_hours_median"], d["close_hours_p90"]) == (4.0, 10.4)  # linear p90
    assert (d["with_time_limit"], d["overdue"], d["overdue_share"]) == (4, 2, 0.5)
    assert d["repeats"] == 1 and s.summary["complaints"] == 5
    assert d["reply_hours_median"] == round(20 / 60, 2)  # replies after 10, 20, 40 minutes
    assert {(v["period"], v["dimension"], v["value"], v["complaints"]) for v in s.volumes} == {
        ("2018-04-02", "category", "市政", 5), ("2018-04-02", "subcategory", "市政/路灯", 5),
        ("2018-04-02", "district", "龙华区", 5), ("2018-04-02", "department", "市政局", 5)}
    # before its due time, an unanswered case is not overdue yet
    early = statistics(rows, date(2018, 4, 2), date(2018, 4, 2), ZONE,
                       as_of=T0 + timedelta(minutes=20))
    assert early.summary["overdue"] == 1  # only the one replied late


def test_days_are_local_days():
    late_evening = CaseRow("a", datetime(2018, 4, 2, 15, 30, tzinfo=UTC), "c", "c/s", "d", "",
                           "routed", None, None, None, False)  # 23:30 in Haikou
    s = statistics([late_evening], date(2018, 4, 2), date(2018, 4, 3), ZONE,
                   as_of=T0 + timedelta(days=2))
    assert {v["period"] for v in s.volumes} == {"2018-04-02"}


def test_district_comes_from_the_location_then_the_text():
    districts = ("龙华区", "秀英区", "美兰区", "琼山区")
    assert district_of("海口市美兰区海甸岛", "龙华区的路灯", districts) == "美兰区"
    assert district_of(None, "秀英区向荣北路和龙华区交界", districts) == "秀英区"
    assert district_of("", "小区门口垃圾", districts) == "未知"


def test_reply_quality_is_averaged_over_the_scored_replies():
    rows = [replace(_row(1, reply_minutes=10), reply_relevance=0.2, reply_completeness=1.0,
                    reply_interpretability=0.0),
            replace(_row(2, reply_minutes=10), reply_relevance=0.4, reply_completeness=0.5,
                    reply_interpretability=1.0),
            _row(3)]  # not replied: not scored
    [d] = statistics(rows, date(2018, 4, 2), date(2018, 4, 2), ZONE,
                     as_of=T0 + timedelta(days=1)).departments
    assert (d["replies_scored"], d["reply_relevance"], d["reply_completeness"],
            d["reply_interpretability"]) == (2, 0.3, 0.75, 0.5)


def test_case_rows_round_trip_through_csv_and_bad_files_are_clear(tmp_path):
    rows = [replace(_row(1, hours_to_close=2, reply_minutes=10, repeat=True),
                    reply_relevance=0.25, reply_completeness=0.75, reply_interpretability=0.0),
            _row(2)]
    s = statistics(rows, date(2018, 4, 2), date(2018, 4, 2), ZONE, as_of=T0 + timedelta(days=1))
    path = tmp_path / "cases.csv"
    path.write_text(to_csv(s.table("cases")), encoding="utf-8")
    assert read_case_rows(path) == rows
    (tmp_path / "bad.csv").write_text("complaint_id,reported_at\n1,2018-04-02\n", encoding="utf-8")
    with pytest.raises(DataError, match="missing category"):
        read_case_rows(tmp_path / "bad.csv")
    naive = to_csv(s.table("cases")).replace("+00:00", "")
    (tmp_path / "naive.csv").write_text(naive, encoding="utf-8")
    with pytest.raises(DataError, match="has no time zone"):
        read_case_rows(tmp_path / "naive.csv")
