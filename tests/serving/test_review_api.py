"""The review API and POST /v1/feedback: success per endpoint, bad input, auth, claim conflicts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from model.taxonomy import DutyEntry, Taxonomy
from serving.app import create_app
from serving.auth import Role
from serving.settings import Settings, load_settings
from serving.store import service
from serving.store.db import make_engine, make_sessionmaker
from serving.store.tables import ReviewItem, RoutingLog

NOW = datetime.now(UTC)


@pytest.fixture
def settings(tmp_path, bundles_dir, key_file) -> Settings:
    """The serving settings with a SQLite file of this test's own."""
    return load_settings(bundles_dir=bundles_dir, api_keys_file=key_file[0],
                         demo_keys_file=tmp_path / "demo-keys.txt", batch_max_wait_ms=2,
                         database_url=f"sqlite:///{tmp_path / 'var' / 'huying.db'}",
                         index_dir=tmp_path / "var" / "index")


@pytest.fixture
def client(settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def db(settings, client) -> Iterator[Session]:
    """A session on the app's database (opened after the app migrated it)."""
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine)() as session:
        yield session
    engine.dispose()


@pytest.fixture(scope="module")
def taxonomy(tiny_bundle) -> Taxonomy:
    return tiny_bundle.taxonomy


@pytest.fixture(scope="module")
def entries(taxonomy) -> list[DutyEntry]:
    """Three duty-list entries with three different categories and departments."""
    chosen: list[DutyEntry] = []
    for e in taxonomy.entries:
        if e.department and all(e.category != c.category and e.department != c.department
                                for c in chosen):
            chosen.append(e)
    assert len(chosen) >= 3
    return chosen[:3]


def officer_of(keys: dict[str, str], role: str) -> str:
    """The officer name the API records for a key: 'test <role> (<key id>)'."""
    return f"test {role} ({keys[role].split('_')[1]})"


def suggestion(entry: DutyEntry, confidence: float, taxonomy: Taxonomy) -> dict[str, Any]:
    """What the router logs for a routing to `entry` (Routing.to_dict())."""
    others = [d for d in taxonomy.departments if d != entry.department][:2]

    def head(label: str, others: list[str], c: float) -> dict[str, Any]:
        top = [{"label": label, "confidence": c}]
        top += [{"label": o, "confidence": round((1 - c) / 3, 4)} for o in others]
        return {"label": label, "confidence": c, "top": top}

    keys = [k for k in taxonomy.subcategories if k != entry.key][:2]
    cats = [c for c in taxonomy.categories if c != entry.category][:2]
    return {"category": head(entry.category, cats, min(1.0, confidence + 0.2)),
            "subcategory": head(entry.key, keys, confidence),
            "department": head(entry.department, others, min(1.0, confidence + 0.1)),
            "duty": {"category": entry.category, "subcategory": entry.subcategory,
                     "department": entry.department, "time_limit": None, "legal_basis": None},
            "decision": "review", "model_version": "tiny-v1"}


def seed(db: Session, taxonomy: Taxonomy, entries: list[DutyEntry]) -> list[int]:
    """Three queued items: ids in queue order (due soonest; at equal due, least confident)."""
    specs = [  # (entry, confidence, due in hours, channel, age in hours, complaint id)
        (entries[0], 0.40, 5, "12345热线", 30, "c-late"),
        (entries[1], 0.30, 1, "微信小程序", 2, "c-urgent"),
        (entries[2], 0.20, 5, "12345热线", 1, "c-unsure"),
    ]
    ids = {}
    for entry, conf, due_h, channel, age_h, cid in specs:
        item = service.enqueue_review(
            db, text=f"投诉 {cid}：{entry.subcategory}", suggestion=suggestion(entry, conf, taxonomy),
            reason="low_confidence", actor="test", complaint_id=cid, channel=channel,
            received_at=NOW - timedelta(hours=age_h), due_at=NOW + timedelta(hours=due_h),
            model_version="tiny-v1")
        ids[cid] = item.id
    return [ids["c-urgent"], ids["c-unsure"], ids["c-late"]]


