"""Admin model management: list bundles, swap in a good one, refuse a broken one."""

from __future__ import annotations

import asyncio
import json
import threading
from unittest.mock import ANY

import httpx
import pytest

from model.router import Router
from serving.app import create_app


def test_lists_bundles_with_metrics_and_which_is_active(client, headers):
    r = client.get("/v1/admin/models", headers=headers["admin"])
    assert r.status_code == 200
    out = r.json()
    assert out["serving"] == out["active"] == "tiny-v1"
    by_version = {b["version"]: b for b in out["bundles"]}
    assert set(by_version) == {"tiny-v1", "tiny-v2"}
    assert by_version["tiny-v1"]["active"] and by_version["tiny-v1"]["serving"]
    assert not by_version["tiny-v2"]["active"]
    assert set(by_version["tiny-v1"]["accuracy"]) == {"category", "subcategory", "department"}
    assert by_version["tiny-v1"]["dataset"] == "haikou12345"


def test_swap_by_version_serves_it_and_updates_active(client, headers, bundles_dir, texts):
    r = client.post("/v1/admin/model", json={"version": "tiny-v2"}, headers=headers["admin"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["version"] == "tiny-v2" and out["previous_version"] == "tiny-v1"
    assert out["active_pointer_updated"] is True
    assert (bundles_dir / "ACTIVE").read_text().strip() == "tiny-v2"
    routed = client.post("/v1/route", json={"complaints": [{"id": "1", "text": texts[0]}]},
                         headers=headers["intake"]).json()
    assert routed["model_version"] == "tiny-v2"
    assert routed["results"][0]["routing"]["model_version"] == "tiny-v2"
    assert client.get("/readyz").json()["model_version"] == "tiny-v2"
    assert 'huying_model_info{version="tiny-v2"} 1.0' in client.get("/metrics").text


def test_a_version_that_failed_its_gate_is_refused_unless_forced_on_the_record(
        client, headers, bundles_dir, keys):
    from model import versions

    report = bundles_dir / "comparisons" / "tiny-v2"
    report.mkdir(parents=True)
    (report / "comparison.json").write_text(json.dumps({
        "candidate": "tiny-v2", "current": "router tiny-v1", "passed": False,
        "reasons": ["test department accuracy 0.650 vs 0.690 (limit -0.5 points)"]}))
    r = client.post("/v1/admin/model", json={"version": "tiny-v2"}, headers=headers["admin"])
    assert r.status_code == 409, r.text
    assert "failed its comparison" in r.json()["error"]["message"]
    assert versions.active_version(bundles_dir) == "tiny-v1"
    assert client.get("/readyz").json()["model_version"] == "tiny-v1"
    listed = client.get("/v1/admin/models", headers=headers["admin"]).json()["bundles"]
    assert {b["version"]: b["gate"] for b in listed} == {"tiny-v1": None, "tiny-v2": "fail"}

    r = client.post("/v1/admin/model", headers=headers["admin"],
                    json={"version": "tiny-v2", "force": True, "reason": "approved by the lead"})
    assert r.status_code == 200, r.text
    assert client.get("/readyz").json()["model_version"] == "tiny-v2"
    last = versions.activation_history(bundles_dir)[-1]
    assert (last.action, last.version, last.previous) == ("promote", "tiny-v2", "tiny-v1")
    assert keys["admin"].split("_")[1] in last.actor  # the key that did it
    assert last.reason.startswith("approved by the lead; forced past a failed gate: test department")


def test_swap_by_path_leaves_active_alone(client, headers, bundles_dir, tmp_path, tiny_bundle,
                                          bundle_copy):
    elsewhere = bundle_copy(tiny_bundle.path, tmp_path, "trial-7")
    r = client.post("/v1/admin/model", json={"path": str(elsewhere)}, headers=headers["admin"])
    assert r.status_code == 200 and r.json()["version"] == "trial-7"
    assert r.json()["active_pointer_updated"] is False
    assert (bundles_dir / "ACTIVE").read_text().strip() == "tiny-v1"


@pytest.mark.parametrize("damage", ["model", "hash", "missing", "taxonomy", "nan", "scrambled",
                                    "no_probes"])
def test_a_broken_bundle_is_refused_and_the_old_one_keeps_serving(client, headers, bundles_dir,
                                                                   tiny_bundle, bundle_copy,
                                                                   damage_weights, texts,
                                                                   damage):
    broken = bundle_copy(tiny_bundle.path, bundles_dir, "broken-v1")
    manifest = json.loads((broken / "bundle.json").read_text())
    if damage == "model":  # a corrupt ONNX whose hash was updated: only loading can tell
        (broken / "model.onnx").write_bytes(b"not an onnx model")
        from model.bundle import sha256_file

        manifest["files"]["model.onnx"] = sha256_file(broken / "model.onnx")
        (broken / "bundle.json").write_text(json.dumps(manifest))
    elif damage == "hash":
        with open(broken / "model.onnx", "ab") as f:
            f.write(b"\0")
    elif damage == "missing":
        (broken / "tokenizer.json").unlink()
    elif damage in ("nan", "scrambled"):  # loads, has every head: only its answers tell
        damage_weights(broken, damage)
    elif damage == "no_probes":  # nothing to check it with: refused rather than trusted
        (broken / "probes.json").unlink()
        manifest["files"].pop("probes.json")
        (broken / "bundle.json").write_text(json.dumps(manifest))
    else:
        (broken / "taxonomy.json").write_text("{}")
        manifest["files"].pop("taxonomy.json")
        (broken / "bundle.json").write_text(json.dumps(manifest))
    r = client.post("/v1/admin/model", json={"version": "broken-v1"}, headers=headers["admin"])
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "bundle_invalid" and "broken-v1" in error["message"]
    assert (bundles_dir / "ACTIVE").read_text().strip() == "tiny-v1"
    routed = client.post("/v1/route", json={"complaints": [{"id": "1", "text": texts[0]}]},
                         headers=headers["intake"])
    assert routed.status_code == 200 and routed.json()["model_version"] == "tiny-v1"


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"version": "tiny-v9"}, 404, None),
    ({"version": "../tiny-v1"}, 422, "version"),
    ({"version": ".hidden"}, 422, "version"),
    ({}, 422, "version"),
    ({"version": "tiny-v2", "path": "/tmp"}, 422, "version"),
    ({"version": 2}, 422, "version"),
    ({"model": "tiny-v2"}, 422, "model"),
    ({"path": "/tmp", "force": True}, 422, "force"),
    ({"version": "tiny-v2", "force": "yes"}, 422, "force"),
    ([], 422, "body"),
])
def test_bad_swap_requests(client, headers, body, status, field):
    r = client.post("/v1/admin/model", json=body, headers=headers["admin"])
    assert r.status_code == status, r.text
    assert r.json()["error"].get("field") == field
    assert client.get("/readyz").json()["model_version"] == "tiny-v1"


