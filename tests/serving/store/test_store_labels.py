"""What retraining learns from: submitted answers only, the latest per complaint; feedback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from model.errors import InvalidInput, NotFound
from serving.store import service
from serving.store.service import Answer, QueueFilter, RoutedText

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def test_only_submitted_answers_count_and_the_latest_wins(store, make_routing, taxonomy):
    with store.sessions() as s:
        items = {t: service.enqueue_review(s, text=f"投诉{t}", reason="low_confidence",
                                           suggestion=make_routing(), complaint_id=t,
                                           actor="intake", now=T0) for t in "abcd"}
        service.submit_response(s, items["a"].id, "li", Answer("accept"), taxonomy, now=T0)
        service.save_draft(s, items["b"].id, "li", Answer("correct", department="交通局"), now=T0)
        service.save_draft(s, items["c"].id, "li", Answer("accept"), now=T0)
        service.discard(s, items["c"].id, "li", now=T0)
        service.submit_response(s, items["d"].id, "wang", Answer("not_a_complaint"), taxonomy,
                                now=T0 + MIN)
        # the intake system's final routing of a, after the officer's answer: it wins
        service.feedback(s, "a", Answer("correct", department="住建局"), taxonomy,
                         source="12345-hotline", actor="intake-key", now=T0 + 2 * MIN)
        # an older final routing of d arriving late does not
        labels = service.submitted_labels(s)
    assert [(lab.complaint_id, lab.kind, lab.department, lab.source) for lab in labels] == [
        ("d", "not_a_complaint", None, "review"),
        ("a", "correct", "住建局", "12345-hotline"),
    ]
    a = labels[1]
    assert a.text == "投诉a" and a.officer is None and a.model_version == "tiny-v1"
    assert a.suggestion == make_routing()  # what the model had said, from a's review item
    with store.sessions() as s:
        assert [lab.complaint_id for lab in service.submitted_labels(s, since=T0 + 2 * MIN)] == [
            "a"]
        assert service.submitted_labels(s, since=T0 + 3 * MIN) == []


def test_feedback_on_a_routed_complaint(store, make_routing, taxonomy):
    with store.sessions() as s:
        service.log_routing(s, "r1", [RoutedText("出租车绕路", make_routing(
            "交通运输", "出租车", "交通局", confidence=0.3), complaint_id="t1")],
            actor="intake", now=T0)
        # the final routing agrees with the model: "accept" takes the logged suggestion
        accepted = service.feedback(s, "t1", Answer("accept"), taxonomy, source="web",
                                    actor="intake-key", now=T0 + MIN)
        assert (accepted.text, accepted.subcategory, accepted.model_version) == (
            "出租车绕路", "交通运输/出租车", "tiny-v1")
        # the review item nobody had claimed is closed: its final routing is known
        assert service.list_queue(s, now=T0 + MIN).total == 0
        [closed] = service.list_queue(s, QueueFilter(status="done"), now=T0 + MIN).items
        assert service.audit_trail(s, "review_item", closed.id)[-1].action == \
            "review_item.closed_by_feedback"
        corrected = service.feedback(s, "t1", Answer("correct", subcategory="交通运输/物业管理"),
                                     taxonomy, source="web", actor="intake-key", now=T0 + 2 * MIN)
        [label] = service.submitted_labels(s)
        assert label.response_id == corrected.id and label.subcategory == "交通运输/物业管理"


def test_feedback_needs_a_known_complaint_or_its_text(store, taxonomy):
    with store.sessions() as s:
        with pytest.raises(NotFound, match="send its text"):
            service.feedback(s, "nobody", Answer("correct", department="交通局"), taxonomy,
                             source="web", actor="k")
        with pytest.raises(InvalidInput, match="no model suggestion") as err:
            service.feedback(s, "new", Answer("accept"), taxonomy, source="web", actor="k",
                             text="新投诉")
        assert err.value.field == "kind"
        fresh = service.feedback(s, "new", Answer("correct", department="交通局"), taxonomy,
                                 source="web", actor="k", text="新投诉", now=T0)
        assert (fresh.text, fresh.suggestion, fresh.review_item_id) == ("新投诉", None, None)


def test_a_claimed_item_stays_with_its_officer_after_feedback(store, make_routing, taxonomy):
    with store.sessions() as s:
        item = service.enqueue_review(s, text="x", reason="low_confidence", complaint_id="x",
                                      suggestion=make_routing(), actor="intake", now=T0)
        service.claim(s, item.id, "li", now=T0)
        service.feedback(s, "x", Answer("correct", department="交通局"), taxonomy, source="web",
                         actor="k", now=T0 + MIN)
        assert service.get_review_item(s, item.id).status == "claimed"
        service.submit_response(s, item.id, "li", Answer("accept"), taxonomy, now=T0 + 2 * MIN)
        [label] = service.submitted_labels(s)
        assert (label.source, label.department) == ("review", "城管局")  # latest wins
