"""Property tests: no input, however malformed, gets a 5xx (hypothesis bodies + schemathesis)."""

from __future__ import annotations

import json
import shutil
from contextlib import ExitStack
from urllib.parse import quote

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from model.versions import set_active
from serving.app import create_app
from serving.settings import load_settings

_SETTINGS = settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow,
                                            HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_bundle, key_file):
    bundles = tmp_path_factory.mktemp("prop-bundles")
    shutil.copytree(tiny_bundle.path, bundles / "tiny-v1")
    set_active(bundles, "tiny-v1")
    root = tmp_path_factory.mktemp("prop-var")
    return create_app(load_settings(bundles_dir=bundles, api_keys_file=key_file[0],
                                    demo_keys_file=root / "demo.txt", max_text_chars=300,
                                    max_complaints=8, batch_max_wait_ms=0,
                                    database_url=f"sqlite:///{root / 'huying.db'}",
                                    index_dir=root / "index"))


@pytest.fixture(scope="module")
def started(app):
    with TestClient(app) as c:
        yield c


scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
           | st.sampled_from(["", " ", "\u3000", "路灯不亮", "\ud800", "\x00", "1" * 5000]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
texts = st.text(max_size=400) | st.sampled_from(["路灯不亮，请尽快维修", "   ", "請核實處理"])
complaint = st.fixed_dictionaries(
    {"id": st.text(max_size=20) | st.integers() | json_values, "text": texts | json_values},
    optional={"channel": st.text(max_size=80) | json_values,
              "received_at": st.sampled_from(["2018-04-08T09:30:00+08:00", "2018-13-45", ""])
              | json_values,
              "location": st.text(max_size=30) | json_values})
bodies = (json_values
          | st.fixed_dictionaries({"complaints": st.lists(complaint | json_values, max_size=10)})
          | st.fixed_dictionaries({"complaints": json_values}))


@_SETTINGS
@given(body=bodies)
def test_random_json_bodies_never_get_a_5xx(started, headers, body):
    raw = json.dumps(body).encode()  # NaN/Infinity included: the server must cope
    r = started.post("/v1/route", content=raw, headers=headers["intake"])
    assert r.status_code < 500, r.text
    out = r.json()
    if r.status_code == 200:
        assert out["routed"] + out["errors"] == len(out["results"]) == len(body["complaints"])
        for result in out["results"]:
            assert (result["routing"] is None) != (result["error"] is None)
    else:
        assert out["error"]["code"] and out["error"]["message"]


@_SETTINGS
@given(raw=st.binary(max_size=200))
def test_random_bytes_never_get_a_5xx(started, headers, raw):
    r = started.post("/v1/route", content=raw, headers=headers["intake"])
    assert 400 <= r.status_code < 500 or r.status_code == 200, r.text


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fuzz_app(request, tmp_path_factory, tiny_bundle, key_file, scratch_database):
    # An app of its own per backend: schemathesis runs the ASGI lifespan itself.
    bundles = tmp_path_factory.mktemp("fuzz-bundles")
    shutil.copytree(tiny_bundle.path, bundles / "tiny-v1")
    set_active(bundles, "tiny-v1")
    with ExitStack() as stack:
        url = f"sqlite:///{bundles / 'huying.db'}" if request.param == "sqlite" else \
            stack.enter_context(scratch_database(request.getfixturevalue("postgres_database")))
        yield create_app(load_settings(bundles_dir=bundles, api_keys_file=key_file[0],
                                       demo_keys_file=bundles / "demo.txt", batch_max_wait_ms=0,
                                       database_url=url, index_dir=bundles / "index"))


@pytest.fixture(scope="module")
def fuzz_client(fuzz_app):
    with TestClient(fuzz_app, raise_server_exceptions=False) as c:
        yield c


# Values that broke the server before: extreme dates, NUL and other control characters,
# text that is only invisible characters.
nasty_text = st.text(alphabet=st.sampled_from(["\x00", "\u200b", "\ufeff", "\x1f", " ", "路",
                                               "灯", "\ud7ff", "a"]), max_size=12)
nasty_dates = (st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())
               | st.sampled_from(["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00",
                                  "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"]))
nasty_complaint = st.fixed_dictionaries(
    {"id": nasty_text | st.integers(), "text": nasty_text | st.sampled_from(["路灯不亮"])},
    optional={"channel": nasty_text, "location": nasty_text, "received_at": nasty_dates})


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(items=st.lists(nasty_complaint, min_size=1, max_size=4))
def test_dates_nuls_and_invisible_text_never_get_a_5xx(fuzz_client, headers, items):
    for path in ("/v1/route", "/v1/complaints"):
        r = fuzz_client.post(path, json={"complaints": items}, headers=headers["intake"])
        assert r.status_code < 500, (path, r.text)
    for item in items:
        r = fuzz_client.get(f"/v1/complaints/{quote(str(item['id']), safe='')}/similar",
                            headers=headers["intake"])
        assert r.status_code < 500, r.text


def test_every_documented_operation_answers_without_a_5xx(fuzz_app, headers):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    # Valid and invalid requests, for every operation; the admin key may call everything, so
    # auth refusals do not hide the handlers from the fuzzer.
    cases = st.one_of(schema.as_strategy(schemathesis.GenerationMode.POSITIVE),
                      schema.as_strategy(schemathesis.GenerationMode.NEGATIVE))

    @settings(max_examples=200, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(case=cases)
    def check(case):
        response = case.call(headers=headers["admin"])
        assert response.status_code < 500, (case.method, case.path, response.text)
        # every schemathesis check but the two that judge validation strictness: items are
        # validated one by one and unknown fields ignored by design (serving/routing.py)
        case.validate_response(response, excluded_checks=[positive_data_acceptance,
                                                          negative_data_rejection])

    check()