def test_unknown_version_lists_the_available_ones(client, headers):
    message = client.post("/v1/admin/model", json={"version": "tiny-v9"},
                          headers=headers["admin"]).json()["error"]["message"]
    assert "tiny-v1" in message and "tiny-v2" in message


@pytest.mark.parametrize("role", ["intake", "officer"])
def test_model_management_needs_the_admin_role(client, headers, role):
    assert client.post("/v1/admin/model", json={"version": "tiny-v2"},
                       headers=headers[role]).status_code == 403
    assert client.get("/v1/admin/models", headers=headers[role]).status_code == 403
    assert client.get("/v1/admin/models").status_code == 401


@pytest.mark.anyio
async def test_requests_in_flight_finish_on_the_old_router(settings, headers, texts):
    """A batch holding the old router completes on it while the swap installs the new one."""
    entered, release = threading.Event(), threading.Event()

    class GatedRouter(Router):
        def route(self, texts_, **kwargs):
            if self.version == "tiny-v1" and texts_ == [texts[0]]:
                entered.set()
                release.wait(10)
            return super().route(texts_, **kwargs)

    # Two batch workers: the held batch must not block the request made after the swap.
    app = create_app(settings.model_copy(update={"batch_workers": 2}),
                     router_loader=lambda path: GatedRouter.load(path))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), \
            httpx.AsyncClient(transport=transport, base_url="http://huying") as c:
        body = {"complaints": [{"id": "1", "text": texts[0]}]}
        in_flight = asyncio.create_task(c.post("/v1/route", json=body, headers=headers["intake"]))
        await asyncio.to_thread(entered.wait, 10)
        swap = await c.post("/v1/admin/model", json={"version": "tiny-v2"},
                            headers=headers["admin"])
        assert swap.status_code == 200
        after = await c.post("/v1/route", json={"complaints": [{"id": "2", "text": texts[1]}]},
                             headers=headers["intake"])
        assert after.json()["model_version"] == "tiny-v2"
        release.set()
        old = await in_flight
        assert old.status_code == 200 and old.json()["model_version"] == "tiny-v1"


def test_an_unready_server_becomes_ready_by_a_swap(settings, headers, bundles_dir):
    from fastapi.testclient import TestClient

    (bundles_dir / "ACTIVE").unlink()
    with TestClient(create_app(settings)) as c:
        assert c.get("/readyz").status_code == 503
        r = c.post("/v1/admin/model", json={"version": "tiny-v2"}, headers=headers["admin"])
        assert r.status_code == 200 and r.json()["previous_version"] is None
        # ready once the similarity index of tiny-v2 is built too (503 until then: no index yet)
        assert c.app.state.services.duplicates.wait_ready(timeout=30)
        assert c.get("/readyz").json() == {"status": "ready", "model_version": "tiny-v2",
                                           "similarity_index": _ready_index("tiny-v2"),
                                           "active_version": "tiny-v2", "following_error": None}
    assert (bundles_dir / "ACTIVE").read_text().strip() == "tiny-v2"


def _ready_index(version: str, size: int = 0) -> dict:
    return {"ready": True, "model_version": version, "size": size, "rebuilding_for": None,
            "error": None, "last_build": ANY, "save_error": None}
