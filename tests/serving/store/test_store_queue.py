"""The review queue: SLA urgency, then least confidence; filters; due dates from the duty list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from model.duty import DEFAULT_TIME_LIMIT
from model.errors import InvalidInput
from serving.store import service
from serving.store.service import QueueFilter, RoutedText

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 17:00 in China
HOUR = timedelta(hours=1)


def _enqueue(s, make_routing, *, due, confidence, complaint_id, **routing):
    return service.enqueue_review(s, text=f"投诉{complaint_id}", reason="low_confidence",
                                  suggestion=make_routing(confidence=confidence, **routing),
                                  complaint_id=complaint_id, due_at=due, actor="intake", now=T0)


def test_queue_orders_by_sla_then_least_confidence(store, make_routing):
    with store.sessions() as s:
        late_sure = _enqueue(s, make_routing, due=T0 + 2 * HOUR, confidence=0.7, complaint_id="a")
        soon_sure = _enqueue(s, make_routing, due=T0 + HOUR, confidence=0.6, complaint_id="b")
        late_unsure = _enqueue(s, make_routing, due=T0 + 2 * HOUR, confidence=0.2,
                               complaint_id="c")
        soon_unsure = _enqueue(s, make_routing, due=T0 + HOUR, confidence=0.1, complaint_id="d")
        expected = [soon_unsure.id, soon_sure.id, late_unsure.id, late_sure.id]
        page = service.list_queue(s, now=T0)
        assert [i.id for i in page.items] == expected and page.total == 4
        # the min confidence over the heads orders ties: subcategory is the least confident here
        assert soon_unsure.min_confidence == pytest.approx(0.1)
        second = service.list_queue(s, limit=2, offset=2, now=T0)
        assert [i.id for i in second.items] == expected[2:] and second.total == 4
        assert [service.claim_next(s, "li", now=T0).id for _ in range(4)] == expected
        assert service.list_queue(s, now=T0).total == 0
        claimed = service.list_queue(s, QueueFilter(status="claimed"), now=T0)
        assert [i.id for i in claimed.items] == expected


def test_queue_filters(store, make_routing):
    with store.sessions() as s:
        def add(cid, age, channel, **labels):
            return service.enqueue_review(
                s, text=cid, reason="low_confidence", suggestion=make_routing(**labels),
                complaint_id=cid, channel=channel, received_at=T0 - age, actor="intake", now=T0)

        old = add("old", 5 * 24 * HOUR, "hotline")
        taxi = add("taxi", 2 * HOUR, "web", category="交通运输", subcategory="出租车",
                   department="交通局")
        new = add("new", HOUR / 2, "hotline")

        def ids(**f):
            return {i.id for i in service.list_queue(s, QueueFilter(**f), now=T0).items}

        assert ids(department="交通局") == {taxi.id}
        assert ids(category="城乡建设") == {old.id, new.id}
        assert ids(channel="hotline") == {old.id, new.id}
        assert ids(max_age=timedelta(days=1)) == {taxi.id, new.id}
        assert ids(min_age=HOUR) == {old.id, taxi.id}
        assert ids(min_age=HOUR, max_age=timedelta(days=1)) == {taxi.id}
        assert ids(status=None) == {old.id, taxi.id, new.id}
        taken = service.claim_next(s, "li", QueueFilter(department="交通局"), now=T0)
        assert taken.id == taxi.id
        assert service.claim_next(s, "li", QueueFilter(department="交通局"), now=T0) is None
    with pytest.raises(InvalidInput) as err:
        QueueFilter(status="pending")
    assert err.value.field == "status"


def test_due_date_comes_from_the_duty_list_time_limit(store, make_routing):
    routed = [RoutedText(f"t{limit}", make_routing(time_limit=limit), complaint_id=f"c{limit}",
                         received_at=T0) for limit in ("30min", "24h", "5wd", None)]
    with store.sessions() as s:
        logged = service.log_routing(s, "r1", routed, actor="intake", now=T0)
        due = {i.complaint_id: i.due_at for i in service.list_queue(s, now=T0).items}
    assert due == {"c30min": T0 + timedelta(minutes=30), "c24h": T0 + 24 * HOUR,
                   "c5wd": T0 + timedelta(days=7),  # Monday + 5 working days: next Monday
                   "cNone": T0 + DEFAULT_TIME_LIMIT}
    assert all(r.decision == "review" for r in logged)


def test_only_review_decisions_join_the_queue_and_once_per_complaint(store, make_routing):
    with store.sessions() as s:
        service.log_routing(s, "r1", [
            RoutedText("auto", make_routing(decision="auto"), complaint_id="a"),
            RoutedText("review", make_routing(), complaint_id="b"),
        ], actor="intake", now=T0)
        service.log_routing(s, "r2", [RoutedText("again", make_routing(), complaint_id="b")],
                            actor="intake", now=T0)
        page = service.list_queue(s, QueueFilter(status=None), now=T0)
        assert [i.complaint_id for i in page.items] == ["b"]
        assert len(store.rows("routing_log")) == 3
        with pytest.raises(InvalidInput) as err:
            service.log_routing(s, "r3", [RoutedText("x", {"decision": "maybe"})], actor="i")
        assert err.value.field == "decision"


def test_a_real_routing_object_can_be_logged(store, make_routing):
    import numpy as np

    from model.router import HeadPrediction, Routing
    from model.taxonomy import DutyEntry

    heads = {"category": HeadPrediction("交通运输", 0.4, (("交通运输", 0.4), ("城乡建设", 0.3))),
             "subcategory": HeadPrediction("交通运输/出租车", 0.35, (("交通运输/出租车", 0.35),)),
             "department": HeadPrediction("交通局", 0.5, (("交通局", 0.5),))}
    duty = DutyEntry("交通运输", "出租车", "交通局", "24h")
    routing = Routing(text="出租车拒载", heads=heads, duty=duty, decision="review",
                      model_version="tiny-v1", embedding=np.zeros(4))
    with store.sessions() as s:
        [row] = service.log_routing(s, "r1", [RoutedText("出租车拒载", routing, complaint_id="z",
                                                         received_at=T0)], actor="i", now=T0)
        [item] = service.list_queue(s, now=T0).items
    assert row.suggestions == routing.to_dict() and row.model_version == "tiny-v1"
    assert (item.category, item.subcategory, item.department) == (
        "交通运输", "交通运输/出租车", "交通局")
    assert item.min_confidence == pytest.approx(0.35) and item.due_at == T0 + 24 * HOUR


def test_times_are_utc_aware_and_naive_times_are_refused(store, make_routing):
    from datetime import timezone

    beijing = timezone(timedelta(hours=8))
    with store.sessions() as s:
        item = _enqueue(s, make_routing, due=datetime(2026, 3, 3, 8, tzinfo=beijing),
                        confidence=0.5, complaint_id="tz")
    with store.sessions() as s:
        again = service.get_review_item(s, item.id)
        assert again.due_at == datetime(2026, 3, 3, 0, tzinfo=UTC)
        assert again.due_at.tzinfo is not None and again.due_at.utcoffset() == timedelta(0)
        with pytest.raises(InvalidInput, match="no time zone"):
            service.list_queue(s, now=datetime(2026, 3, 3))
