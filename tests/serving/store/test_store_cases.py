"""Cases in the store: events in order, idempotent by event id, due and overdue computed, and a
refused event changes nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from model.errors import Conflict, InvalidInput, NotFound
from serving.store import service
from serving.store.service import NewComplaint, NewEvent

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
REPO = Path(__file__).resolve().parents[3]


def _register(s, limit: str | None = "30min") -> None:
    service.register_complaints(s, [NewComplaint("a", "路灯不亮", received_at=T0,
                                                 department="市政局", time_limit=limit)],
                                actor="intake", now=T0 + timedelta(minutes=1))


def _post(s, event_id: str, kind: str, minutes: float, **kw):
    return service.post_event(s, "a", NewEvent(event_id, kind, T0 + timedelta(minutes=minutes),
                                               **kw), actor="case-system",
                              now=T0 + timedelta(minutes=minutes + 1))


def test_a_case_goes_from_routed_to_closed_and_back(store):
    with store.sessions() as s:
        _register(s)
        case = service.get_case(s, "a")
        assert (case.state, case.department, case.due_at) == ("routed", "市政局",
                                                              T0 + timedelta(minutes=30))
        assert not case.overdue(T0 + timedelta(minutes=29)) and case.overdue(T0 + timedelta(hours=1))
        _post(s, "e1", "assigned", 2, department="龙华区市政维修管理中心")
        posted = _post(s, "e2", "replied", 20, reply="已安排人员维修。", department="龙华区市政维修管理中心")
        assert posted.case.state == "replied" and not posted.replayed
        assert posted.case.department == "龙华区市政维修管理中心"
        assert posted.case.responded_at == T0 + timedelta(minutes=20)
        assert not posted.case.overdue(T0 + timedelta(days=5))  # replied in time
        closed = _post(s, "e3", "closed", 60).case
        assert (closed.state, closed.closed_at) == ("closed", T0 + timedelta(minutes=60))
        reopened = _post(s, "e4", "reopened", 90, note="市民表示路灯仍不亮").case
        assert reopened.state == "reopened" and reopened.closed_at is None
        trail = [e.action for e in service.audit_trail(s, "complaint", "a")]
        assert trail == ["complaint.registered", "case.assigned", "case.replied", "case.closed",
                         "case.reopened"]


def test_late_or_missing_replies_are_overdue_and_no_limit_is_never_overdue(store):
    with store.sessions() as s:
        _register(s)
        _post(s, "late", "replied", 45, reply="已处理")
        assert service.get_case(s, "a").overdue(T0 + timedelta(minutes=46))
        service.register_complaints(s, [NewComplaint("b", "咨询", received_at=T0)],
                                    actor="intake", now=T0)
        case = service.get_case(s, "b")
        assert case.due_at is None and not case.overdue(T0 + timedelta(days=365))


def test_the_same_event_twice_is_stored_once(store):
    with store.sessions() as s:
        _register(s)
        first = _post(s, "e1", "assigned", 2, department="市政局")
        before = store.snapshot()
        again = _post(s, "e1", "assigned", 2, department="市政局")
        assert again.replayed and again.event.id == first.event.id
        assert store.snapshot() == before
        with pytest.raises(Conflict, match="already used for another event"):
            _post(s, "e1", "assigned", 2, department="交通局")


@pytest.mark.parametrize(("events", "bad", "error", "match"), [
    ([], ("x", "reopened", 5, {}), Conflict, "is routed: it can be assigned or replied or closed"),
    ([("c", "closed", 5, {})], ("x", "closed", 6, {}), Conflict, "is closed: it can be reopened"),
    ([("c", "assigned", 10, {"department": "市政局"})], ("x", "replied", 5, {"reply": "好"}),
     InvalidInput, "before the case's last event"),
    ([], ("x", "assigned", -5, {"department": "市政局"}), InvalidInput,
     "before the complaint was reported"),
    ([], ("x", "assigned", 60 * 24, {"department": "市政局"}), InvalidInput, "in the future"),
    ([], ("x", "assigned", 5, {}), InvalidInput, "needs the `department`"),
    ([], ("x", "replied", 5, {}), InvalidInput, "needs the `reply`"),
    ([], ("x", "closed", 5, {"reply": "好"}), InvalidInput, "only a `replied` event"),
    ([], ("x", "escalated", 5, {}), InvalidInput, "not one of"),
])
def test_bad_events_are_refused_and_change_nothing(store, events, bad, error, match):
    with store.sessions() as s:
        _register(s)
        for event_id, kind, minutes, kw in events:
            _post(s, event_id, kind, minutes, **kw)
        before = store.snapshot()
        event_id, kind, minutes, kw = bad
        with pytest.raises(error, match=match):
            service.post_event(s, "a", NewEvent(event_id, kind, T0 + timedelta(minutes=minutes),
                                                **kw), actor="case-system",
                               now=T0 + timedelta(minutes=30))
        assert store.snapshot() == before


def test_events_of_an_unknown_or_removed_complaint_are_refused(store):
    with store.sessions() as s:
        with pytest.raises(NotFound, match="register it with POST /v1/complaints"):
            service.post_event(s, "nope", NewEvent("x", "closed", T0), actor="c", now=T0)
        _register(s)
        service.remove_complaint(s, "a", actor="intake", now=T0 + timedelta(minutes=2))
        with pytest.raises(NotFound):
            _post(s, "x", "closed", 5)


_KILLED_MID_POST = """
import os, sys
from datetime import datetime, timedelta, UTC
from sqlalchemy import event
from serving.store import service
from serving.store.db import make_engine, make_sessionmaker

session = make_sessionmaker(make_engine(sys.argv[1]))()

@event.listens_for(session, "before_commit")
def die(s):
    s.flush()  # the event and its audit entry are in the database, uncommitted
    os._exit(3)  # the process dies: no rollback, no clean disconnect

t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
service.post_event(session, "a", service.NewEvent("e3", "closed", t0 + timedelta(minutes=40)),
                   actor="case-system", now=t0 + timedelta(minutes=41))
"""


def test_a_process_killed_mid_post_keeps_every_acknowledged_event(store):
    with store.sessions() as s:
        _register(s)
        _post(s, "e1", "assigned", 2, department="市政局")
        _post(s, "e2", "replied", 20, reply="已安排维修")
    before = store.snapshot()
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(_KILLED_MID_POST),
                           store.url.render_as_string(hide_password=False)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert store.snapshot() == before  # both acknowledged events, nothing of the third
    with store.sessions() as s:
        assert [e.event_id for e in service.get_case(s, "a").events] == ["e1", "e2"]
        assert _post(s, "e3", "closed", 40).case.state == "closed"  # and the retry goes in
