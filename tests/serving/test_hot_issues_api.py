"""/v1/hot-issues: repeats registered through /v1/complaints add up to one issue; the list is
ranked, counted per local day and filtered by district; officers merge and split (audited);
bad parameters get clear 422s, other roles 403."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.store import service

LAMP = "龙华区南沙路坡博新村二巷102号处有一盏路灯不亮，晚上出行很不方便"
NOISE = "美兰区海甸五西路工地夜间施工噪音扰民，严重影响休息"


@pytest.fixture
def client(settings, backend_url):
    with TestClient(create_app(settings.model_copy(update={"database_url": backend_url})),
                    raise_server_exceptions=False) as c:
        yield c


def _register(client, headers):
    complaints = [
        {"id": "lamp-1", "text": LAMP, "received_at": "2018-04-08T09:30:00+08:00",
         "location": "海口市龙华区南沙路"},
        # the operator's wrapping and punctuation aside, the same text: an exact repeat, 07:30 in
        # Haikou but still Apr 8 in UTC
        {"id": "lamp-2", "text": f"市民来电反映：{LAMP}！请市政局核实处理，谢谢！",
         "received_at": "2018-04-09T07:30:00+08:00"},
        {"id": "noise-1", "text": NOISE, "received_at": "2018-04-09T22:00:00+08:00",
         "location": "海口市美兰区"},
    ]
    r = client.post("/v1/complaints", json={"complaints": complaints}, headers=headers["intake"])
    assert r.status_code == 200 and r.json()["registered"] == 3, r.text


def _list(client, headers, **params):
    r = client.get("/v1/hot-issues", params={"from": "2018-04-07", "to": "2018-04-10", **params},
                   headers=headers["officer"])
    assert r.status_code == 200, r.text
    return r.json()


def test_repeats_add_up_to_one_ranked_issue_with_a_local_daily_trend(client, headers):
    _register(client, headers)
    out = _list(client, headers)
    assert (out["from"], out["to"], out["time_zone"], out["total"]) == (
        "2018-04-07", "2018-04-10", "Asia/Shanghai", 2)
    assert out["days"] == ["2018-04-07", "2018-04-08", "2018-04-09", "2018-04-10"]
    lamp, noise = out["issues"]
    assert (lamp["rank"], lamp["complaint_ids"], lamp["reports"]) == (1, ["lamp-1", "lamp-2"], 2)
    assert lamp["trend"] == [0, 1, 1, 0] and noise["trend"] == [0, 0, 1, 0]
    assert lamp["heat"] > noise["heat"] and lamp["department"]
    assert lamp["description"].startswith("龙华区南沙路") and "市民来电" not in lamp["description"]
    assert [i["complaint_ids"] for i in _list(client, headers, district="龙华区")["issues"]] == [
        ["lamp-1", "lamp-2"]]  # lamp-2 has no location: its text names the district
    assert _list(client, headers, top=1)["issues"][0]["id"] == lamp["id"]
    assert _list(client, headers, **{"from": "2018-04-10"})["issues"] == []


def test_officers_merge_and_split_issues_and_each_change_is_audited(client, headers):
    _register(client, headers)
    lamp, noise = _list(client, headers)["issues"]
    officer = headers["officer"]
    r = client.post(f"/v1/hot-issues/{noise['id']}/merge", json={"into": lamp["id"]},
                    headers=officer)
    assert r.status_code == 200, r.text
    assert [c["id"] for c in r.json()["complaints"]] == ["lamp-1", "lamp-2", "noise-1"]
    gone = client.get(f"/v1/hot-issues/{noise['id']}", headers=officer).json()
    assert gone["merged_into"] == lamp["id"] and gone["complaints"] == []
    assert client.post(f"/v1/hot-issues/{noise['id']}/merge", json={"into": lamp["id"]},
                       headers=officer).status_code == 409
    r = client.post(f"/v1/hot-issues/{lamp['id']}/split", json={"complaint_ids": ["noise-1"]},
                    headers=officer)
    assert r.status_code == 200, r.text
    new = r.json()
    assert [c["id"] for c in new["complaints"]] == ["noise-1"] and new["id"] != lamp["id"]
    assert sorted(len(i["complaint_ids"]) for i in _list(client, headers)["issues"]) == [1, 2]
    with client.app.state.services.store.sessions() as s:
        trail = service.audit_trail(s, "hot_issue", lamp["id"])
    assert [t.action for t in trail] == ["hot_issue.merged", "hot_issue.split"]
    assert all(t.actor.startswith("test officer (") for t in trail)


@pytest.mark.parametrize("params, field", [
    ({"from": "2018-04-10", "to": "2018-04-01"}, "from"),
    ({"from": "2017-01-01", "to": "2018-04-01"}, "from"),
    ({"from": "2018-13-01"}, "from"),
    ({"top": 0}, "top"),
    ({"district": " "}, "district"),
    ({"district": "龙华\x01"}, "district"),
])
def test_bad_parameters_are_clear_422s(client, headers, params, field):
    r = client.get("/v1/hot-issues", params=params, headers=headers["officer"])
    assert r.status_code == 422, r.text
    assert field in r.text


@pytest.mark.parametrize("path, body, status", [
    ("/v1/hot-issues/1/merge", {"into": "2"}, 422),
    ("/v1/hot-issues/1/merge", {"into": 1}, 422),
    ("/v1/hot-issues/1/merge", {"into": 999}, 404),
    ("/v1/hot-issues/999/merge", {"into": 1}, 404),
    ("/v1/hot-issues/1/split", {"complaint_ids": []}, 422),
    ("/v1/hot-issues/1/split", {"complaint_ids": ["nope"]}, 422),
    ("/v1/hot-issues/1/split", {"complaint_ids": ["lamp-1", "lamp-2"]}, 422),
    ("/v1/hot-issues/1/split", {"complaint_ids": ["lamp-1"], "why": "x"}, 422),
])
def test_bad_changes_are_refused_and_change_nothing(client, headers, path, body, status):
    _register(client, headers)
    issues = _list(client, headers)["issues"]
    assert issues[0]["id"] == 1
    r = client.post(path, json=body, headers=headers["officer"])
    assert r.status_code == status, r.text
    assert _list(client, headers)["issues"] == issues


def test_hot_issues_need_an_officer_key(client, headers):
    assert client.get("/v1/hot-issues", headers=headers["intake"]).status_code == 403
    assert client.get("/v1/hot-issues").status_code == 401
    assert client.post("/v1/hot-issues/1/merge", json={"into": 2},
                       headers=headers["intake"]).status_code == 403
    assert client.get("/v1/hot-issues", headers=headers["admin"]).status_code == 200
