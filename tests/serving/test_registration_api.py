"""Registering complaints fails closed: bad fields are per-item 422s, nothing half-stored, on
SQLite and PostgreSQL; statement parameters (complaint texts) never reach the server log."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from serving.app import create_app

TEXT = "龙华区南沙路坡博新村二巷102号处有一盏路灯不亮，电话13800138000"


@pytest.fixture
def client(settings, backend_url):
    with TestClient(create_app(settings.model_copy(update={"database_url": backend_url})),
                    raise_server_exceptions=False) as c:
        yield c


def _register(client, headers, *complaints):
    return client.post("/v1/complaints", json={"complaints": list(complaints)},
                       headers=headers["intake"])


def _count(client, table: str) -> int:
    engine = client.app.state.services.store.engine
    with engine.connect() as c:
        return int(c.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.mark.parametrize("received", ["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00",
                                      "0001-01-01T00:00:00+14:00", "1900-01-01T00:00:00Z"])
def test_an_extreme_received_at_is_an_item_error_and_the_rest_registers(client, headers,
                                                                        received):
    r = _register(client, headers, {"id": "good", "text": TEXT},
                  {"id": "bad", "text": TEXT, "received_at": received})
    assert r.status_code == 200, r.text
    good, bad = r.json()["results"]
    assert good["error"] is None and bad["routing"] is None
    assert bad["error"]["code"] == "received_at_out_of_range"
    assert bad["error"]["field"] == "complaints[1].received_at"
    assert r.json()["registered"] == 1
    assert _count(client, "complaints") == _count(client, "routing_log") == 1
    again = _register(client, headers, {"id": "bad", "text": TEXT})  # nothing was kept of it
    assert again.json()["registered"] == 1
    routed = client.post("/v1/route", json={"complaints": [{"id": "x", "text": TEXT,
                                                            "received_at": received}]},
                         headers=headers["intake"])
    assert routed.status_code == 200
    assert routed.json()["results"][0]["error"]["code"] == "received_at_out_of_range"


@pytest.mark.parametrize("field", ["id", "channel", "location"])
def test_a_nul_byte_is_refused_or_made_storable_and_never_logged(client, headers, caplog, field):
    item = {"id": "n1", "text": TEXT, "channel": "热线", "location": "龙华区"}
    item[field] = item[field] + "\x00x"
    with caplog.at_level(logging.DEBUG):
        r = _register(client, headers, item)
        similar = client.get("/v1/complaints/a%00b/similar", headers=headers["intake"])
    assert r.status_code == 200, r.text
    [result] = r.json()["results"]
    if field == "id":
        assert result["error"]["code"] == "invalid_id" and _count(client, "complaints") == 0
    else:
        assert result["error"] is None and r.json()["registered"] == 1
    assert similar.status_code == 422
    assert "13800138000" not in caplog.text and "路灯" not in caplog.text


def test_a_routing_log_failure_registers_nothing(client, headers, monkeypatch):
    from serving.store import complaints

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(complaints, "log_routed", broken)
    r = _register(client, headers, {"id": "a", "text": TEXT})
    assert r.status_code == 500
    assert _count(client, "complaints") == _count(client, "review_items") == 0
    monkeypatch.undo()
    assert _register(client, headers, {"id": "a", "text": TEXT}).json()["registered"] == 1


@pytest.mark.parametrize("blank", ["\u200b\u200b", "\ufeff", " \u200d\u3000", "\x00"])
def test_invisible_only_text_is_empty(client, headers, blank):
    r = client.post("/v1/route", json={"complaints": [{"id": "z", "text": blank}]},
                    headers=headers["intake"])
    assert r.json()["results"][0]["error"]["code"] == "empty_text"
