"""Registered complaints and their duplicates: /v1/complaints, duplicates in /v1/route, the index
following hot swaps and restarts (serving/duplicates.py)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.index import SimilarityIndex
from model.lexical import blend
from model.normalize import normalize_text
from model.router import Router
from serving.app import create_app
from serving.duplicates import DuplicatePolicy, DuplicateService, Entry, Query
from serving.settings import load_settings
from serving.storage import open_store

# Real Haikou 12345 complaints; PARAPHRASE retells ORIGINAL in other words.
ORIGINAL = "龙华区南沙路坡博新村二巷102号处有一盏路灯不亮，晚上出行很不方便"
PARAPHRASE = "南沙路坡博新村二巷102号那里的路灯坏了不亮，晚上走路看不见"
UNRELATED = "其原来在公司上班有社保，请问辞职出来了个人社保怎么交费？"
OTHER = "秀英区向荣北路金美花园外面很多机动车违停"
# ORIGINAL as an operator would log it: prefix, instruction, other spacing. Same normalised text.
RELOGGED = "市民来电反映:  龙华区南沙路坡博新村二巷102号处有一盏路灯不亮，晚上出行很不方便 请交警核实处理!"


@pytest.fixture
def dup_settings(tmp_path, bundles_dir, key_file):
    """Settings with their own database and index folder; floor 0.3 so paraphrases show."""
    def make(**overrides):
        values = dict(bundles_dir=bundles_dir, api_keys_file=key_file[0],
                      demo_keys_file=tmp_path / "demo-keys.txt", batch_max_wait_ms=2,
                      database_url=f"sqlite:///{tmp_path / 'huying.db'}",
                      index_dir=tmp_path / "index", duplicate_floor=0.3,
                      duplicate_threshold=0.95, index_save_interval_s=0.2)
        values.update(overrides)
        return load_settings(**values)
    return make


@pytest.fixture
def app_client(dup_settings):
    with TestClient(create_app(dup_settings())) as c:
        yield c


def _register(client, headers, *complaints, role="intake"):
    return client.post("/v1/complaints", json={"complaints": list(complaints)},
                       headers=headers[role])


def _c(id_, text, **extra):
    return {"id": id_, "text": text, **extra}


def _similar(client, headers, id_, role="officer", **params):
    return client.get(f"/v1/complaints/{id_}/similar", params=params, headers=headers[role])


# ------------------------------------------------------------------ POST /v1/complaints


def test_register_routes_stores_and_finds_duplicates_before_adding_itself(app_client, headers):
    r = _register(app_client, headers, _c("a1", ORIGINAL, channel="12345热线"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["registered"], out["routed"], out["errors"]) == (1, 1, 0)
    [result] = out["results"]
    assert result["routing"]["model_version"] == "tiny-v1"
    assert result["duplicates"] == []  # not itself

    r = _register(app_client, headers, _c("a2", RELOGGED), _c("a3", UNRELATED))
    first, second = r.json()["results"]
    assert first["duplicates"][0] == {"id": "a1", "similarity": 1.0, "same_event": True,
                                      "exact": True}
    assert "a1" not in [d["id"] for d in second["duplicates"] if d["exact"]]
    assert all(i in app_client.app.state.services.duplicates for i in ("a1", "a2", "a3"))


def test_register_logs_the_routing_and_review_decisions_join_the_queue(app_client, headers):
    r = _register(app_client, headers, _c("q1", OTHER))
    decision = r.json()["results"][0]["routing"]["decision"]
    from serving.store import service

    with app_client.app.state.services.store.sessions() as s:
        assert service.get_complaint(s, "q1").text == OTHER
        trail = service.audit_trail(s, "complaint", "q1")
        assert [e.action for e in trail] == ["complaint.registered"]
        page = service.list_queue(s, service.QueueFilter(status=None))
        assert ("q1" in [i.complaint_id for i in page.items]) == (decision == "review")


def test_an_earlier_complaint_of_the_same_request_is_a_duplicate(app_client, headers):
    r = _register(app_client, headers, _c("b1", ORIGINAL), _c("b2", RELOGGED))
    first, second = r.json()["results"]
    assert first["duplicates"] == []
    assert second["duplicates"][0]["id"] == "b1" and second["duplicates"][0]["exact"]


def test_the_similarity_is_the_bundles_blend_of_embedding_and_lexical_cosines(
        app_client, headers, tiny_bundle):
    router = Router.load(tiny_bundle.path)
    assert router.lexical is not None
    original, paraphrase = router.embed([ORIGINAL, PARAPHRASE])
    lexical = router.lexical.cosine(normalize_text(ORIGINAL), normalize_text(PARAPHRASE))
    expected = blend(float(original @ paraphrase), lexical)
    _register(app_client, headers, _c("s1", ORIGINAL))
    r = _register(app_client, headers, _c("s2", ORIGINAL), _c("s3", PARAPHRASE))
    found = {d["id"]: d for d in r.json()["results"][1]["duplicates"]}
    for id_ in ("s1", "s2"):  # from the index, and from earlier in the same request
        # (int8 activations are scaled per batch: embeddings move a little with their batch)
        assert found[id_]["similarity"] == pytest.approx(expected, abs=0.01)
        assert not found[id_]["exact"]


def test_bad_items_get_errors_and_are_not_registered(app_client, headers):
    _register(app_client, headers, _c("c1", ORIGINAL))
    r = _register(app_client, headers, _c("c1", OTHER), _c("c2", "   "), {"text": OTHER},
                  _c("c3", UNRELATED))
    assert r.status_code == 200
    out = r.json()
    codes = [x["error"]["code"] if x["error"] else None for x in out["results"]]
    assert codes == ["already_registered", "empty_text", "missing_field", None]
    assert out["results"][0]["routing"] is None
    assert (out["registered"], out["routed"], out["errors"]) == (1, 1, 3)
    assert _similar(app_client, headers, "c2").status_code == 404
    # c1 kept its first text: a repeat of OTHER is not an exact repeat of c1
    routed = app_client.post("/v1/route", json={"complaints": [_c("x", OTHER)]},
                             headers=headers["intake"]).json()
    assert "c1" not in [d["id"] for d in routed["results"][0]["duplicates"] if d["exact"]]


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"not json", 400, "invalid_json"),
    (b"[1, 2]", 422, "invalid_body"),
    (b'{"complaints": []}', 422, "no_complaints"),
    (b"", 400, "empty_body"),
])
def test_unreadable_bodies_are_refused_whole(app_client, headers, body, status, code):
    r = app_client.post("/v1/complaints", content=body, headers=headers["intake"])
    assert r.status_code == status and r.json()["error"]["code"] == code


def test_auth_per_endpoint(app_client, headers):
    body = {"complaints": [_c("d1", ORIGINAL)]}
    assert app_client.post("/v1/complaints", json=body).status_code == 401
    assert app_client.post("/v1/complaints", json=body,
                           headers={"Authorization": "Bearer hy_00000000_nope"}).status_code == 401
    r = app_client.post("/v1/complaints", json=body, headers=headers["officer"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert app_client.post("/v1/complaints", json=body, headers=headers["admin"]).status_code == 200
    assert app_client.get("/v1/complaints/d1/similar").status_code == 401
    for role in ("intake", "officer", "admin"):
        assert _similar(app_client, headers, "d1", role=role).status_code == 200
    assert app_client.delete("/v1/complaints/d1").status_code == 401
    assert app_client.delete("/v1/complaints/d1", headers=headers["officer"]).status_code == 403
    assert app_client.delete("/v1/complaints/d1", headers=headers["admin"]).status_code == 200


# ------------------------------------------------------------------ similar and delete


def test_similar_ranks_exact_then_paraphrase_and_never_itself(app_client, headers):
    _register(app_client, headers, _c("e1", ORIGINAL), _c("e2", PARAPHRASE), _c("e3", UNRELATED),
              _c("e4", RELOGGED))
    r = _similar(app_client, headers, "e1")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["id"] == "e1" and out["model_version"] == "tiny-v1" and out["window_days"] == 30
    ids = [d["id"] for d in out["duplicates"]]
    assert "e1" not in ids
    assert ids[0] == "e4" and out["duplicates"][0]["exact"]
    assert "e2" in ids  # a paraphrase is at least similar
    sims = {d["id"]: d["similarity"] for d in out["duplicates"]}
    assert sims["e2"] > sims.get("e3", -1)
    assert _similar(app_client, headers, "e1", k=1).json()["duplicates"][0]["id"] == "e4"


@pytest.mark.parametrize("params", [{"k": 0}, {"k": 101}, {"window_days": 0}, {"k": "x"}])
def test_similar_refuses_bad_parameters(app_client, headers, params):
    _register(app_client, headers, _c("p1", ORIGINAL))
    r = _similar(app_client, headers, "p1", **params)
    assert r.status_code == 422 and r.json()["error"]["field"]


def test_delete_unknown_is_404(app_client, headers):
    r = app_client.delete("/v1/complaints/nope", headers=headers["intake"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert _similar(app_client, headers, "nope").status_code == 404


def test_delete_then_similar_never_returns_the_removed_id(app_client, headers):
    _register(app_client, headers, _c("f1", ORIGINAL), _c("f2", RELOGGED), _c("f3", PARAPHRASE))
    assert "f2" in [d["id"] for d in _similar(app_client, headers, "f1").json()["duplicates"]]
    r = app_client.delete("/v1/complaints/f2", headers=headers["intake"])
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "f2" and r.json()["removed"] is True
    assert "f2" not in [d["id"] for d in _similar(app_client, headers, "f1").json()["duplicates"]]
    routed = app_client.post("/v1/route", json={"complaints": [_c("x", RELOGGED)]},
                             headers=headers["intake"]).json()
    assert "f2" not in [d["id"] for d in routed["results"][0]["duplicates"]]
    assert app_client.delete("/v1/complaints/f2", headers=headers["intake"]).status_code == 404
    assert _similar(app_client, headers, "f2").status_code == 404
    # a removed id may be registered again
    assert _register(app_client, headers, _c("f2", OTHER)).json()["registered"] == 1


# ------------------------------------------------------------------ /v1/route


def test_route_returns_duplicates_and_registers_nothing(app_client, headers):
    _register(app_client, headers, _c("g1", ORIGINAL, received_at="2018-04-08T09:30:00+08:00"))
    body = {"complaints": [_c("r1", RELOGGED, received_at="2018-04-09T09:30:00+08:00"),
                           _c("r2", PARAPHRASE, received_at="2018-04-09T09:30:00+08:00"),
                           _c("r3", RELOGGED, received_at="2018-06-01T09:30:00+08:00"),
                           _c("r4", RELOGGED, received_at="2018-04-01T09:30:00+08:00")]}
    out = app_client.post("/v1/route", json=body, headers=headers["intake"]).json()
    exact, paraphrase, too_late, before = (r["duplicates"] for r in out["results"])
    assert exact == [{"id": "g1", "similarity": 1.0, "same_event": True, "exact": True}]
    assert paraphrase and paraphrase[0]["id"] == "g1" and not paraphrase[0]["exact"]
    assert too_late == [] and before == []  # outside the 30 days before the complaint
    assert _similar(app_client, headers, "r1").status_code == 404  # route does not register


def test_metadata_filters_from_settings_and_request(dup_settings, headers):
    with TestClient(create_app(dup_settings(duplicate_match=("channel",)))) as c:
        _register(c, headers, _c("h1", ORIGINAL, channel="12345热线"),
                  _c("h2", RELOGGED, channel="微信"), _c("h3", RELOGGED, channel="12345热线"))
        routed = c.post("/v1/route", json={"complaints": [_c("x", ORIGINAL, channel="微信")]},
                        headers=headers["intake"]).json()
        assert [d["id"] for d in routed["results"][0]["duplicates"]] == ["h2"]
        assert [d["id"] for d in _similar(c, headers, "h1").json()["duplicates"]] == ["h3"]
        ids = [d["id"] for d in _similar(c, headers, "h1", same_channel=False).json()["duplicates"]]
        assert {"h2", "h3"} <= set(ids)


# ------------------------------------------------------------------ the index's life


def test_index_persists_across_restarts_with_the_same_answers(dup_settings, headers, tmp_path):
    settings = dup_settings()
    with TestClient(create_app(settings)) as c:
        _register(c, headers, _c("i1", ORIGINAL), _c("i2", PARAPHRASE), _c("i3", RELOGGED),
                  _c("i4", UNRELATED))
        c.delete("/v1/complaints/i4", headers=headers["intake"])
        before = [_similar(c, headers, i).json() for i in ("i1", "i2")]
    assert (tmp_path / "index" / "tiny-v1" / "index.npz").is_file()
    with TestClient(create_app(settings)) as c:
        assert c.app.state.services.duplicates.last_build["how"].startswith("loaded")
        assert [_similar(c, headers, i).json() for i in ("i1", "i2")] == before


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_a_damaged_index_file_is_rebuilt_from_the_store_and_readyz_says_so(dup_settings,
                                                                          headers, tmp_path,
                                                                          damage):
    settings = dup_settings()
    with TestClient(create_app(settings)) as c:
        _register(c, headers, _c("i1", ORIGINAL), _c("i2", RELOGGED))
        before = _similar(c, headers, "i1").json()
    saved = tmp_path / "index" / "tiny-v1" / "index.npz"
    data = saved.read_bytes()
    saved.write_bytes(b"not an index" * 10 if damage == "corrupt" else data[:len(data) // 2])
    with TestClient(create_app(settings)) as c:
        index = c.get("/readyz").json()["similarity_index"]
        assert index["last_build"] == "rebuilt (saved index unusable)" and index["size"] == 2
        assert _similar(c, headers, "i1").json() == before


def test_complaints_registered_after_the_last_save_are_recovered_from_the_store(dup_settings,
                                                                               headers):
    settings = dup_settings(index_save_interval_s=3600)  # never saved while running
    with TestClient(create_app(settings)) as c:
        _register(c, headers, _c("j1", ORIGINAL))
        c.app.state.services.duplicates.save()
        _register(c, headers, _c("j2", RELOGGED))
        c.app.state.services.duplicates.close = lambda: None  # a crash: no save at shutdown
    with TestClient(create_app(settings)) as c:
        assert c.app.state.services.duplicates.last_build["how"].endswith("(+1 from the store)")
        assert [d["id"] for d in _similar(c, headers, "j1").json()["duplicates"]] == ["j2"]


def test_a_removal_lost_in_a_crash_triggers_a_rebuild(dup_settings, headers):
    settings = dup_settings(index_save_interval_s=3600)
    with TestClient(create_app(settings)) as c:
        _register(c, headers, _c("k1", ORIGINAL), _c("k2", RELOGGED))
        c.app.state.services.duplicates.save()
        c.delete("/v1/complaints/k2", headers=headers["intake"])
        c.app.state.services.duplicates.close = lambda: None
    with TestClient(create_app(settings)) as c:
        assert c.app.state.services.duplicates.last_build["how"].startswith("rebuilt")
        assert _similar(c, headers, "k1").json()["duplicates"] == []


def test_hot_swap_rebuilds_the_index_for_the_new_version(app_client, headers, tmp_path):
    _register(app_client, headers, _c("l1", ORIGINAL), _c("l2", PARAPHRASE))
    before = _similar(app_client, headers, "l1").json()["duplicates"]
    r = app_client.post("/v1/admin/model", json={"version": "tiny-v2"}, headers=headers["admin"])
    assert r.status_code == 200, r.text
    duplicates = app_client.app.state.services.duplicates
    assert duplicates.wait_ready(timeout=60)
    assert duplicates.status()["model_version"] == "tiny-v2" and duplicates.status()["size"] == 2
    assert (tmp_path / "index" / "tiny-v2" / "index.npz").is_file()
    assert (tmp_path / "index" / "tiny-v1" / "index.npz").is_file()  # the old one is kept
    out = _similar(app_client, headers, "l1").json()
    assert out["model_version"] == "tiny-v2"
    # tiny-v2 is the same network under another version: the same neighbours, re-embedded
    assert [d["id"] for d in out["duplicates"]] == [d["id"] for d in before]
    assert _register(app_client, headers, _c("l3", RELOGGED)).json()["results"][0][
        "duplicates"][0]["id"] == "l1"


def test_a_store_failure_leaves_store_and_index_as_they_were(dup_settings, headers, monkeypatch):
    from serving.store import service

    with TestClient(create_app(dup_settings()), raise_server_exceptions=False) as c:
        _register(c, headers, _c("m1", ORIGINAL))
        duplicates = c.app.state.services.duplicates
        size = len(duplicates)

        def broken(*args, **kwargs):
            raise RuntimeError("disk full")

        monkeypatch.setattr(service, "register_routed", broken)
        r = _register(c, headers, _c("m2", RELOGGED))
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
        assert len(duplicates) == size and "m2" not in duplicates
        monkeypatch.undo()
        assert _similar(c, headers, "m2").status_code == 404
        assert _register(c, headers, _c("m2", RELOGGED)).json()["registered"] == 1


def test_an_index_failure_is_logged_and_repaired_from_the_store(app_client, headers, monkeypatch):
    duplicates = app_client.app.state.services.duplicates
    real_add = SimilarityIndex.add
    calls = []

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("no room")
        return real_add(self, *args, **kwargs)

    monkeypatch.setattr(SimilarityIndex, "add", flaky)
    r = _register(app_client, headers, _c("n1", ORIGINAL))
    assert r.status_code == 200 and r.json()["registered"] == 1  # the store has it
    assert duplicates.wait_ready(timeout=30)
    assert "n1" in duplicates
    assert duplicates.last_build["how"] == "rebuilt"


def test_without_a_calibrated_bundle_or_settings_the_defaults_are_used(dup_settings):
    from serving.duplicates import DEFAULT_FLOOR, DEFAULT_SAME_EVENT

    with TestClient(create_app(dup_settings(duplicate_threshold=None,
                                            duplicate_floor=None))) as c:
        limits = c.app.state.services.duplicates.thresholds()
        assert (limits.same_event, limits.floor, limits.source) == (
            DEFAULT_SAME_EVENT, DEFAULT_FLOOR, "default")
    with TestClient(create_app(dup_settings(duplicate_threshold=0.9))) as c:
        assert c.app.state.services.duplicates.thresholds().source == "settings"


# ------------------------------------------------------------------ the service during a rebuild


class _HeldRouter:
    """A router whose embeddings wait for `release` (a slow rebuild), under another version."""

    def __init__(self, router: Router, version: str):
        self._router = router
        self.version = version
        self.bundle = router.bundle
        self.lexical = router.lexical
        self.release = threading.Event()

    def embed(self, texts):
        self.release.wait(30)
        return self._router.embed(texts)


def test_answers_continue_during_a_rebuild_and_writes_are_replayed(tmp_path, tiny_bundle):
    store = open_store(f"sqlite:///{tmp_path / 'huying.db'}")
    router = Router.load(tiny_bundle.path)
    service = DuplicateService(store.sessions, tmp_path / "index",
                               DuplicatePolicy(floor=0.3, threshold=0.95), save_interval_s=0.05)
    service.start()
    try:
        from serving.store import service as store_service

        with store.sessions() as s:
            store_service.register_complaints(s, [store_service.NewComplaint("o1", ORIGINAL)],
                                              actor="t")
        now = datetime.now(UTC)
        service.use_router(router)
        assert service.wait_ready(30)

        held = _HeldRouter(router, "tiny-v9")
        service.use_router(held)  # type: ignore[arg-type]
        query = Query(id=None, text=RELOGGED, text_hash=_hash(RELOGGED),
                      embedding=router.embed([RELOGGED])[0], model_version="tiny-v9", time=now)
        # meanwhile: the old index answers, the query re-embedded with the old router
        assert [d.id for d in service.search([query])[0]] == ["o1"]
        with store.sessions() as s:
            store_service.register_complaints(s, [store_service.NewComplaint("o2", RELOGGED)],
                                              actor="t")
        service.add([Entry("o2", RELOGGED, _hash(RELOGGED), now, {},
                           router.embed([RELOGGED])[0], "tiny-v9")])
        service.remove(["o1"])
        assert service.status()["model_version"] == "tiny-v1" and not service.ready
        held.release.set()
        assert service.wait_ready(30)
        assert service.status()["model_version"] == "tiny-v9"
        assert [d.id for d in service.search([query])[0]] == ["o2"]
    finally:
        service.close()
        store.close()


def _hash(text: str) -> str:
    from model.normalize import text_hash

    return text_hash(text)


def test_no_embedding_of_another_model_enters_an_index(tmp_path, tiny_bundle):
    store = open_store(f"sqlite:///{tmp_path / 'huying.db'}")
    router = Router.load(tiny_bundle.path)
    service = DuplicateService(store.sessions, tmp_path / "index")
    service.use_router(router)
    service.build(router)
    foreign = np.ones(router.embed(["x"]).shape[1], np.float32)  # "another model's" vector
    service.add([Entry("z1", ORIGINAL, _hash(ORIGINAL), datetime.now(UTC) - timedelta(days=1),
                       {}, foreign, "other-model")])
    # the stored vector is the served model's own embedding of the text, not the foreign one
    query = Query(id=None, text=ORIGINAL, text_hash="no exact match",
                  embedding=router.embed([ORIGINAL])[0], model_version=router.version,
                  time=datetime.now(UTC))
    [[match]] = service.search([query], DuplicatePolicy(floor=-1.0, threshold=0.99))
    assert match.id == "z1" and match.similarity > 0.999 and not match.exact
    store.close()


_values = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
           | st.sampled_from(["", "\x00", "\ud800", "路灯不亮", ORIGINAL, "A" * 600]))
_items = st.fixed_dictionaries(
    {"id": st.text(max_size=10) | st.integers() | _values, "text": st.text(max_size=60) | _values},
    optional={"channel": st.text(max_size=70) | _values, "location": st.text(max_size=600),
              "received_at": st.sampled_from(["2018-04-08T09:30:00+08:00", "2018-04-08T09:30:00",
                                              "2018-13-45"]) | _values})


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(items=st.lists(_items | _values, min_size=1, max_size=6))
def test_no_registration_body_gets_a_5xx(app_client, headers, items):
    r = app_client.post("/v1/complaints", content=json.dumps({"complaints": items}).encode(),
                        headers=headers["intake"])
    assert r.status_code < 500, r.text
    if r.status_code == 200:
        out = r.json()
        assert out["routed"] + out["errors"] == len(out["results"]) == len(items)
        for result in out["results"]:
            assert (result["routing"] is None) != (result["error"] is None)
            text = items[result["index"]]["text"] if result["routing"] is not None else ""
            if normalize_text(text):  # registered with words left: in the index
                assert result["id"] in app_client.app.state.services.duplicates


def test_a_bundle_with_a_pair_model_serves_its_probability_as_the_score(dup_settings, bundles_dir,
                                                                        headers):
    from model.pair_model import PairModel

    model = PairModel((4.0, 4.0, 0.3, 3.0, -3.0, 1.0, -3.0, -0.5, 0.5), intercept=-5.0)
    bundle = bundles_dir / "tiny-v1"
    (bundle / "duplicates.json").write_text(json.dumps(
        {"same_event": 0.5, "floor": 0.001, "pair_model": model.to_dict()}), encoding="utf-8")
    router = Router.load(bundle)
    a, b = normalize_text(ORIGINAL), normalize_text(PARAPHRASE)
    ea, eb = router.embed([ORIGINAL, PARAPHRASE])
    cosine = float(ea @ eb / (np.linalg.norm(ea) * np.linalg.norm(eb)))
    expected = float(model.score([cosine], router.lexical, b, [a], [-1.0])[0])
    settings = dup_settings(duplicate_threshold=None, duplicate_floor=None)
    with TestClient(create_app(settings)) as c:
        _register(c, headers, _c("p1", ORIGINAL, received_at="2018-04-08T09:00:00+08:00"))
        r = _register(c, headers, _c("p2", PARAPHRASE, received_at="2018-04-09T09:00:00+08:00"),
                      _c("p3", PARAPHRASE + "。", received_at="2018-04-09T10:00:00+08:00"))
    results = r.json()["results"]
    [found] = [d for d in results[0]["duplicates"] if d["id"] == "p1"]
    assert found["similarity"] == pytest.approx(expected, abs=1e-3)
    assert found["same_event"] == (expected >= 0.5) and not found["exact"]
    # only punctuation apart from p2, earlier in the same request: an exact repeat
    assert [d["id"] for d in results[1]["duplicates"] if d["exact"]] == ["p2"]


def test_a_pair_model_of_other_features_falls_back_to_the_blend_and_its_defaults(bundles_dir):
    """A bundle fitted before the pair model's features changed: scored by the blend, with the
    blend's default thresholds (the bundle's are on the old model's scale), not refused."""
    from serving.duplicate_policy import (
        DEFAULT_SAME_EVENT,
        DuplicatePolicy,
        pair_model_of,
        thresholds_for,
    )

    bundle = bundles_dir / "tiny-v1"
    old = {"features": ["embedding_cosine", "lexical_cosine"], "coefficients": [1.0, 1.0],
           "intercept": 0.0}
    (bundle / "duplicates.json").write_text(json.dumps(
        {"same_event": 0.83, "floor": 0.5, "pair_model": old}), encoding="utf-8")
    router = Router.load(bundle)
    assert pair_model_of(router) is None
    thresholds = thresholds_for(router, DuplicatePolicy())
    assert (thresholds.same_event, thresholds.source) == (DEFAULT_SAME_EVENT, "default")
