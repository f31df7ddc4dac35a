"""POST /v1/route: success, every bad input, per-item errors, auth."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def client(started_app):
    """These tests change nothing the app serves: one started app for the module."""
    return started_app


def _body(*texts: str) -> dict:
    return {"complaints": [{"id": str(i), "text": t} for i, t in enumerate(texts)]}


def _error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return body["error"]


# ------------------------------------------------------------------ success


def test_routes_a_batch_in_order_with_duty_and_decision(client, headers, texts):
    body = {"complaints": [
        {"id": "20180408199687", "text": texts[0], "channel": "12345热线",
         "received_at": "2018-04-08T09:30:00+08:00", "location": "海口市秀英区向荣北路"},
        {"id": 7, "text": texts[1]},
        {"id": "c", "text": texts[2], "extra": "ignored"},
    ]}
    r = client.post("/v1/route", json=body, headers=headers["intake"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["request_id"] == r.headers["x-request-id"]
    assert out["model_version"] == "tiny-v1"
    assert (out["routed"], out["errors"]) == (3, 0)
    assert [x["id"] for x in out["results"]] == ["20180408199687", "7", "c"]
    assert [x["index"] for x in out["results"]] == [0, 1, 2]
    for result in out["results"]:
        routing = result["routing"]
        assert result["error"] is None and result["duplicates"] == []
        assert routing["decision"] in ("auto", "review")
        assert routing["model_version"] == "tiny-v1"
        for head in ("category", "subcategory", "department"):
            assert len(routing[head]["top"]) == 3
            assert routing[head]["top"][0]["label"] == routing[head]["label"]
            assert 0 <= routing[head]["confidence"] <= 1
        assert routing["subcategory"]["label"].split("/", 1)[0] == routing["category"]["label"]
        assert set(routing["duty"]) == {"category", "subcategory", "department", "time_limit",
                                        "legal_basis"}
        assert routing["duty"]["category"] == routing["category"]["label"]


def test_x_api_key_header_and_caller_request_id(client, keys, texts):
    r = client.post("/v1/route", json=_body(texts[0]),
                    headers={"X-API-Key": keys["intake"], "X-Request-ID": "desk-42.7"})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "desk-42.7" == r.json()["request_id"]
    # An unsafe caller id is replaced, not echoed.
    r = client.post("/v1/route", json=_body(texts[0]),
                    headers={"X-API-Key": keys["intake"], "X-Request-ID": "<script>"})
    assert r.headers["x-request-id"] != "<script>"


def test_content_type_is_not_required(client, headers, texts):
    raw = json.dumps(_body(texts[2]), ensure_ascii=False).encode("utf-8")
    form = {"Content-Type": "application/x-www-form-urlencoded"}  # what `curl -d` sends
    r = client.post("/v1/route", content=raw, headers={**headers["intake"], **form})
    assert r.status_code == 200 and r.json()["routed"] == 1


# ------------------------------------------------------- per-item errors


@pytest.mark.parametrize(("item", "code", "field"), [
    ({"id": "a", "text": ""}, "empty_text", "complaints[1].text"),
    ({"id": "a", "text": "   \n\t "}, "empty_text", "complaints[1].text"),
    ({"id": "a"}, "missing_field", "complaints[1].text"),
    ({"text": "路灯不亮"}, "missing_field", "complaints[1].id"),
    ({"id": "a", "text": 12345}, "wrong_type", "complaints[1].text"),
    ({"id": "a", "text": ["路灯"]}, "wrong_type", "complaints[1].text"),
    ({"id": None, "text": "路灯不亮"}, "wrong_type", "complaints[1].id"),
    ({"id": True, "text": "路灯不亮"}, "wrong_type", "complaints[1].id"),
    ({"id": "", "text": "路灯不亮"}, "invalid_id", "complaints[1].id"),
    ({"id": "a", "text": "路灯不亮", "channel": 3}, "wrong_type", "complaints[1].channel"),
    ({"id": "a", "text": "路灯不亮", "received_at": "yesterday"}, "invalid_field",
     "complaints[1].received_at"),
    ({"id": "a", "text": "路灯\ud800不亮"}, "invalid_unicode", "complaints[1].text"),
    ("路灯不亮", "wrong_type", "complaints[1]"),
    (None, "wrong_type", "complaints[1]"),
])
def test_a_bad_item_gets_its_error_and_the_others_are_routed(client, headers, texts, item, code,
                                                             field):
    body = {"complaints": [{"id": "ok-0", "text": texts[0]}, item,
                           {"id": "ok-2", "text": texts[1]}]}
    raw = json.dumps(body).encode()  # \uXXXX escapes: a lone surrogate stays expressible
    r = client.post("/v1/route", content=raw, headers=headers["intake"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["routed"], out["errors"]) == (2, 1)
    good0, bad, good2 = out["results"]
    assert good0["routing"] and good2["routing"] and bad["routing"] is None
    assert bad["index"] == 1
    assert bad["error"]["code"] == code
    assert bad["error"]["field"] == field
    assert bad["error"]["message"].startswith(field)


def test_text_over_the_limit_names_the_limit(client, headers, texts):
    long = "路灯不亮" * 1300  # 5200 characters
    r = client.post("/v1/route", json={"complaints": [{"id": "x", "text": long}]},
                    headers=headers["intake"])
    error = r.json()["results"][0]["error"]
    assert error["code"] == "text_too_long"
    assert "5200 characters" in error["message"] and "5000" in error["message"]
    assert "HUYING_MAX_TEXT_CHARS" in error["message"]


def test_a_repeated_id_is_an_item_error(client, headers, texts):
    body = {"complaints": [{"id": "1", "text": texts[0]}, {"id": 1, "text": texts[1]}]}
    out = client.post("/v1/route", json=body, headers=headers["intake"]).json()
    assert out["results"][0]["routing"] is not None
    assert out["results"][1]["error"]["code"] == "duplicate_id"
    assert out["results"][1]["id"] == "1"


def test_limits_come_from_the_settings_dependency(client, headers, settings, texts):
    from serving.deps import get_settings

    client.app.dependency_overrides[get_settings] = lambda: settings.model_copy(
        update={"max_text_chars": 10, "max_complaints": 2})
    try:
        out = client.post("/v1/route", json=_body(texts[0]), headers=headers["intake"]).json()
        assert "the limit is 10" in out["results"][0]["error"]["message"]
        r = client.post("/v1/route", json=_body("a", "b", "c"), headers=headers["intake"])
        assert r.status_code == 422 and "the limit is 2" in r.json()["error"]["message"]
    finally:
        client.app.dependency_overrides.clear()


# ---------------------------------------------------- whole-body errors


@pytest.mark.parametrize(("raw", "status", "code", "field"), [
    (b"", 400, "empty_body", "body"),
    (b"   ", 400, "empty_body", "body"),
    (b"\xff\xfe{}", 400, "invalid_utf8", "body"),
    ('{"complaints": [{"id": "1", "text": "路灯"}]}'.encode("gbk"), 400, "invalid_utf8", "body"),
    (b"{", 400, "invalid_json", "body"),
    (b"complaints=1", 400, "invalid_json", "body"),
    (b"[" * 100_000, 400, "invalid_json", "body"),
    (b"1" * 5000, 400, "invalid_json", "body"),
    (b"[]", 422, "invalid_body", "body"),
    (b'"text"', 422, "invalid_body", "body"),
    (b"{}", 422, "missing_field", "complaints"),
    (b'{"complaints": {"id": "1"}}', 422, "wrong_type", "complaints"),
    (b'{"complaints": null}', 422, "wrong_type", "complaints"),
    (b'{"complaints": []}', 422, "no_complaints", "complaints"),
])
def test_unusable_bodies_are_refused_whole_with_a_clear_error(client, headers, raw, status, code,
                                                              field):
    r = client.post("/v1/route", content=raw, headers=headers["intake"])
    assert r.status_code == status, r.text
    error = _error(r)
    assert (error["code"], error.get("field")) == (code, field)
    assert error["message"]


def test_too_many_complaints_names_the_limit(client, headers):
    r = client.post("/v1/route", json=_body(*["路灯不亮"] * 101), headers=headers["intake"])
    assert r.status_code == 422
    error = _error(r)
    assert error["code"] == "too_many_complaints" and error["field"] == "complaints"
    assert "101 complaints" in error["message"] and "limit is 100" in error["message"]


def test_a_huge_body_is_413_from_content_length(client, headers):
    raw = b'{"complaints": [{"id": "1", "text": "' + b"a" * (2 << 20) + b'"}]}'
    r = client.post("/v1/route", content=raw, headers=headers["intake"])
    assert r.status_code == 413
    error = _error(r)
    assert error["code"] == "body_too_large" and "1048576 bytes" in error["message"]


def test_a_huge_body_without_content_length_is_cut_off_while_reading(client, headers):
    chunk = b"a" * 65536

    def stream():  # chunked transfer: no Content-Length to check up front
        yield b'{"complaints": [{"id": "1", "text": "'
        for _ in range(40):
            yield chunk
        yield b'"}]}'

    r = client.post("/v1/route", content=stream(), headers=headers["intake"])
    assert r.status_code == 413 and _error(r)["code"] == "body_too_large"


# ------------------------------------------------------------------ auth


def test_no_key_is_401(client, texts):
    r = client.post("/v1/route", json=_body(texts[0]))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in _error(r)["message"]


@pytest.mark.parametrize("header", [
    {"Authorization": "Bearer hy_00000000_not-a-real-secret"},
    {"Authorization": "Bearer nonsense"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer "},
    {"X-API-Key": "hy_00000000_"},
])
def test_an_unknown_or_malformed_key_is_401(client, texts, header):
    r = client.post("/v1/route", json=_body(texts[0]), headers=header)
    assert r.status_code == 401 and _error(r)["code"] == "unauthorized"


def test_a_tampered_key_is_401(client, keys, texts):
    key = keys["intake"]
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    r = client.post("/v1/route", json=_body(texts[0]), headers={"X-API-Key": tampered})
    assert r.status_code == 401


def test_the_wrong_role_is_403_and_admin_may_route(client, headers, texts):
    r = client.post("/v1/route", json=_body(texts[0]), headers=headers["officer"])
    assert r.status_code == 403
    assert "intake" in _error(r)["message"]
    assert client.post("/v1/route", json=_body(texts[0]),
                       headers=headers["admin"]).status_code == 200


def test_auth_is_checked_before_the_body_is_read(client):
    r = client.post("/v1/route", content=b"\xff not json")
    assert r.status_code == 401


# ------------------------------------------------- duplicates extension


def test_a_duplicate_finder_fills_duplicates(settings, headers, texts):
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.schemas import DuplicatePublic

    calls = []

    class Finder:
        def find(self, complaints, routings):
            calls.append(([c.id for c in complaints], [r.embedding.shape for r in routings]))
            return [[DuplicatePublic(id=f"old-{c.id}", similarity=0.97, same_event=True, exact=False)]
                    for c in complaints]

    with TestClient(create_app(settings, duplicate_finder=Finder())) as c:
        body = {"complaints": [{"id": "a", "text": texts[0]}, {"id": "b", "text": " "}]}
        out = c.post("/v1/route", json=body, headers=headers["intake"]).json()
    assert calls and calls[0][0] == ["a"]  # only the routed complaints
    assert out["results"][0]["duplicates"] == [
        {"id": "old-a", "similarity": 0.97, "same_event": True, "exact": False}]
    assert out["results"][1]["duplicates"] == []


def test_a_failing_duplicate_finder_costs_no_routings(settings, headers, texts):
    from fastapi.testclient import TestClient

    from serving.app import create_app

    class Broken:
        def find(self, complaints, routings):
            raise RuntimeError("index offline")

    with TestClient(create_app(settings, duplicate_finder=Broken())) as c:
        r = c.post("/v1/route", json=_body(texts[0]), headers=headers["intake"])
        assert r.status_code == 200 and r.json()["results"][0]["routing"] is not None
        assert r.json()["results"][0]["duplicates"] == []
        assert 'huying_errors_total{code="duplicates_failed"} 1.0' in c.get("/metrics").text
