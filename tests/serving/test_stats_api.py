"""/v1/stats over cases posted through the API, its CSV tables, and `huying stats` on the
exported cases: the same numbers to the row."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cli import app as cli_app
from serving.app import create_app

LAMP = "龙华区南沙路坡博新村二巷102号处有一盏路灯不亮，晚上出行很不方便"
COMPLAINTS = [
    ("lamp-1", LAMP, "2018-04-08T09:30:00+08:00"),
    ("lamp-2", LAMP, "2018-04-09T07:30:00+08:00"),
    ("noise-1", "美兰区海甸五西路工地夜间施工噪音扰民，严重影响休息", "2018-04-09T22:00:00+08:00"),
    ("park-1", "秀英区向荣北路金美花园外面很多机动车违停，堵塞消防通道", "2018-04-16T08:15:00+08:00"),
]
PARAMS = {"from": "2018-04-01", "to": "2018-04-30", "by": "week"}


@pytest.fixture
def client(settings, backend_url):
    # the tiny test model finds unrelated texts about 0.49 similar: only exact repeats here
    update = {"database_url": backend_url, "duplicate_threshold": 0.95}
    with TestClient(create_app(settings.model_copy(update=update)),
                    raise_server_exceptions=False) as c:
        yield c


def _replay(client, headers, tiny_bundle):
    r = client.post("/v1/complaints", headers=headers["intake"], json={"complaints": [
        {"id": i, "text": t, "received_at": at} for i, t, at in COMPLAINTS]})
    assert r.status_code == 200 and r.json()["registered"] == 4, r.text
    department = tiny_bundle.taxonomy.departments[0]
    for cid, events in {
        "lamp-1": [("assigned", "2018-04-08T09:40:00+08:00", {"department": department}),
                   ("replied", "2018-04-08T09:55:00+08:00", {"reply": "已安排维修"}),
                   ("closed", "2018-04-09T09:30:00+08:00", {})],
        "noise-1": [("replied", "2018-04-10T09:00:00+08:00", {"reply": "已责令停工"}),
                    ("closed", "2018-04-10T12:00:00+08:00", {})],
        "park-1": [("assigned", "2018-04-16T08:20:00+08:00", {"department": department})],
    }.items():
        for n, (kind, at, extra) in enumerate(events):
            r = client.post(f"/v1/complaints/{cid}/events", headers=headers["intake"],
                            json={"event_id": f"{cid}-{n}", "kind": kind, "at": at, **extra})
            assert r.status_code == 200, r.text


def test_stats_the_csv_tables_and_the_cli_agree_to_the_row(client, headers, tiny_bundle,
                                                           tmp_path):
    _replay(client, headers, tiny_bundle)
    r = client.get("/v1/stats", params=PARAMS, headers=headers["officer"])
    assert r.status_code == 200, r.text
    out = r.json()
    summary = out["summary"]
    assert (summary["complaints"], summary["closed"], summary["closed_share"]) == (4, 2, 0.5)
    assert summary["close_hours_median"] == pytest.approx((24 + 14) / 2)
    assert summary["repeats"] == 1  # lamp-2 repeats lamp-1
    weeks = {(v["period"], v["value"]): v["complaints"] for v in out["volumes"]
             if v["dimension"] == "district"}
    assert weeks == {("2018-04-02", "龙华区"): 1, ("2018-04-09", "龙华区"): 1,
                     ("2018-04-09", "美兰区"): 1, ("2018-04-16", "秀英区"): 1}  # weeks from Monday
    tables = {}
    for table in ("summary", "volumes", "departments", "cases"):
        r = client.get(f"/v1/stats/{table}.csv", params=PARAMS, headers=headers["officer"])
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        tables[table] = r.text
    assert tables["cases"].count("\n") == 5  # a header and one row per complaint
    (tmp_path / "cases.csv").write_text(tables["cases"], encoding="utf-8")
    result = CliRunner().invoke(cli_app, [
        "stats", str(tmp_path / "cases.csv"), "--from", "2018-04-01", "--to", "2018-04-30",
        "--by", "week", "--as-of", out["as_of"], "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert "4 complaints" in result.output
    for table in ("summary", "volumes", "departments"):
        assert (tmp_path / "cli" / f"{table}.csv").read_text(encoding="utf-8") == tables[table]


@pytest.mark.parametrize(("path", "params", "message"), [
    ("/v1/stats", {"from": "2018-04-30", "to": "2018-04-01"}, "swap them"),
    ("/v1/stats", {"from": "2017-01-01", "to": "2018-04-01"}, "at most 366"),
    ("/v1/stats", {"by": "year"}, "by"),
    ("/v1/stats", {"from": "april"}, "from"),
    ("/v1/stats/everything.csv", {}, "table"),
])
def test_bad_parameters_are_clear_422s(client, headers, path, params, message):
    r = client.get(path, params=params, headers=headers["officer"])
    assert r.status_code == 422 and message in r.text, r.text


def test_stats_need_an_officer_key(client, headers):
    assert client.get("/v1/stats").status_code == 401
    assert client.get("/v1/stats", headers=headers["intake"]).status_code == 403
    assert client.get("/v1/stats/cases.csv", headers=headers["intake"]).status_code == 403


def test_bad_cli_input_is_a_clear_error(tmp_path):
    (tmp_path / "cases.csv").write_text("complaint_id\n1\n", encoding="utf-8")
    runner = CliRunner()
    for args, message in (
            (["--from", "2018-04-30", "--to", "2018-04-01"], "swap them"),
            (["--from", "2018-04-01", "--to", "2018-04-30", "--by", "year"], "day, week or month"),
            (["--from", "2018-04-01", "--to", "2018-04-30", "--as-of", "2018-05-01T00:00"],
             "needs a time zone"),
            (["--from", "2018-04-01", "--to", "2018-04-30"], "missing reported_at")):
        result = runner.invoke(cli_app, ["stats", str(tmp_path / "cases.csv"), "--out",
                                         str(tmp_path / "o"), *args])
        assert result.exit_code != 0 and message in result.output, result.output
    assert not (tmp_path / "o").exists()
