"""/v1/warnings: detect a day's warnings, list them, acknowledge one; clear 422s, officers only."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app


@pytest.fixture
def client(settings, backend_url):
    with TestClient(create_app(settings.model_copy(update={"database_url": backend_url})),
                    raise_server_exceptions=False) as c:
        yield c


def test_the_api_detects_lists_and_acknowledges(client, headers):
    texts = [f"龙华区金盘路{k}号门口机动车乱停放，堵塞通道" for k in range(6)]
    r = client.post("/v1/complaints", headers=headers["intake"], json={"complaints": [
        {"id": f"c{k}", "text": t, "received_at": "2018-04-16T09:00:00+08:00",
         "location": "海口市龙华区"} for k, t in enumerate(texts)]})
    assert r.status_code == 200, r.text
    r = client.post("/v1/warnings/detect", json={"day": "2018-04-16"}, headers=headers["officer"])
    assert r.status_code == 200, r.text
    added = r.json()["added"]
    assert any(w["kind"] == "surge" and w["key"].endswith("@龙华区") for w in added)
    again = client.post("/v1/warnings/detect", json={"day": "2018-04-16"},
                        headers=headers["officer"])
    assert again.json()["added"] == []
    listed = client.get("/v1/warnings", params={"from": "2018-04-01", "to": "2018-04-30",
                                               "kind": "surge"}, headers=headers["officer"])
    assert listed.status_code == 200 and listed.json()["warnings"]
    first = listed.json()["warnings"][0]["id"]
    ack = client.post(f"/v1/warnings/{first}/acknowledge", json={"note": "已知悉"},
                      headers=headers["officer"])
    assert ack.status_code == 200 and ack.json()["acknowledged_by"].startswith("test officer")
    assert client.post(f"/v1/warnings/{first}/acknowledge", json={},
                       headers=headers["officer"]).status_code == 409
    assert client.post("/v1/warnings/99999/acknowledge", json={},
                       headers=headers["officer"]).status_code == 404


@pytest.mark.parametrize(("method", "path", "kwargs", "message"), [
    ("post", "/v1/warnings/detect", {"json": {"day": "2999-01-01"}}, "in the future"),
    ("post", "/v1/warnings/detect", {"json": {"day": "monday"}}, "day"),
    ("post", "/v1/warnings/detect", {"json": {"day": "2018-04-16", "x": 1}}, "x"),
    ("get", "/v1/warnings", {"params": {"kind": "fire"}}, "kind"),
    ("get", "/v1/warnings", {"params": {"from": "2018-04-30", "to": "2018-04-01"}}, "swap them"),
    ("get", "/v1/warnings", {"params": {"status": "closed"}}, "status"),
])
def test_bad_requests_are_clear_422s(client, headers, method, path, kwargs, message):
    r = getattr(client, method)(path, headers=headers["officer"], **kwargs)
    assert r.status_code == 422 and message in r.text, r.text


def test_warnings_need_an_officer_key(client, headers):
    assert client.get("/v1/warnings").status_code == 401
    assert client.get("/v1/warnings", headers=headers["intake"]).status_code == 403
    assert client.post("/v1/warnings/detect", json={"day": "2018-04-16"},
                       headers=headers["intake"]).status_code == 403
