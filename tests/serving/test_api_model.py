"""GET /v1/taxonomy, /v1/model, /healthz, /readyz, /metrics, the OpenAPI schema, error shape."""

from __future__ import annotations

import json
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from unittest.mock import ANY

import pytest
from fastapi.testclient import TestClient

from model.router import Router
from serving.app import create_app


def test_taxonomy_is_the_duty_list_of_the_served_model(client, headers, tiny_bundle):
    r = client.get("/v1/taxonomy", headers=headers["officer"])
    assert r.status_code == 200
    out = r.json()
    taxonomy = tiny_bundle.taxonomy.to_dict()
    assert out["model_version"] == "tiny-v1"
    assert out["name"] == taxonomy["name"]
    assert out["categories"] == taxonomy["categories"]
    assert out["departments"] == taxonomy["departments"]
    assert out["entries"] == taxonomy["entries"]


def test_model_shows_version_metrics_and_card(client, headers, tiny_bundle):
    r = client.get("/v1/model", headers=headers["intake"])
    assert r.status_code == 200
    out = r.json()
    assert out["version"] == "tiny-v1"
    assert out["metrics"] == tiny_bundle.metrics
    assert out["heads"] == ["category", "subcategory", "department"]
    assert out["labels"]["category"] == len(tiny_bundle.spaces["category"])
    assert out["model_card"].startswith("# Huying router tiny-v1")
    assert out["dataset"] == "haikou12345" and out["precision"] == "int8"


@pytest.mark.parametrize("path", ["/v1/taxonomy", "/v1/model"])
def test_model_endpoints_need_a_key(client, path):
    r = client.get(path)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "alive", "model_version": "tiny-v1"}
    assert client.get("/readyz").json() == {"status": "ready", "model_version": "tiny-v1",
                                            "similarity_index": _index("tiny-v1"),
                                            "active_version": "tiny-v1", "following_error": None}


def _index(version: str | None, *, size: int = 0, ready: bool = True,
           rebuilding_for: str | None = None, error: str | None = None) -> dict:
    return {"ready": ready, "model_version": version, "size": size,
            "rebuilding_for": rebuilding_for, "error": error, "last_build": ANY,
            "save_error": None}


@contextmanager
def _swapped_to_v2_with_its_index_build_held(settings, headers, *, fail: bool = False):
    """A started app just swapped to tiny-v2, whose similarity index build waits until the
    yielded event is set (or, with `fail`, raises). Routing is unaffected: only the index's
    builds embed with the router."""
    release = threading.Event()

    class HeldRouter(Router):
        def embed(self, texts):
            if self.version == "tiny-v2":
                if fail:
                    raise RuntimeError("the encoder ran out of memory")
                release.wait(30)
            return super().embed(texts)

    try:
        with TestClient(create_app(settings, router_loader=HeldRouter.load)) as c:
            r = c.post("/v1/admin/model", json={"version": "tiny-v2"}, headers=headers["admin"])
            assert r.status_code == 200, r.text
            yield c, release
    finally:
        release.set()


def test_readiness_reports_the_similarity_index_it_searches(client, headers, texts):
    complaints = [{"id": "r1", "text": texts[0]}, {"id": "r2", "text": texts[2]}]
    r = client.post("/v1/complaints", json={"complaints": complaints}, headers=headers["intake"])
    assert r.status_code == 200 and r.json()["registered"] == 2
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["similarity_index"] == _index("tiny-v1", size=2)


def test_not_ready_while_the_first_similarity_index_is_built(settings, headers, bundles_dir):
    (bundles_dir / "ACTIVE").unlink()  # no model at the start: no index either
    with _swapped_to_v2_with_its_index_build_held(settings, headers) as (c, release):
        r = c.get("/readyz")  # the model is served, but duplicates cannot be searched yet
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        message = r.json()["error"]["message"]
        assert "similarity index is being built for the first time" in message
        assert "tiny-v2" in message
        assert c.get("/healthz").json() == {"status": "alive", "model_version": "tiny-v2"}
        release.set()
        assert c.app.state.services.duplicates.wait_ready(timeout=30)
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json() == {
            "status": "ready", "model_version": "tiny-v2", "similarity_index": _index("tiny-v2"),
            "active_version": "tiny-v2", "following_error": None}


