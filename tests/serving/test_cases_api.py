"""/v1/complaints/{id}/events and /case: the case-handling system posts what happened after
routing; retries are recorded once; refused events get a clear error and change nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from model.duty import due_date
from serving.app import create_app

LAMP = "龙华区南沙路坡博新村二巷102号处有一盏路灯不亮，晚上出行很不方便"
RECEIVED = "2018-04-08T09:30:00+08:00"


@pytest.fixture
def client(settings, backend_url):
    with TestClient(create_app(settings.model_copy(update={"database_url": backend_url})),
                    raise_server_exceptions=False) as c:
        yield c


def _register(client, headers) -> dict:
    r = client.post("/v1/complaints", json={"complaints": [
        {"id": "lamp-1", "text": LAMP, "received_at": RECEIVED}]}, headers=headers["intake"])
    assert r.status_code == 200 and r.json()["registered"] == 1, r.text
    return r.json()["results"][0]


def _event(client, headers, event_id, kind, at, role="intake", complaint="lamp-1", **kw):
    return client.post(f"/v1/complaints/{complaint}/events", headers=headers[role],
                       json={"event_id": event_id, "kind": kind, "at": at, **kw})


def _limited_text(client, headers, haikou_sample) -> str:
    """A real complaint the tiny model routes to a subcategory with a stated time limit."""
    texts = [r.text for r in haikou_sample.records[:40]]
    r = client.post("/v1/route", headers=headers["intake"], json={"complaints": [
        {"id": str(i), "text": t} for i, t in enumerate(texts)]})
    return next(texts[int(x["id"])] for x in r.json()["results"]
                if (x["routing"].get("duty") or {}).get("time_limit"))


def test_a_case_is_assigned_replied_closed_with_its_due_time(client, headers, tiny_bundle,
                                                             haikou_sample):
    r = client.post("/v1/complaints", headers=headers["intake"], json={"complaints": [
        {"id": "lamp-1", "text": _limited_text(client, headers, haikou_sample),
         "received_at": RECEIVED}]})
    routed = r.json()["results"][0]
    case = client.get("/v1/complaints/lamp-1/case", headers=headers["officer"]).json()
    limit = tiny_bundle.taxonomy.entry(routed["routing"]["subcategory"]["label"]).time_limit
    assert case["state"] == "routed" and case["events"] == []
    assert case["time_limit"] == limit == "30min"  # the duty list's limit, mined from tickets
    assert case["department"] == case["routed_department"] == routed["routing"]["department"]["label"]
    assert datetime.fromisoformat(case["due_at"]) == due_date(datetime.fromisoformat(RECEIVED),
                                                              limit)
    assert case["overdue"] is True  # 2018: long past, and nobody replied
    department = tiny_bundle.taxonomy.departments[0]
    r = _event(client, headers, "e1", "assigned", "2018-04-08T09:35:00+08:00",
               department=department)
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["department"], r.json()["replayed"]) == (
        "assigned", department, False)
    r = _event(client, headers, "e2", "replied", "2018-04-08T09:50:00", role="officer",
               reply="已安排人员维修。")  # no time zone: the duty list's local time
    assert r.status_code == 200, r.text
    assert r.json()["responded_at"].startswith("2018-04-08T01:50:00")
    assert r.json()["events"][1]["actor"].startswith("test officer")
    closed = _event(client, headers, "e3", "closed", "2018-04-09T09:00:00+08:00").json()
    assert closed["state"] == "closed" and closed["closed_at"].startswith("2018-04-09T01:00:00")
    assert closed["overdue"] is False  # replied 20 minutes after it came in: within 30min
    again = _event(client, headers, "e3", "closed", "2018-04-09T09:00:00+08:00")
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert len(again.json()["events"]) == 3


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"event_id": "x", "kind": "reopened", "at": "2018-04-08T10:00:00+08:00"}, 409,
     "is routed: it can be assigned or replied or closed next"),
    ({"event_id": "x", "kind": "closed", "at": "2018-04-08T09:00:00+08:00"}, 422,
     "before the complaint was reported"),
    ({"event_id": "x", "kind": "closed", "at": "2999-01-01T00:00:00+08:00"}, 422, "in the future"),
    ({"event_id": "x", "kind": "assigned", "at": "2018-04-08T10:00:00+08:00"}, 422,
     "needs the `department`"),
    ({"event_id": "x", "kind": "assigned", "at": "2018-04-08T10:00:00+08:00",
      "department": "城管具"}, 422, "is not in duty list"),
    ({"event_id": "x", "kind": "replied", "at": "2018-04-08T10:00:00+08:00", "reply": "  "}, 422,
     "reply is blank"),
    ({"event_id": "x", "kind": "escalated", "at": "2018-04-08T10:00:00+08:00"}, 422, "kind"),
    ({"event_id": "", "kind": "closed", "at": "2018-04-08T10:00:00+08:00"}, 422, "event_id"),
    ({"event_id": "x", "kind": "closed", "at": "yesterday"}, 422, "at"),
    ({"event_id": "x", "kind": "closed", "at": "2018-04-08T10:00:00+08:00", "extra": 1}, 422,
     "extra"),
])
def test_bad_events_are_clear_errors_and_change_nothing(client, headers, body, status, message):
    _register(client, headers)
    r = client.post("/v1/complaints/lamp-1/events", json=body, headers=headers["intake"])
    assert r.status_code == status, r.text
    assert message in r.text
    case = client.get("/v1/complaints/lamp-1/case", headers=headers["intake"]).json()
    assert case["events"] == [] and case["state"] == "routed"


def test_unknown_complaints_and_missing_keys(client, headers):
    r = _event(client, headers, "x", "closed", "2018-04-08T10:00:00+08:00", complaint="nope")
    assert r.status_code == 404 and "register it with POST /v1/complaints" in r.text
    assert client.get("/v1/complaints/nope/case", headers=headers["intake"]).status_code == 404
    assert client.post("/v1/complaints/nope/events", json={}).status_code == 401
    assert client.get("/v1/complaints/nope/case").status_code == 401


def test_an_event_id_reused_for_another_event_is_a_conflict(client, headers, tiny_bundle):
    _register(client, headers)
    department = tiny_bundle.taxonomy.departments[0]
    assert _event(client, headers, "e1", "assigned", "2018-04-08T09:35:00+08:00",
                  department=department).status_code == 200
    r = _event(client, headers, "e1", "closed", "2018-04-08T09:40:00+08:00")
    assert r.status_code == 409 and "already used for another event" in r.text
    later = (datetime.fromisoformat("2018-04-08T09:35:00+08:00") + timedelta(minutes=1))
    assert _event(client, headers, "e2", "closed", later.isoformat()).status_code == 200
