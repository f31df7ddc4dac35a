"""`huying replies seed` on real answered messages with the tiny bundle: registered through the
registry, replies recorded, idempotent, bad rows listed; a server started on the same store
offers the replies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cli import app
from model.versions import set_active
from serving.app import create_app
from serving.auth import Role, create_key
from serving.settings import load_settings
from serving.store import service

FIXTURE = Path(__file__).parent / "fixtures" / "fj4-answered-sample.jsonl"
runner = CliRunner()


def test_seed_registers_answered_messages_once_and_a_server_offers_their_replies(
        tmp_path, monkeypatch, tiny_bundle):
    keys = tmp_path / "api_keys.json"
    intake = {"Authorization": f"Bearer {create_key(keys, Role.intake, name='test')}"}
    bundles = tmp_path / "bundles"
    shutil.copytree(tiny_bundle.path, bundles / "tiny-v1")
    set_active(bundles, "tiny-v1")
    env = {"HUYING_BUNDLES_DIR": str(bundles), "HUYING_DATABASE_URL": f"sqlite:///{tmp_path / 'h.db'}",
           "HUYING_INDEX_DIR": str(tmp_path / "index"), "HUYING_API_KEYS_FILE": str(keys),
           "HUYING_DEMO_KEYS_FILE": str(tmp_path / "demo.txt"),
           # the tiny model finds unrelated texts about 0.49 similar: only exact repeats
           "HUYING_DUPLICATE_THRESHOLD": "0.95"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    rows = FIXTURE.read_text(encoding="utf-8").splitlines()
    messages = tmp_path / "messages.jsonl"
    messages.write_text("\n".join(rows[:3]) + "\n", encoding="utf-8")

    result = runner.invoke(app, ["replies", "seed", str(messages), "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "2 complaints registered, 0 already registered (skipped), 2 replies recorded" \
        in result.output

    # the whole file, with bad rows: the two seeded are skipped (their replies are not posted
    # twice), the other two are added, the bad rows are listed
    bad = [json.dumps({"id": "x1", "time": "yesterday", "title": "t", "reply": "r",
                       "reply_time": "2019/1/1 00:00:00"}),
           json.dumps({"id": "x2", "time": "2019/1/2 10:00:00", "title": "t", "text": "",
                       "reply": "r", "reply_time": "2019/1/1 10:00:00"}),
           json.dumps({"id": "x3", "time": "2019/1/2 10:00:00", "title": "t", "reply": ""}),
           "{not json", rows[3]]
    messages.write_text("\n".join(rows[:3] + bad) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["replies", "seed", str(messages)])
    assert result.exit_code == 0, result.output
    assert "2 complaints registered, 2 already registered (skipped), 2 replies recorded, " \
           "4 rows refused" in result.output
    for line, why in [(4, "`time` 'yesterday' is not a time like 2019/4/25 9:32:09"),
                      (5, "reply_time '2019/1/1 10:00:00' is before its time"),
                      (6, "`reply` is empty"), (7, "not valid JSON")]:
        assert f"{messages}:{line}: " in result.output and why in result.output

    settings = load_settings()
    with TestClient(create_app(settings)) as client:
        sessions = client.app.state.services.store.sessions
        with sessions() as s:
            registered = [c.id for c in service.registered_complaints(s)]
            assert sorted(registered) == ["fj4-163698", "fj4-27610", "fj4-47759", "fj4-47782"]
            case = service.get_case(s, "fj4-27610")  # reply_time "2018/4/24": a date only
            assert case.state == "replied" and case.events[0].at.isoformat() == \
                "2018-04-23T16:00:00+00:00"
            assert case.reported_at.isoformat() == "2018-03-19T02:05:04+00:00"  # China time
        source = json.loads(rows[2])  # 47782
        r = client.post("/v1/route", headers=intake, json={"complaints": [
            {"id": "q", "text": f"{source['title']}。{source['text']}",
             "received_at": "2017-09-27T09:00:00+08:00"}]})
        [offered] = r.json()["results"][0]["replies"]
        assert (offered["source_complaint_id"], offered["via"], offered["reply"]) == (
            "fj4-47782", "same_event", source["reply"])


def test_seed_refuses_a_missing_file_and_a_file_without_answered_messages(tmp_path):
    result = runner.invoke(app, ["replies", "seed", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "missing.jsonl does not exist" in result.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"id": "1", "title": "t"}\n', encoding="utf-8")
    result = runner.invoke(app, ["replies", "seed", str(empty)])
    assert result.exit_code == 2 and "no row makes an answered message" in result.output
    assert f"{empty}:1: message 1: `reply` is empty" in result.output