def test_not_ready_while_the_similarity_index_fails_to_build(settings, headers, bundles_dir):
    (bundles_dir / "ACTIVE").unlink()
    with _swapped_to_v2_with_its_index_build_held(settings, headers, fail=True) as (c, _):
        assert not c.app.state.services.duplicates.wait_ready(timeout=30)  # the build failed
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        message = r.json()["error"]["message"]
        assert "similarity index failed to build (RuntimeError: the encoder ran out of memory)" \
            in message
        assert "HUYING_INDEX_SAVE_INTERVAL_S" in message


def test_ready_during_a_rebuild_for_a_new_version(settings, headers):
    with _swapped_to_v2_with_its_index_build_held(settings, headers) as (c, release):
        r = c.get("/readyz")  # the index of tiny-v1 answers while tiny-v2's is built
        assert r.status_code == 200 and r.json()["model_version"] == "tiny-v2"
        assert r.json()["similarity_index"] == _index("tiny-v1", ready=False,
                                                      rebuilding_for="tiny-v2")
        release.set()
        assert c.app.state.services.duplicates.wait_ready(timeout=30)
        assert c.get("/readyz").json()["similarity_index"] == _index("tiny-v2")


def test_without_a_model_the_app_is_alive_but_not_ready(settings, headers, tmp_path):
    broken = settings.model_copy(update={"bundle": tmp_path / "missing"})
    with TestClient(create_app(broken)) as c:
        assert c.get("/healthz").json() == {"status": "alive", "model_version": None}
        r = c.get("/readyz")
        assert r.status_code == 503
        assert "bundle.json is missing" in r.json()["error"]["message"]
        r = c.post("/v1/route", json={"complaints": [{"id": "1", "text": "路灯不亮"}]},
                   headers=headers["intake"])
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"


def test_no_active_pointer_says_how_to_choose_one(settings, bundles_dir):
    (bundles_dir / "ACTIVE").unlink()
    with TestClient(create_app(settings)) as c:
        message = c.get("/readyz").json()["error"]["message"]
        assert "huying activate VERSION" in message and "tiny-v1" in message


def test_static_files_are_counted_under_their_mount_not_as_unmatched(client):
    assert client.get("/static/review.js").status_code == 200
    client.get("/no/such/page")
    text = client.get("/metrics").text
    assert 'huying_http_requests_total{method="GET",route="/static",status="200"} 1.0' in text
    assert 'route="unmatched",status="404"' in text


def test_metrics_expose_requests_latency_batches_decisions_and_errors(client, headers, texts):
    client.post("/v1/route", json={"complaints": [{"id": "1", "text": texts[0]},
                                                  {"id": "2", "text": " "}]},
                headers=headers["intake"])
    client.post("/v1/route", json={})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'huying_http_requests_total{method="POST",route="/v1/route",status="200"} 1.0' in text
    assert 'huying_http_requests_total{method="POST",route="/v1/route",status="401"} 1.0' in text
    assert 'huying_http_request_duration_seconds_bucket{le="0.005",route="/v1/route"}' in text
    assert "huying_batch_size_count 1.0" in text
    assert re.search(r'huying_decisions_total\{decision="(auto|review)"\} 1.0', text)
    assert re.search(r'huying_predictions_total\{head="department",label="[^"]+"\} 1.0', text)
    assert 'huying_errors_total{code="empty_text"} 1.0' in text
    assert 'huying_errors_total{code="unauthorized"} 1.0' in text
    assert 'huying_model_info{version="tiny-v1"} 1.0' in text


