"""Officers' responses: validated against the duty list, drafts, discards, and the item's claim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from model.errors import Conflict, InvalidInput
from serving.store import service
from serving.store.service import Answer

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def item(store, make_routing):
    with store.sessions() as s:
        return service.enqueue_review(s, text="楼顶违建", reason="low_confidence",
                                      suggestion=make_routing(), complaint_id="c1",
                                      actor="intake", now=T0)


def _submit(store, item, answer, taxonomy, officer="li"):
    with store.sessions() as s:
        return service.submit_response(s, item.id, officer, answer, taxonomy, now=T0)


INVALID = [  # answer, the field InvalidInput names, what its message says
    (Answer("correct", category="城建"), "category", "did you mean '城乡建设'"),
    (Answer("correct", subcategory="城乡建设/不存在"), "subcategory", "not in duty list"),
    (Answer("correct", department="住建"), "department", "did you mean '住建局'"),
    (Answer("correct", category="交通运输", subcategory="城乡建设/违章建筑"), "subcategory",
     "belongs to category '城乡建设', not '交通运输'"),
    (Answer("correct"), "category", "at least one of"),
    (Answer("accept", department="交通局"), "department", "send kind 'correct'"),
    (Answer("fix", department="交通局"), "kind", "not one of"),
    (Answer("not_a_complaint", category="城乡建设"), "category", "takes no labels"),
    (Answer("split", parts=[{"category": "城乡建设"}]), "parts", "at least two parts"),
    (Answer("split", parts=[{"category": "城乡建设"}, {"department": "公安局"}]),
     "parts[1].department", "not in duty list"),
    (Answer("split", parts=[{"category": "城乡建设"}, {"dept": "住建局"}]), "parts[1].dept",
     "unknown keys"),
]


def test_submit_is_validated_against_the_duty_list(store, item, taxonomy):
    before = store.snapshot()
    for answer, field, message in INVALID:
        with pytest.raises(InvalidInput, match=message) as err:
            _submit(store, item, answer, taxonomy)
        assert err.value.field == field, answer
    assert store.snapshot() == before


def test_accept_keeps_the_suggestion_and_what_the_model_said(store, item, taxonomy, make_routing):
    response = _submit(store, item, Answer("accept"), taxonomy)
    assert (response.kind, response.status, response.officer, response.source) == (
        "accept", "submitted", "li", "review")
    assert (response.category, response.subcategory, response.department) == (
        "城乡建设", "城乡建设/违章建筑", "城管局")
    assert response.suggestion == make_routing() and response.model_version == "tiny-v1"
    assert response.submitted_at == T0 and response.text == "楼顶违建"
    with store.sessions() as s:
        done = service.get_review_item(s, item.id)
    assert (done.status, done.claimed_by, done.done_at) == ("done", "li", T0)


CORRECTIONS = [  # answer, the (category, subcategory, department) it stands for
    # department only: category and subcategory stay as suggested
    (Answer("correct", department="住建局"), ("城乡建设", "城乡建设/违章建筑", "住建局")),
    # a subcategory key alone moves the category with it
    (Answer("correct", subcategory="交通运输/出租车"), ("交通运输", "交通运输/出租车", "城管局")),
    # a bare subcategory name is read under the (suggested or given) category
    (Answer("correct", subcategory="物业管理"), ("城乡建设", "城乡建设/物业管理", "城管局")),
    (Answer("correct", category="交通运输", subcategory="物业管理", department="交通局"),
     ("交通运输", "交通运输/物业管理", "交通局")),
    # a new category drops the suggested subcategory that would contradict it
    (Answer("correct", category="市场监管"), ("市场监管", None, "城管局")),
]


def test_corrections_change_only_what_the_officer_changed(store, make_routing, taxonomy):
    with store.sessions() as s:
        items = [service.enqueue_review(s, text="楼顶违建", reason="low_confidence",
                                        suggestion=make_routing(), complaint_id=f"c{i}",
                                        actor="intake", now=T0) for i in range(len(CORRECTIONS))]
    for item, (answer, expected) in zip(items, CORRECTIONS, strict=True):
        response = _submit(store, item, answer, taxonomy)
        assert (response.category, response.subcategory, response.department) == expected, answer


def test_not_a_complaint_and_split(store, make_routing, taxonomy):
    with store.sessions() as s:
        a, b = (service.enqueue_review(s, text=t, reason="audit", suggestion=make_routing(),
                                       complaint_id=t, actor="audit", now=T0)
                for t in ("广告", "两件事"))
    nac = _submit(store, a, Answer("not_a_complaint", note="推销电话"), taxonomy)
    assert (nac.kind, nac.category, nac.note) == ("not_a_complaint", None, "推销电话")
    split = _submit(store, b, Answer("split", parts=[
        {"text": "违建", "subcategory": "城乡建设/违章建筑"},
        {"text": "出租车", "category": "交通运输", "subcategory": "出租车", "department": "交通局"},
    ]), taxonomy)
    assert split.parts == [
        {"text": "违建", "category": "城乡建设", "subcategory": "城乡建设/违章建筑",
         "department": None},
        {"text": "出租车", "category": "交通运输", "subcategory": "交通运输/出租车",
         "department": "交通局"}]


def test_drafts_claim_the_item_and_become_the_submitted_response(store, item, taxonomy):
    with store.sessions() as s:
        draft = service.save_draft(s, item.id, "li", Answer("correct", department="住建"), now=T0)
        assert draft.status == "draft" and draft.department == "住建"  # drafts are not checked
        assert service.get_review_item(s, item.id).claimed_by == "li"
        with pytest.raises(Conflict, match="claimed by li"):
            service.save_draft(s, item.id, "wang", Answer("accept"), now=T0)
        again = service.save_draft(s, item.id, "li", Answer("correct", department="住建局"),
                                   now=T0 + timedelta(minutes=1))
        assert again.id == draft.id
        submitted = service.submit_response(s, item.id, "li", Answer("correct",
                                            department="住建局"), taxonomy, now=T0)
        assert submitted.id == draft.id and submitted.status == "submitted"
        assert [r.status for r in service.responses_for(s, item.id)] == ["submitted"]


def test_discard_gives_the_item_back(store, item, taxonomy):
    with store.sessions() as s:
        service.save_draft(s, item.id, "li", Answer("correct", department="交通局"), now=T0)
        with pytest.raises(Conflict, match="claimed by li"):
            service.discard(s, item.id, "wang", now=T0)
        released = service.discard(s, item.id, "li", now=T0)
        assert (released.status, released.claimed_by) == ("open", None)
        assert [r.status for r in service.responses_for(s, item.id)] == ["discarded"]
        with pytest.raises(Conflict, match="not claimed by li"):
            service.discard(s, item.id, "li", now=T0)
        service.claim(s, item.id, "wang", now=T0)
        with pytest.raises(Conflict, match="claimed by wang"):
            service.submit_response(s, item.id, "li", Answer("accept"), taxonomy, now=T0)
        service.submit_response(s, item.id, "wang", Answer("accept"), taxonomy, now=T0)
        with pytest.raises(Conflict, match="already done"):
            service.submit_response(s, item.id, "wang", Answer("accept"), taxonomy, now=T0)
