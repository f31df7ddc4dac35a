"""Two replicas on one store and one bundles directory: what one registers or removes, the
other's similarity index follows within a second (it reads the audit log, the store's ordered
change log); a promotion through either, or the CLI, is served by both."""

from __future__ import annotations

import time
from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app

ORIGINAL = "龙华区南沙路坡博新村二巷102号处有一盏路灯不亮，晚上出行很不方便"
RELOGGED = "市民来电反映:  龙华区南沙路坡博新村二巷102号处有一盏路灯不亮，晚上出行很不方便 请交警核实处理!"
OTHER = "美兰区海甸五西路工地夜间施工噪音扰民，严重影响休息"


@pytest.fixture
def replicas(settings, backend_url, tmp_path):
    with ExitStack() as stack:
        yield [stack.enter_context(TestClient(create_app(settings.model_copy(update={
            "database_url": backend_url, "index_dir": tmp_path / f"index-{name}",
            "duplicate_threshold": 0.95, "index_follow_interval_s": 0.1,
            "model_follow_interval_s": 0.2})))) for name in "ab"]


def _within(seconds: float, check) -> float:
    """How long `check()` took to become true (fails the test past `seconds`)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            pytest.fail(f"not within {seconds} s")
        time.sleep(0.05)
    return time.monotonic() - started


def test_what_one_replica_registers_or_removes_the_other_sees_within_a_second(replicas,
                                                                              headers):
    a, b = replicas
    r = a.post("/v1/complaints", json={"complaints": [{"id": "e1", "text": ORIGINAL},
                                                      {"id": "e2", "text": OTHER}]},
               headers=headers["intake"])
    assert r.status_code == 200 and r.json()["registered"] == 2, r.text

    def b_finds_e1() -> bool:
        r = b.post("/v1/route", json={"complaints": [{"id": "q", "text": RELOGGED}]},
                   headers=headers["intake"])
        return any(d["id"] == "e1" and d["same_event"] for d in r.json()["results"][0]["duplicates"])

    _within(1.0, b_finds_e1)
    r = a.post("/v1/complaints", json={"complaints": [{"id": "e3", "text": RELOGGED}]},
               headers=headers["intake"])
    assert r.status_code == 200, r.text
    _within(1.0, lambda: any(d["id"] == "e3" for d in b.get(
        "/v1/complaints/e1/similar", headers=headers["officer"]).json()["duplicates"]))
    assert a.delete("/v1/complaints/e1", headers=headers["intake"]).status_code == 200
    _within(1.0, lambda: not b_finds_e1())
    # and B's own registrations reach A
    assert b.post("/v1/complaints", json={"complaints": [{"id": "e4", "text": ORIGINAL}]},
                  headers=headers["intake"]).status_code == 200
    _within(1.0, lambda: any(d["id"] == "e4" for d in a.get(
        "/v1/complaints/e3/similar", headers=headers["officer"]).json()["duplicates"]))


def test_a_promotion_through_one_replica_or_the_cli_reaches_every_replica(replicas, headers,
                                                                          settings):
    from model import versions

    a, b = replicas

    def serving(client) -> tuple[str, str, str | None]:
        ready = client.get("/readyz").json()
        model = client.get("/v1/model", headers=headers["intake"]).json()["version"]
        return model, ready["model_version"], ready["active_version"]

    assert serving(a) == serving(b) == ("tiny-v1", "tiny-v1", "tiny-v1")
    r = a.post("/v1/admin/model", json={"version": "tiny-v2"}, headers=headers["admin"])
    assert r.status_code == 200, r.text
    lag = _within(10.0, lambda: serving(b) == ("tiny-v2", "tiny-v2", "tiny-v2"))
    assert serving(a) == ("tiny-v2", "tiny-v2", "tiny-v2")
    # a rollback from the command line (it rewrites ACTIVE) reaches both
    versions.rollback(settings.bundles_dir, actor="cli")
    _within(10.0, lambda: serving(a)[0] == serving(b)[0] == "tiny-v1")
    assert lag < 10.0
