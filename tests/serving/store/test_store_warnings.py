"""Early warnings from the store: a surge against its own history, an event reported again and
again, overdue cases and a rising overdue share; each stored once, with its evidence, and
acknowledged by an officer (audited)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from model.errors import Conflict
from serving.store import service
from serving.store.service import NewComplaint, NewEvent
from serving.warnings import detect_day

ZONE = ZoneInfo("Asia/Shanghai")
DAY = date(2018, 4, 16)  # a Monday
NOW = datetime(2018, 4, 17, 12, 0, tzinfo=UTC)
DISTRICTS = ("龙华区", "秀英区", "美兰区", "琼山区")
PARKING = "街面秩序/机动车乱停放"


def _at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=ZONE)


def _complaint(cid: str, day: date, *, sub: str = PARKING, department: str = "交警支队",
               location: str = "海口市龙华区", limit: str | None = None,
               repeats: str | None = None, hour: int = 10) -> NewComplaint:
    return NewComplaint(cid, f"{location}金盘路有车乱停 {cid}", location=location,
                        received_at=_at(day, hour), category=sub.split("/")[0], subcategory=sub,
                        department=department, time_limit=limit, repeats=repeats)


def _register(s, complaints):
    service.register_complaints(s, complaints, actor="intake", now=NOW)


def test_a_surge_against_its_own_history_is_warned_once_with_its_evidence(store):
    history = [_complaint(f"h{k}", DAY - timedelta(days=k)) for k in range(1, 29, 4)]
    burst = [_complaint(f"b{k}", DAY, hour=8 + k) for k in range(7)]
    elsewhere = [_complaint(f"x{k}", DAY - timedelta(days=k % 28), sub="市容环境/商业噪音",
                            department="城管局", location="海口市美兰区") for k in range(40)]
    with store.sessions() as s:
        _register(s, history + burst + elsewhere)
        added = detect_day(s, DAY, ZONE, DISTRICTS, actor="officer", now=NOW)
        surge = next(w for w in added if w.key == f"subcategory={PARKING}@龙华区")
        assert (surge.kind, surge.day, surge.observed, surge.department) == (
            "surge", DAY, 7, "交警支队")
        assert surge.expected < 1 and surge.p_value < 1e-4
        assert surge.evidence["counts"][-1] == 7 and len(surge.evidence["days"]) == 29
        assert sorted(surge.evidence["complaint_ids"]) == [f"b{k}" for k in range(7)]
        assert not any(w.key.startswith("subcategory=市容环境") for w in added)  # steady
        assert detect_day(s, DAY, ZONE, DISTRICTS, actor="officer", now=NOW) == []  # once
        before = len(service.list_warnings(s, DAY, DAY))
        service.acknowledge(s, surge.id, actor="officer li", note="已转交交警支队")
        with pytest.raises(Conflict, match="acknowledged by officer li"):
            service.acknowledge(s, surge.id, actor="officer wang")
        assert [w.id for w in service.list_warnings(s, DAY, DAY, status="acknowledged")] == [
            surge.id]
        assert len(service.list_warnings(s, DAY, DAY, status="open")) == before - 1
        trail = service.audit_trail(s, "warning", surge.id)
        assert [e.action for e in trail] == ["warning.raised", "warning.acknowledged"]


def test_an_event_reported_three_times_in_a_week_is_warned_once_a_week(store):
    with store.sessions() as s:
        _register(s, [_complaint("e1", DAY - timedelta(days=3))])
        _register(s, [_complaint("e2", DAY - timedelta(days=1), repeats="e1")])
        assert not [w for w in detect_day(s, DAY - timedelta(days=1), ZONE, DISTRICTS,
                                          actor="o", now=NOW) if w.kind == "repeated_event"]
        _register(s, [_complaint("e3", DAY, repeats="e2")])
        [event] = [w for w in detect_day(s, DAY, ZONE, DISTRICTS, actor="o", now=NOW)
                   if w.kind == "repeated_event"]
        assert event.observed == 3 and event.evidence["complaint_ids"] == ["e1", "e2", "e3"]
        _register(s, [_complaint("e4", DAY + timedelta(days=1), repeats="e3")])
        assert not [w for w in detect_day(s, DAY + timedelta(days=1), ZONE, DISTRICTS, actor="o",
                                          now=NOW + timedelta(days=1))
                    if w.kind == "repeated_event"]  # warned this week already


def test_overdue_cases_and_a_rising_overdue_share(store):
    before = [_complaint(f"p{k}", DAY - timedelta(days=10 + k % 20), limit="30min",
                         department="城管局") for k in range(20)]
    week = [_complaint(f"w{k}", DAY - timedelta(days=k % 5), limit="30min", department="城管局")
            for k in range(8)]
    with store.sessions() as s:
        _register(s, before + week)
        for c in before:  # replied within 10 minutes: on time
            service.post_event(s, c.id, NewEvent(f"r-{c.id}", "replied",
                                                 c.received_at + timedelta(minutes=10),
                                                 reply="已处理"), actor="cs", now=NOW)
        added = {w.kind: w for w in detect_day(s, DAY, ZONE, DISTRICTS, actor="o", now=NOW)}
        overdue = added["overdue_cases"]
        assert overdue.department == "城管局" and overdue.observed == 8
        assert {o["id"] for o in overdue.evidence["overdue"]} == {c.id for c in week}
        share = added["overdue_share"]
        assert (share.observed, share.expected) == (1.0, 0.0)
        assert share.evidence["week"] == {"cases": 8, "overdue": 8}


