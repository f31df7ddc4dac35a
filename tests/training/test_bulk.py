"""`huying predict --engine ray`: Ray Data workers give what the local engine gives, in order."""

from __future__ import annotations

import gzip
import json
import re

import pytest
from typer.testing import CliRunner

from cli import app

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


def _rows(haikou_sample) -> list[dict]:
    rows: list[dict] = [{"id": f"r{i}", "text": r.text} for i, r in enumerate(haikou_sample.records[:40])]
    rows[5] = {"text": rows[5]["text"]}  # no id: none in the output either
    rows[7]["id"] = 7  # ids keep their JSON type
    return rows


def _lines(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _predict(*args) -> object:
    return runner.invoke(app, ["predict", *[str(a) for a in args]])


def test_ray_workers_route_like_the_local_engine_in_input_order(tiny_bundle, haikou_sample, tmp_path):
    rows = _rows(haikou_sample)
    shards = tmp_path / "shards"
    shards.mkdir()
    for n in range(8):  # eight shards, one block each: enough for Ray to keep both workers busy
        part = _lines(rows[n * 5:(n + 1) * 5])
        if n % 2:
            (shards / f"part-{n}.jsonl.gz").write_bytes(gzip.compress(part.encode()))
        else:
            (shards / f"part-{n}.jsonl").write_text(part, encoding="utf-8")
    (tmp_path / "all.jsonl").write_text(_lines(rows), encoding="utf-8")

    local = _predict(tmp_path / "all.jsonl", "--model", tiny_bundle.path, "--output",
                     tmp_path / "local.jsonl")
    assert local.exit_code == 0, local.output
    result = _predict(shards, "--model", tiny_bundle.path, "--output", tmp_path / "ray.jsonl",
                      "--engine", "ray", "--workers", "2", "--batch-size", "4")
    assert result.exit_code == 0, result.output
    # a pool of two actors; how many blocks each gets is Ray's scheduling (on a busy machine one
    # actor may take them all), so only that at least one routed is asserted
    done = re.search(r"40 routings written to (.+) \(ray, 2 workers, ([12]) of them given rows\)",
                     result.output)
    assert done and done[1] == str(tmp_path / "ray.jsonl"), result.output

    def read(name: str) -> list[dict]:
        return [json.loads(line) for line in (tmp_path / name).read_text(encoding="utf-8").splitlines()]

    expected, got = read("local.jsonl"), read("ray.jsonl")
    assert [g.get("id", "absent") for g in got] == [r.get("id", "absent") for r in rows]
    for e, g in zip(expected, got, strict=True):
        assert g.keys() == e.keys()
        assert (g["decision"], g["duty"], g["model_version"]) == \
            (e["decision"], e["duty"], e["model_version"])
        for head in ("category", "subcategory", "department"):
            assert [t["label"] for t in g[head]["top"]] == [t["label"] for t in e[head]["top"]]
            assert g[head]["label"] == e[head]["label"]
            assert abs(g[head]["confidence"] - e[head]["confidence"]) <= 1e-5
            for gt, et in zip(g[head]["top"], e[head]["top"], strict=True):
                assert abs(gt["confidence"] - et["confidence"]) <= 1e-5
    assert not (tmp_path / "ray.jsonl.partial").exists()


def test_ray_refuses_a_bad_row_naming_file_and_line_and_writes_nothing(tiny_bundle, tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "a.jsonl").write_text(_lines([{"id": i, "text": "路灯不亮"} for i in range(5)]),
                                    encoding="utf-8")
    (shards / "b.jsonl").write_text(_lines([{"id": 5, "text": "噪音扰民"}, {"id": 6}]),
                                    encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = _predict(shards, "--model", tiny_bundle.path, "--output", out, "--engine", "ray",
                      "--workers", "1")
    assert result.exit_code == 2
    assert "b.jsonl:2: each row needs a non-empty string field `text`" in result.output
    assert not out.exists() and not out.with_name("out.jsonl.partial").exists()


def test_ray_options_need_the_ray_engine(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "路灯不亮"}\n', encoding="utf-8")
    for extra in (["--workers", "2"], ["--ray-address", "auto"]):
        result = _predict(source, "--model", tmp_path, "--output", tmp_path / "out.jsonl", *extra)
        assert result.exit_code == 2
        assert "need --engine ray" in result.output
    result = _predict(source, "--model", tmp_path, "--output", tmp_path / "out.jsonl",
                      "--engine", "ray", "--workers", "0")
    assert result.exit_code == 2 and "--workers" in result.output


def test_input_is_a_file_a_folder_of_shards_or_a_glob(tmp_path):
    from model.errors import DataError
    from training.bulk import input_files

    for name in ("b.jsonl", "a.jsonl.gz", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    assert input_files(tmp_path / "b.jsonl") == [tmp_path / "b.jsonl"]
    assert input_files(tmp_path) == [tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl"]
    assert input_files(tmp_path / "*.txt") == [tmp_path / "c.txt"]
    with pytest.raises(DataError, match="no JSONL file"):
        input_files(tmp_path / "missing")