def error_of(response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


# ------------------------------------------------------------------ /v1/route logs every routing


def test_route_logs_every_routing_and_queues_the_reviews(client, headers, texts, db):
    complaints = [{"id": f"r{i}", "text": t, "channel": "12345热线",
                   "received_at": "2018-04-08T09:30:00"} for i, t in enumerate(texts)]
    r = client.post("/v1/route", json={"complaints": [*complaints, {"id": "bad", "text": " "}]},
                    headers=headers["intake"])
    assert r.status_code == 200, r.text
    out = r.json()
    logged = db.scalars(select(RoutingLog).order_by(RoutingLog.id)).all()
    assert [row.complaint_id for row in logged] == ["r0", "r1", "r2"]  # not the invalid one
    assert {row.request_id for row in logged} == {out["request_id"]}
    assert logged[0].text == texts[0] and logged[0].channel == "12345热线"
    # a time without zone is China time
    assert logged[0].received_at == datetime(2018, 4, 8, 1, 30, tzinfo=UTC)
    assert logged[0].suggestions["category"]["label"] == \
        out["results"][0]["routing"]["category"]["label"]
    reviews = [x["id"] for x in out["results"] if x["routing"] and
               x["routing"]["decision"] == "review"]
    queued = db.scalars(select(ReviewItem.complaint_id).order_by(ReviewItem.id)).all()
    assert queued == reviews
    q = client.get("/v1/review/queue", headers=headers["officer"]).json()
    assert q["total"] == len(reviews)


def test_both_paths_log_exactly_the_routing_they_answer(client, headers, texts, db):
    routed = client.post("/v1/route", json={"complaints": [{"id": "x1", "text": texts[0]}]},
                         headers=headers["intake"]).json()
    registered = client.post("/v1/complaints", json={"complaints": [{"id": "x2", "text": texts[1]}]},
                             headers=headers["intake"]).json()
    logged = {row.complaint_id: row.suggestions for row in db.scalars(select(RoutingLog))}
    assert logged["x1"] == routed["results"][0]["routing"]
    assert logged["x2"] == registered["results"][0]["routing"]


@pytest.mark.parametrize("path", ["/v1/route", "/v1/complaints"])
def test_a_log_that_cannot_be_written_is_a_503_on_both_paths(client, headers, texts, db, path,
                                                           monkeypatch):
    from sqlalchemy.exc import OperationalError

    from serving.store import complaints, queue

    def unavailable(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    for module in (complaints, queue):
        monkeypatch.setattr(module, "log_routed", unavailable)
    r = client.post(path, json={"complaints": [{"id": "lost", "text": texts[2]}]},
                    headers=headers["intake"])
    assert r.status_code == 503 and r.headers["retry-after"], r.text
    assert db.scalar(select(func.count()).select_from(RoutingLog)) == 0
    assert db.scalar(select(func.count()).select_from(ReviewItem)) == 0


# ------------------------------------------------------------------ queue


def test_queue_is_ordered_by_due_time_then_least_confidence(client, headers, db, taxonomy,
                                                             entries):
    order = seed(db, taxonomy, entries)
    r = client.get("/v1/review/queue", headers=headers["officer"])
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == 3 and page["limit"] == 50 and page["offset"] == 0
    assert [i["id"] for i in page["items"]] == order
    first = page["items"][0]
    assert first["complaint_id"] == "c-urgent" and first["status"] == "open"
    assert first["category"] == entries[1].category
    assert first["subcategory"] == entries[1].key
    assert first["department"] == entries[1].department
    assert first["confidence"] == 0.3 and first["channel"] == "微信小程序"
    r = client.get("/v1/review/queue", params={"limit": 1, "offset": 1},
                   headers=headers["officer"])
    assert r.json()["total"] == 3 and [i["id"] for i in r.json()["items"]] == order[1:2]


@pytest.mark.parametrize(("params", "expected"), [
    ({"department": "D1"}, ["c-urgent"]),
    ({"category": "C2"}, ["c-unsure"]),
    ({"channel": "12345热线"}, ["c-unsure", "c-late"]),
    ({"min_age": "3h"}, ["c-late"]),
    ({"max_age": "90min"}, ["c-unsure"]),
    ({"min_age": "1.5h", "max_age": "1d"}, ["c-urgent"]),
    ({"department": ""}, ["c-urgent", "c-unsure", "c-late"]),
])
def test_queue_filters(client, headers, db, taxonomy, entries, params, expected):
    seed(db, taxonomy, entries)
    names = {"D1": entries[1].department, "C2": entries[2].category}
    params = {k: names.get(v, v) for k, v in params.items()}
    r = client.get("/v1/review/queue", params=params, headers=headers["officer"])
    assert r.status_code == 200, r.text
    assert [i["complaint_id"] for i in r.json()["items"]] == expected


def test_queue_by_status(client, headers, db, taxonomy, entries):
    order = seed(db, taxonomy, entries)
    client.post(f"/v1/review/items/{order[0]}/claim", headers=headers["officer"])
    claimed = client.get("/v1/review/queue", params={"status": "claimed"},
                         headers=headers["officer"]).json()
    assert [i["id"] for i in claimed["items"]] == order[:1]
    assert claimed["items"][0]["claimed_by"] == officer_of(_keys(headers), "officer")
    every = client.get("/v1/review/queue", params={"status": "all"}, headers=headers["officer"])
    assert every.json()["total"] == 3


def _keys(headers: dict[str, dict[str, str]]) -> dict[str, str]:
    return {role: h["Authorization"].removeprefix("Bearer ") for role, h in headers.items()}


# ------------------------------------------------------------------ claims


def test_claim_next_takes_the_most_urgent_matching_item(client, headers, db, taxonomy, entries,
                                                        keys):
    order = seed(db, taxonomy, entries)
    r = client.post("/v1/review/claim-next", headers=headers["officer"])
    assert r.status_code == 200, r.text
    assert r.json()["id"] == order[0] and r.json()["status"] == "claimed"
    assert r.json()["claimed_by"] == officer_of(keys, "officer")
    mine = client.get("/v1/review/mine", headers=headers["officer"]).json()
    assert [i["id"] for i in mine] == order[:1]
    # with a filter, and skipping what is held
    r = client.post("/v1/review/claim-next", params={"channel": "12345热线"},
                    headers=headers["admin"])
    assert r.json()["id"] == order[1]
    r = client.post("/v1/review/claim-next", params={"channel": "微信小程序"},
                    headers=headers["admin"])
    assert r.status_code == 204 and r.content == b""


def test_claim_conflicts_with_another_officer(client, headers, db, taxonomy, entries, keys):
    item = seed(db, taxonomy, entries)[0]
    assert client.post(f"/v1/review/items/{item}/claim",
                       headers=headers["officer"]).status_code == 200
    # renewing one's own claim is fine
    assert client.post(f"/v1/review/items/{item}/claim",
                       headers=headers["officer"]).status_code == 200
    for method, path, body in (("POST", "claim", None), ("POST", "submit", {"kind": "accept"}),
                               ("PUT", "draft", {"kind": "accept"}), ("POST", "release", None)):
        r = client.request(method, f"/v1/review/items/{item}/{path}", json=body,
                           headers=headers["admin"])
        assert r.status_code == 409, (path, r.text)
        assert error_of(r)["code"] == "conflict"
    assert officer_of(keys, "officer") in error_of(
        client.post(f"/v1/review/items/{item}/claim", headers=headers["admin"]))["message"]


def test_release_gives_the_item_back_and_discards_the_draft(client, headers, db, taxonomy,
                                                            entries):
    item = seed(db, taxonomy, entries)[0]
    r = client.put(f"/v1/review/items/{item}/draft", json={"kind": "not_a_complaint"},
                   headers=headers["officer"])
    assert r.status_code == 200 and r.json()["status"] == "draft"
    r = client.post(f"/v1/review/items/{item}/release", headers=headers["officer"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "open" and r.json()["claimed_by"] is None
    detail = client.get(f"/v1/review/items/{item}", headers=headers["officer"]).json()
    assert detail["draft"] is None
    assert [x["status"] for x in detail["responses"]] == ["discarded"]
    actions = [e["action"] for e in detail["audit"]]
    assert actions[-2:] == ["review_item.released", "response.discarded"]
    # it is free again: another officer takes it
    assert client.post(f"/v1/review/items/{item}/claim",
                       headers=headers["admin"]).status_code == 200


# ------------------------------------------------------------------ one item


def test_item_detail_has_suggestions_duty_entry_draft_and_history(client, headers, db, taxonomy,
                                                                  entries):
    item = seed(db, taxonomy, entries)[0]
    entry = entries[1]
    draft = {"kind": "correct", "subcategory": entries[0].key, "note": "草稿"}
    assert client.put(f"/v1/review/items/{item}/draft", json=draft,
                      headers=headers["officer"]).status_code == 200
    r = client.get(f"/v1/review/items/{item}", headers=headers["officer"])
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["id"] == item and d["text"].startswith("投诉 c-urgent")
    for head in ("category", "subcategory", "department"):
        assert len(d["suggestion"][head]["top"]) == 3
    assert d["suggestion"]["subcategory"]["label"] == entry.key
    assert d["suggestion"]["subcategory"]["confidence"] == 0.3
    assert d["suggestion"]["decision"] == "review"
    assert d["duty"] == {"category": entry.category, "subcategory": entry.subcategory,
                         "department": entry.department, "time_limit": entry.time_limit,
                         "legal_basis": entry.legal_basis, "description": entry.description}
    assert d["similar"] == []
    assert d["draft"]["subcategory"] == entries[0].key and d["draft"]["note"] == "草稿"
    assert [e["action"] for e in d["audit"]] == [
        "review_item.enqueued", "review_item.claimed", "response.draft_saved"]
    # another officer sees the item, but not a draft of theirs
    assert client.get(f"/v1/review/items/{item}", headers=headers["admin"]).json()["draft"] is None


def test_item_detail_shows_similar_cases_from_the_duplicates_hook(client, headers, db, taxonomy,
                                                                  entries):
    item = seed(db, taxonomy, entries)[0]

    class Finder:
        def similar(self, text: str, *, limit: int) -> list[dict[str, Any]]:
            return [{"id": "2018-1", "similarity": 0.93, "kind": "near", "text": "旧案"}]

    client.app.state.services.duplicates = Finder()
    d = client.get(f"/v1/review/items/{item}", headers=headers["officer"]).json()
    assert d["similar"] == [{"id": "2018-1", "similarity": 0.93, "kind": "near", "text": "旧案"}]

    own = d["complaint_id"]

    class FindsItself:  # the index holds the item's own complaint: never its own duplicate
        def similar(self, text: str, *, limit: int) -> list[dict[str, Any]]:
            return [{"id": own, "similarity": 1.0, "kind": "exact", "text": text},
                    {"id": "2018-1", "similarity": 0.93, "kind": "near", "text": "旧案"}]

    client.app.state.services.duplicates = FindsItself()
    d = client.get(f"/v1/review/items/{item}", headers=headers["officer"]).json()
    assert own and [c["id"] for c in d["similar"]] == ["2018-1"]

    class Broken:
        def similar(self, text: str, *, limit: int) -> list[dict[str, Any]]:
            raise RuntimeError("index down")

    client.app.state.services.duplicates = Broken()
    r = client.get(f"/v1/review/items/{item}", headers=headers["officer"])
    assert r.status_code == 200 and r.json()["similar"] == []


# ------------------------------------------------------------------ answers


def test_accept_is_stored_with_officer_and_the_models_suggestion(client, headers, db, taxonomy,
                                                                 entries, keys):
    item = seed(db, taxonomy, entries)[0]
    r = client.post(f"/v1/review/items/{item}/submit", json={"kind": "accept"},
                    headers=headers["officer"])
    assert r.status_code == 200, r.text
    out = r.json()
    entry = entries[1]
    assert out["status"] == "submitted" and out["kind"] == "accept"
    assert (out["category"], out["subcategory"], out["department"]) == (
        entry.category, entry.key, entry.department)
    assert out["officer"] == officer_of(keys, "officer") and out["source"] == "review"
    assert out["model_version"] == "tiny-v1" and out["submitted_at"]
    [label] = service.submitted_labels(db)
    assert label.suggestion["subcategory"]["label"] == entry.key
    assert label.officer == officer_of(keys, "officer")
    trail = [e.action for e in service.audit_trail(db, "review_item", item)]
    assert trail[-1] == "review_item.done"
    assert [e.action for e in service.audit_trail(db, "response", out["id"])] == [
        "response.submitted"]
    # done: out of the queue, and a second submit conflicts
    assert item not in [i["id"] for i in client.get(
        "/v1/review/queue", headers=headers["officer"]).json()["items"]]
    again = client.post(f"/v1/review/items/{item}/submit", json={"kind": "accept"},
                        headers=headers["officer"])
    assert again.status_code == 409


@pytest.mark.parametrize("change", ["subcategory", "category", "department", "all"])
def test_correct_any_head(client, headers, db, taxonomy, entries, change):
    item = seed(db, taxonomy, entries)[0]  # suggested: entries[1]
    target = entries[0]
    other_dept = next(d for d in taxonomy.departments if d != entries[1].department)
    body = {"kind": "correct",
            "subcategory": {"subcategory": target.key},
            "category": {"category": target.category},
            "department": {"department": other_dept},
            "all": {"category": target.category, "subcategory": target.subcategory,
                    "department": target.department}}[change]
    body.setdefault("kind", "correct")
    r = client.post(f"/v1/review/items/{item}/submit", json=body, headers=headers["officer"])
    assert r.status_code == 200, r.text
    out = r.json()
    expected = {
        "subcategory": (target.category, target.key, entries[1].department),
        "category": (target.category, None, entries[1].department),
        "department": (entries[1].category, entries[1].key, other_dept),
        "all": (target.category, target.key, target.department)}[change]
    assert (out["category"], out["subcategory"], out["department"]) == expected
    assert out["kind"] == "correct"


def test_not_a_complaint_and_split(client, headers, db, taxonomy, entries):
    first, second, _ = seed(db, taxonomy, entries)
    r = client.post(f"/v1/review/items/{first}/submit",
                    json={"kind": "not_a_complaint", "note": "咨询"}, headers=headers["officer"])
    assert r.status_code == 200, r.text
    assert (r.json()["kind"], r.json()["category"], r.json()["note"]) == (
        "not_a_complaint", None, "咨询")
    parts = [{"text": "一", "subcategory": entries[0].key},
             {"category": entries[1].category, "department": entries[1].department}]
    r = client.post(f"/v1/review/items/{second}/submit", json={"kind": "split", "parts": parts},
                    headers=headers["officer"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["kind"] == "split" and out["category"] is None
    assert out["parts"][0]["category"] == entries[0].category
    assert out["parts"][0]["subcategory"] == entries[0].key and out["parts"][0]["text"] == "一"
    assert out["parts"][1]["department"] == entries[1].department


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "correct", "category": "没有这个分类"}, "category"),
    ({"kind": "correct", "department": "没有这个部门"}, "department"),
    ({"kind": "correct", "subcategory": "没有/这个"}, "subcategory"),
    ({"kind": "correct", "category": "C0", "subcategory": "S2"}, "subcategory"),
    ({"kind": "approve"}, "kind"),
    ({}, "kind"),
    ({"kind": "correct"}, "category"),
    ({"kind": "accept", "categroy": "x"}, "categroy"),
    ({"kind": "accept", "parts": [{"category": "C0"}, {"category": "C0"}]}, "parts"),
    ({"kind": "split", "parts": [{"category": "C0"}]}, "parts"),
    ({"kind": "split", "parts": [{"category": "C0"}, {"category": "没有"}]}, "parts[1].category"),
    ({"kind": "not_a_complaint", "department": "D0"}, "department"),
    ({"kind": "correct", "category": 3}, "category"),
    ({"kind": "correct", "note": "x" * 2001}, "note"),
])
def test_bad_answers_are_422_naming_the_field(client, headers, db, taxonomy, entries, body,
                                              field):
    item = seed(db, taxonomy, entries)[0]
    names = {"C0": entries[0].category, "S2": entries[2].key, "D0": entries[0].department}
    body = {k: names.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    if "parts" in body:
        body["parts"] = [{k: names.get(v, v) for k, v in p.items()} for p in body["parts"]]
    r = client.post(f"/v1/review/items/{item}/submit", json=body, headers=headers["officer"])
    assert r.status_code == 422, r.text
    assert error_of(r)["field"] == field, error_of(r)
    # nothing was stored; the item is still free
    assert service.responses_for(db, item) == []
    assert client.get(f"/v1/review/items/{item}", headers=headers["officer"]).json()[
        "status"] == "open"


def test_unpaired_surrogates_are_refused(client, headers, db, taxonomy, entries):
    item = seed(db, taxonomy, entries)[0]
    r = client.post(f"/v1/review/items/{item}/submit", headers=headers["officer"],
                    content=b'{"kind": "correct", "note": "\\ud800"}')
    assert r.status_code == 422, r.text
    assert error_of(r)["field"] == "note"


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "field"), [
    ("GET", "/v1/review/queue", {"params": {"min_age": "2 weeks"}}, 422, "min_age"),
    ("GET", "/v1/review/queue", {"params": {"max_age": "1e9d"}}, 422, "max_age"),
    ("GET", "/v1/review/queue", {"params": {"limit": 0}}, 422, "query.limit"),
    ("GET", "/v1/review/queue", {"params": {"status": "later"}}, 422, "query.status"),
    ("POST", "/v1/review/claim-next", {"params": {"min_age": "-1h"}}, 422, "min_age"),
    ("GET", "/v1/review/items/999999", {}, 404, None),
    ("GET", "/v1/review/items/0", {}, 422, "path.item_id"),
    ("GET", "/v1/review/items/99999999999999999999999", {}, 422, "path.item_id"),
    ("POST", "/v1/review/items/999999/claim", {}, 404, None),
    ("POST", "/v1/review/items/999999/submit", {"json": {"kind": "accept"}}, 404, None),
    ("POST", "/v1/review/items/1/submit", {"content": b"{not json"}, 400, None),
    ("PUT", "/v1/review/items/1/draft", {"json": ["accept"]}, 422, None),
])
def test_bad_requests(client, headers, method, path, kwargs, status, field):
    r = client.request(method, path, headers=headers["officer"], **kwargs)
    assert r.status_code == status, r.text
    if field is not None:
        assert error_of(r)["field"] == field


# ------------------------------------------------------------------ feedback


def test_feedback_records_the_final_routing_and_closes_the_review(client, headers, db, texts,
                                                                   taxonomy, entries, keys):
    r = client.post("/v1/route", json={"complaints": [{"id": "fb-1", "text": texts[2]}]},
                    headers=headers["intake"])
    routing = r.json()["results"][0]["routing"]
    target = entries[0]
    r = client.post("/v1/feedback", json={"complaint_id": "fb-1", "kind": "correct",
                                          "subcategory": target.key},
                    headers=headers["intake"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "submitted" and out["source"] == "test intake"
    assert out["officer"] is None and out["review_item_id"] is None
    assert (out["category"], out["subcategory"]) == (target.category, target.key)
    [label] = service.submitted_labels(db)
    assert label.complaint_id == "fb-1" and label.model_version == "tiny-v1"
    assert label.suggestion["category"]["label"] == routing["category"]["label"]
    open_items = db.scalar(select(func.count()).select_from(ReviewItem).where(
        ReviewItem.complaint_id == "fb-1", ReviewItem.status != "done"))
    assert open_items == 0  # queued (if it was) and closed by the feedback
    audit = service.audit_trail(db, "response", out["id"])
    assert [e.action for e in audit] == ["response.feedback"]
    assert audit[0].actor == officer_of(keys, "intake")


def test_feedback_for_an_unknown_complaint_needs_its_text(client, headers, entries):
    body = {"complaint_id": "never-seen", "kind": "correct", "category": entries[0].category}
    r = client.post("/v1/feedback", json=body, headers=headers["intake"])
    assert r.status_code == 404 and "text" in error_of(r)["message"]
    r = client.post("/v1/feedback", json={**body, "text": "路灯不亮"}, headers=headers["intake"])
    assert r.status_code == 200, r.text
    assert r.json()["category"] == entries[0].category


@pytest.mark.parametrize(("body", "field"), [
    ({"complaint_id": "a", "kind": "correct", "category": "没有", "text": "x"}, "category"),
    ({"kind": "accept", "text": "x"}, "complaint_id"),
    ({"complaint_id": " ", "kind": "accept", "text": "x"}, "complaint_id"),
    ({"complaint_id": "a", "kind": "accept", "text": "x"}, "kind"),  # no suggestion to accept
    ({"complaint_id": "a", "kind": "correct", "category": "C", "text": ""}, "text"),
])
def test_bad_feedback_is_422(client, headers, body, field):
    r = client.post("/v1/feedback", json=body, headers=headers["intake"])
    assert r.status_code == 422, r.text
    assert error_of(r)["field"] == field


# ------------------------------------------------------------------ auth

_REVIEW_CALLS = [
    ("GET", "/v1/review/queue", None), ("GET", "/v1/review/mine", None),
    ("POST", "/v1/review/claim-next", None), ("POST", "/v1/review/items/1/claim", None),
    ("GET", "/v1/review/items/1", None), ("PUT", "/v1/review/items/1/draft", {"kind": "accept"}),
    ("POST", "/v1/review/items/1/submit", {"kind": "accept"}),
    ("POST", "/v1/review/items/1/release", None),
]


@pytest.mark.parametrize(("method", "path", "body"), [
    *_REVIEW_CALLS, ("POST", "/v1/feedback", {"complaint_id": "a", "kind": "accept"})])
def test_a_key_is_required(client, method, path, body):
    r = client.request(method, path, json=body)
    assert r.status_code == 401 and error_of(r)["code"] == "unauthorized"
    r = client.request(method, path, json=body, headers={"Authorization": "Bearer hy_00000000_x"})
    assert r.status_code == 401


@pytest.mark.parametrize(("method", "path", "body"), _REVIEW_CALLS)
def test_review_needs_the_officer_role(client, headers, method, path, body):
    r = client.request(method, path, json=body, headers=headers["intake"])
    assert r.status_code == 403, r.text
    assert "officer" in error_of(r)["message"]
    # admin implies officer: past auth (404: there is no item 1 in an empty store)
    r = client.request(method, path, json=body, headers=headers["admin"])
    assert r.status_code in (200, 204, 404), r.text


def test_feedback_needs_the_intake_role(client, headers, entries):
    body = {"complaint_id": "a", "kind": "correct", "category": entries[0].category,
            "text": "路灯不亮"}
    r = client.post("/v1/feedback", json=body, headers=headers[Role.officer.value])
    assert r.status_code == 403 and "intake" in error_of(r)["message"]
    assert client.post("/v1/feedback", json=body, headers=headers["admin"]).status_code == 200


# ------------------------------------------------------------------ the page


def test_the_officer_page_and_its_files_are_served(client):
    r = client.get("/review")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'lang="zh-CN"' in r.text and "/static/review.js" in r.text
    for name, kind in (("review.js", "javascript"), ("review.css", "text/css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"], name
    assert "/review" not in client.get("/openapi.json").json()["paths"]


# ------------------------------------------------------------------ Idempotency-Key on writes


def test_a_retried_submit_gets_the_first_answer(client, headers, db, taxonomy, entries):
    item = seed(db, taxonomy, entries)[0]
    sent = {"headers": {**headers["officer"], "Idempotency-Key": "submit-1"},
            "json": {"kind": "accept"}}
    first = client.post(f"/v1/review/items/{item}/submit", **sent)
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    again = client.post(f"/v1/review/items/{item}/submit", **sent)  # not a 409: the same request
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert len(service.submitted_labels(db)) == 1
    other = client.post(f"/v1/review/items/{item}/submit", headers=sent["headers"],
                        json={"kind": "not_a_complaint"})
    assert other.status_code == 422 and error_of(other)["field"] == "Idempotency-Key"


def test_a_retried_claim_next_returns_the_same_item(client, headers, db, taxonomy, entries):
    order = seed(db, taxonomy, entries)
    sent = {**headers["officer"], "Idempotency-Key": "claim-1"}
    first = client.post("/v1/review/claim-next", headers=sent)
    again = client.post("/v1/review/claim-next", headers=sent)
    assert first.json()["id"] == again.json()["id"] == order[0]
    mine = client.get("/v1/review/mine", headers=headers["officer"]).json()
    assert [i["id"] for i in mine] == order[:1]  # one claim, not two
    # the query string is part of the request
    r = client.post("/v1/review/claim-next", params={"channel": "12345热线"}, headers=sent)
    assert r.status_code == 422 and error_of(r)["field"] == "Idempotency-Key"


def test_a_retried_feedback_is_one_label(client, headers, db, entries):
    body = {"complaint_id": "fb-retry", "kind": "correct", "category": entries[0].category,
            "text": "路灯不亮"}
    sent = {**headers["intake"], "Idempotency-Key": "fb-1"}
    answers = [client.post("/v1/feedback", json=body, headers=sent) for _ in range(3)]
    assert all(r.status_code == 200 for r in answers)
    assert len({r.json()["id"] for r in answers}) == 1
    assert len(service.submitted_labels(db)) == 1
    # another caller's key of the same name is another request
    r = client.post("/v1/feedback", json=body, headers={**headers["admin"], "Idempotency-Key": "fb-1"})
    assert r.status_code == 200 and r.json()["id"] != answers[0].json()["id"]


@pytest.mark.parametrize("key", ["", "has space", "长", "x" * 256])
def test_a_bad_idempotency_key_is_422(client, headers, entries, key):
    body = {"complaint_id": "fb-bad", "kind": "correct", "category": entries[0].category,
            "text": "路灯不亮"}
    r = client.post("/v1/feedback", json=body,
                    headers={**headers["intake"], "Idempotency-Key": key.encode()})
    assert r.status_code == 422, r.text
    assert "idempotency" in error_of(r)["field"].lower()
