"""Instant replies (秒回) in /v1/route and /v1/complaints: a complaint repeating an answered one
is offered its reply (via same_event), or the reply of another complaint of its hot issue (via
hot_issue); nothing otherwise; a failed lookup costs no routing. And the ranking rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.replies import suggest
from serving.schemas import DuplicatePublic
from serving.store.service import Replies, StoredReply

LAMP = "龙华区南沙路坡博新村二巷102号处有一盏路灯不亮，晚上出行很不方便"
NOISE = "美兰区海甸五西路工地夜间施工噪音扰民，严重影响休息"
PARK = "秀英区向荣北路金美花园外面很多机动车违停，堵塞消防通道"
LAMP_REPLY = ("市民您好！您反映的龙华区南沙路坡博新村二巷路灯不亮的问题已收悉。经现场核实，该路灯线路"
              "老化，我局已安排人员于4月8日更换线路，路灯已恢复照明。感谢您对我们工作的支持！")
NOISE_REPLY = ("您好！经核查，该工地已办理夜间施工许可。根据《中华人民共和国环境噪声污染防治法》第三十"
               "条，我局已责令其22时后停止高噪声作业。如有疑问请拨打联系电话。")


@pytest.fixture
def client(settings):
    # the tiny test model finds unrelated texts about 0.49 similar: only exact repeats here
    with TestClient(create_app(settings.model_copy(update={"duplicate_threshold": 0.95})),
                    raise_server_exceptions=False) as c:
        yield c


def _register(client, headers, *complaints: tuple[str, str, str]) -> dict:
    r = client.post("/v1/complaints", headers=headers["intake"], json={"complaints": [
        {"id": i, "text": t, "received_at": at} for i, t, at in complaints]})
    assert r.status_code == 200 and r.json()["registered"] == len(complaints), r.text
    return r.json()


def _reply(client, headers, complaint: str, at: str, text: str, **extra: str) -> None:
    r = client.post(f"/v1/complaints/{complaint}/events", headers=headers["intake"],
                    json={"event_id": f"{complaint}-reply", "kind": "replied", "at": at,
                          "reply": text, **extra})
    assert r.status_code == 200, r.text


def _route(client, headers, *complaints: tuple[str, str, str]) -> list[dict]:
    r = client.post("/v1/route", headers=headers["intake"], json={"complaints": [
        {"id": i, "text": t, "received_at": at} for i, t, at in complaints]})
    assert r.status_code == 200, r.text
    return r.json()["results"]


def test_an_exact_repeat_of_an_answered_complaint_is_offered_its_reply(client, headers,
                                                                      tiny_bundle):
    _register(client, headers, ("lamp-1", LAMP, "2018-04-08T09:30:00+08:00"),
              ("noise-1", NOISE, "2018-04-08T22:00:00+08:00"))
    department = tiny_bundle.taxonomy.departments[0]
    _reply(client, headers, "lamp-1", "2018-04-08T15:30:00+08:00", LAMP_REPLY,
           department=department)
    repeat, unanswered, fresh = _route(
        client, headers, ("q-1", LAMP + "！", "2018-04-09T08:00:00+08:00"),
        ("q-2", NOISE, "2018-04-09T08:00:00+08:00"), ("q-3", PARK, "2018-04-09T08:00:00+08:00"))
    [offered] = repeat["replies"]
    assert (offered["reply"], offered["source_complaint_id"], offered["via"],
            offered["similarity"], offered["department"]) == (
        LAMP_REPLY, "lamp-1", "same_event", 1.0, department)
    assert offered["replied_at"].startswith("2018-04-08T07:30:00")
    quality = offered["quality"]
    assert quality["timeliness_days"] == 0.25  # six hours after it was reported
    assert quality["relevance"] > 0.2
    assert quality["greeting"] and quality["handling"] and quality["closing"]
    assert quality["length"] < 100 and quality["completeness"] == 0.75  # short of substantive
    assert quality["citations"] == [] and quality["interpretability"] == 0.0
    assert unanswered["duplicates"][0]["same_event"] and unanswered["replies"] == []
    assert fresh["replies"] == []  # repeats nothing registered

    # registration offers the same, and a complaint of the request is nobody's source yet
    out = _register(client, headers, ("lamp-2", LAMP, "2018-04-09T09:00:00+08:00"),
                    ("park-1", PARK, "2018-04-09T09:30:00+08:00"))
    lamp_2, park_1 = out["results"]
    assert [(r["source_complaint_id"], r["via"]) for r in lamp_2["replies"]] == [
        ("lamp-1", "same_event")]
    assert park_1["replies"] == []


def test_the_reply_of_another_complaint_of_the_hot_issue_is_offered_via_hot_issue(client,
                                                                                  headers):
    _register(client, headers, ("lamp-1", LAMP, "2018-04-08T09:30:00+08:00"),
              ("noise-1", NOISE, "2018-04-08T22:00:00+08:00"))
    listed = client.get("/v1/hot-issues", headers=headers["officer"],
                        params={"from": "2018-04-01", "to": "2018-04-30"}).json()["issues"]
    issue_of = {cid: i["id"] for i in listed for cid in i["complaint_ids"]}
    # an officer judges the two one event: noise-1 joins lamp-1's issue
    r = client.post(f"/v1/hot-issues/{issue_of['noise-1']}/merge", headers=headers["officer"],
                    json={"into": issue_of["lamp-1"]})
    assert r.status_code == 200, r.text
    _reply(client, headers, "noise-1", "2018-04-09T10:00:00+08:00", NOISE_REPLY)
    [result] = _route(client, headers, ("q-1", LAMP, "2018-04-10T08:00:00+08:00"))
    # noise-1 is not the same event as far as the similarity goes: only its issue links it
    assert [d["id"] for d in result["duplicates"] if d["same_event"]] == ["lamp-1"]
    [offered] = result["replies"]
    assert (offered["source_complaint_id"], offered["via"], offered["similarity"]) == (
        "noise-1", "hot_issue", 1.0)
    assert offered["quality"]["citations"] == ["《中华人民共和国环境噪声污染防治法》", "第三十条"]
    assert offered["quality"]["basis"] and offered["quality"]["timeliness_days"] == 0.5

    _reply(client, headers, "lamp-1", "2018-04-10T09:00:00+08:00", LAMP_REPLY)
    [result] = _route(client, headers, ("q-2", LAMP, "2018-04-10T10:00:00+08:00"))
    assert [(r["source_complaint_id"], r["via"]) for r in result["replies"]] == [
        ("lamp-1", "same_event"), ("noise-1", "hot_issue")]  # its own reply first


def test_a_failed_reply_lookup_costs_no_routing(client, headers):
    _register(client, headers, ("lamp-1", LAMP, "2018-04-08T09:30:00+08:00"))
    _reply(client, headers, "lamp-1", "2018-04-08T15:30:00+08:00", LAMP_REPLY)

    def broken(*args, **kwargs):
        raise RuntimeError("the store went away")

    client.app.state.services.routing.replies.find = broken
    [result] = _route(client, headers, ("q-1", LAMP, "2018-04-09T08:00:00+08:00"))
    assert result["routing"] is not None and result["duplicates"] and result["replies"] == []
    assert 'huying_errors_total{code="replies_failed"} 1.0' in client.get("/metrics").text


T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _stored(cid: str, issue: int, hours: float, text: str) -> StoredReply:
    return StoredReply(complaint_id=cid, issue_id=issue, reply=text,
                       replied_at=T0 + timedelta(hours=hours), department=None, reported_at=T0)


def test_suggestions_are_ranked_deduplicated_and_at_most_three():
    found = Replies(
        by_complaint={"a": _stored("a", 1, 1, "答复甲"), "b": _stored("b", 2, 2, "答复乙")},
        issue_of={"a": 1, "b": 2, "c": 2},
        by_issue={1: [_stored("d", 1, 9, "答复丁"), _stored("e", 1, 8, "答复 乙"),
                      _stored("a", 1, 1, "答复甲")],
                  2: [_stored("f", 2, 7, "答复戊"), _stored("b", 2, 2, "答复乙")]})
    duplicates = [DuplicatePublic(id="c", similarity=0.99, same_event=True, exact=False),
                  DuplicatePublic(id="a", similarity=0.97, same_event=True, exact=False),
                  DuplicatePublic(id="b", similarity=0.97, same_event=True, exact=False),
                  DuplicatePublic(id="x", similarity=0.90, same_event=False, exact=False)]
    offered = suggest("路灯不亮", duplicates, found, limit=10)
    # c has no reply of its own: its issue's f comes first, at c's similarity; a and b offer
    # their own replies (b's own, though its issue is reached through c too), the latest first;
    # then d through a's issue; e's text repeats b's (spacing aside) and is dropped
    assert [(r.source_complaint_id, r.via, r.similarity) for r in offered] == [
        ("f", "hot_issue", 0.99), ("b", "same_event", 0.97), ("a", "same_event", 0.97),
        ("d", "hot_issue", 0.97)]
    assert len(suggest("路灯不亮", duplicates, found)) == 3
    assert suggest("路灯不亮", duplicates[3:], found) == []  # only similar: nothing offered


def test_a_review_item_offers_the_replies_of_its_hot_issue(client, headers):
    _register(client, headers, ("lamp-1", LAMP, "2018-04-08T09:30:00+08:00"))
    _reply(client, headers, "lamp-1", "2018-04-08T15:30:00+08:00", LAMP_REPLY)
    # low confidence: the tiny model sends these to review; they join lamp-1's issue
    _register(client, headers, ("lamp-2", LAMP, "2018-04-09T09:00:00+08:00"),
              ("noise-1", NOISE, "2018-04-09T22:00:00+08:00"))
    queue = client.get("/v1/review/queue", headers=headers["officer"]).json()["items"]
    items = {i["complaint_id"]: i["id"] for i in queue}
    lamp = client.get(f"/v1/review/items/{items['lamp-2']}", headers=headers["officer"]).json()
    [offered] = lamp["replies"]
    assert lamp["registered"] is True  # it has a case to post the reply to
    assert (offered["source_complaint_id"], offered["via"], offered["similarity"]) == (
        "lamp-1", "hot_issue", None)
    noise = client.get(f"/v1/review/items/{items['noise-1']}", headers=headers["officer"]).json()
    assert noise["replies"] == []