def test_apps_have_separate_metric_registries(settings):
    # Two apps in one process must not collide on metric names (the global registry would).
    a, b = create_app(settings), create_app(settings)
    assert a is not b


def test_unknown_paths_and_methods_get_the_error_shape(client):
    r = client.get("/v2/route")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.get("/v1/route")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["x-request-id"] == r.json()["error"]["request_id"]


def test_openapi_documents_bodies_with_chinese_examples(client):
    schema = client.get("/openapi.json").json()
    route = schema["paths"]["/v1/route"]["post"]
    body = route["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/RouteRequest"}
    example = body["examples"]["one"]["value"]["complaints"][0]["text"]
    assert re.search(r"[\u4e00-\u9fff]", example)
    components = schema["components"]["schemas"]
    assert components["RouteRequest"]["properties"]["complaints"]["items"] == {
        "$ref": "#/components/schemas/ComplaintIn"}
    assert "公安局交通警察支队" in str(components["RouteResponse"]["examples"])
    assert {"ComplaintIn", "RouteResponse", "RoutingPublic", "ErrorPublic",
            "SwapRequest"} <= set(components)
    assert {"/v1/route", "/v1/taxonomy", "/v1/model", "/v1/admin/model", "/v1/admin/models",
            "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
    assert set(route["responses"]) >= {"200", "401", "403", "413", "422"}
    # /docs offers the two ways to send a key.
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schema["components"]["securitySchemes"])
    assert client.get("/docs").status_code == 200


def test_docs_are_served_from_the_pinned_package_not_a_cdn(client):
    page = client.get("/docs").text
    assert "cdn" not in page.lower() and "/static/docs/swagger-ui-bundle.js" in page
    js = client.get("/static/docs/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert client.get("/static/docs/swagger-ui.css").status_code == 200


@pytest.mark.parametrize("path", ["/review", "/docs", "/healthz", "/static/review.js"])
def test_every_response_carries_the_security_headers(client, path):
    r = client.get(path)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    if r.headers["content-type"].startswith("text/html"):
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
        assert ("'unsafe-inline'" in csp) == (path == "/docs")


def test_metrics_need_the_metrics_key_when_one_is_set(settings, headers):
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from serving.app import create_app

    with TestClient(create_app(settings.model_copy(update={"metrics_key": SecretStr("scrape-me")}))) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/metrics", headers=headers["intake"]).status_code == 403
        assert c.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).status_code == 200
        assert c.get("/metrics", headers=headers["admin"]).status_code == 200


def _public_api(schema: dict) -> dict:
    """Operations with their 200 model, and every component schema's fields (required marked *)."""
    def model_of(op: dict) -> str:
        ok = op["responses"].get("200", {}).get("content", {}).get("application/json", {})
        ref = ok.get("schema", {})
        return ref.get("$ref", "").rsplit("/", 1)[-1] or ref.get("type", "-")

    operations = {f"{method.upper()} {path}": model_of(op)
                  for path, ops in schema["paths"].items() for method, op in ops.items()}
    fields = {name: sorted(f"{p}*" if p in s.get("required", ()) else p
                           for p in s.get("properties", {}))
              for name, s in schema["components"]["schemas"].items()}
    return {"operations": dict(sorted(operations.items())), "schemas": dict(sorted(fields.items()))}


def test_the_public_api_is_pinned(client):
    """Intake systems and the review page depend on these operations and fields. A change must be
    deliberate: regenerate tests/fixtures/public_api.json with HUYING_PIN_API=1 and review it."""
    pinned = Path(__file__).resolve().parent.parent / "fixtures" / "public_api.json"
    current = _public_api(client.get("/openapi.json").json())
    if os.environ.get("HUYING_PIN_API") == "1":
        pinned.write_text(json.dumps(current, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    assert current == json.loads(pinned.read_text(encoding="utf-8"))
