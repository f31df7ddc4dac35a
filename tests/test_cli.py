"""The `huying` command end to end on the fixture dataset: report, baseline, evaluate, errors."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app

REPO = Path(__file__).resolve().parent.parent
FIXTURE_YAML = REPO / "tests" / "fixtures" / "haikou-sample.yaml"
runner = CliRunner()


def huying(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def baseline_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline")
    result = huying("baseline", FIXTURE_YAML, "--out", out, "--cv", "2")
    assert result.exit_code == 0, result.output
    assert "trained on 220 rows" in result.output and "2-fold cross-validation" in result.output
    return out


def test_data_report_prints_tables_and_json():
    result = huying("data", "report", FIXTURE_YAML)
    assert result.exit_code == 0, result.output
    assert "labels with < 5 rows (long tail)" in result.output
    assert "most frequent labels" in result.output and "交通管理" in result.output
    as_json = json.loads(huying("data", "report", FIXTURE_YAML, "--json").output)
    # one dev row repeats a train row up to punctuation: deduplicated across the splits
    assert as_json["rows"] == 320 and as_json["splits"] == {"train": 220, "dev": 49, "test": 50}


def test_baseline_writes_model_dev_evaluation_and_cv(baseline_dir):
    assert {"meta.json", "model.joblib", "eval-dev", "cv.json"} <= {
        p.name for p in baseline_dir.iterdir()}
    dev = json.loads((baseline_dir / "eval-dev" / "metrics.json").read_text(encoding="utf-8"))
    assert dev["split"] == "dev" and set(dev["model"]["heads"]) == {
        "category", "subcategory", "department"}
    cv = json.loads((baseline_dir / "cv.json").read_text(encoding="utf-8"))
    assert cv["folds"] == 2 and len(cv["per_fold"]) == 2
    assert 0 <= cv["heads"]["category"]["macro_f1_mean"] <= 1


def test_evaluate_a_split_beside_a_baseline(baseline_dir, tmp_path):
    result = huying("evaluate", "--model", baseline_dir, "--dataset", FIXTURE_YAML,
                    "--split", "test", "--baseline", baseline_dir, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["split"] == "test" and metrics["rows"] == 50 and metrics["baseline"]
    assert (tmp_path / "report.md").is_file() and (tmp_path / "department.png").is_file()


def test_evaluate_labelled_jsonl(baseline_dir, tmp_path):
    gold = tmp_path / "gold.jsonl"
    rows = [{"text": "市民来电反映:中山路有车辆乱停放,堵塞交通。请交警核实处理!",
             "category": "街面秩序", "subcategory": "机动车乱停放",
             "department": "公安局交通警察支队"},
            {"text": "楼下酒吧噪音扰民", "subcategory": "市容环境/商业噪音"}]
    gold.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    result = huying("evaluate", "--model", baseline_dir, "--data", gold, "--out", tmp_path / "e")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["model"]["heads"]["subcategory"]["rows"] == 2
    assert metrics["model"]["heads"]["department"]["rows"] == 1


@pytest.mark.parametrize(("args", "message"), [
    (("data", "report", "missing.yaml"), "cannot read dataset config missing.yaml"),
    (("baseline", "missing.yaml", "--out", "{tmp}/b"), "cannot read dataset config"),
    (("baseline", FIXTURE_YAML, "--out", "{tmp}/b", "--C", "0"), "C must be positive"),
    (("evaluate", "--model", "{tmp}", "--data", "x.jsonl", "--out", "{tmp}/e"),
     "neither a baseline"),
    (("evaluate", "--model", "{tmp}/none", "--data", "x.jsonl", "--out", "{tmp}/e"),
     "does not exist"),
    (("data", "build-duty-lists", "--shared", "{tmp}", "--out", "{tmp}/t"), "--shared"),
])
def test_domain_errors_exit_2_with_one_clear_message(args, message, tmp_path):
    result = huying(*(str(a).replace("{tmp}", str(tmp_path)) for a in args))
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_evaluate_needs_exactly_one_data_source(baseline_dir, tmp_path):
    both = huying("evaluate", "--model", baseline_dir, "--out", tmp_path,
                  "--dataset", FIXTURE_YAML, "--data", "x.jsonl")
    neither = huying("evaluate", "--model", baseline_dir, "--out", tmp_path)
    assert both.exit_code == neither.exit_code == 2
    assert "exactly one of --dataset" in neither.output
    empty = huying("evaluate", "--model", baseline_dir, "--out", tmp_path,
                   "--dataset", FIXTURE_YAML, "--split", "validation")
    assert empty.exit_code == 2 and "available: train (220 rows)" in empty.output


def test_build_duty_lists_reproduces_the_vendored_ones(tmp_path):
    result = huying("data", "build-duty-lists", "--shared", REPO / "data", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    for built in tmp_path.rglob("*.csv"):
        vendored = REPO / "data" / "taxonomies" / built.relative_to(tmp_path)
        assert built.read_bytes() == vendored.read_bytes(), vendored


def test_help_is_fast_and_imports_nothing_heavy():
    probe = ("import sys; from typer.testing import CliRunner; from cli import app; "
             "out = CliRunner().invoke(app, ['--help']).output; "
             "assert 'baseline' in out and 'Example' in out, out; "
             "print(sorted(m for m in ('sklearn', 'matplotlib', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=REPO, check=True)
    assert done.stdout.strip() == "[]"


def test_evaluate_a_router_bundle_beside_the_baseline(tiny_bundle, baseline_dir, tmp_path):
    result = huying("evaluate", "--model", tiny_bundle.path, "--dataset", FIXTURE_YAML,
                    "--split", "dev", "--baseline", baseline_dir, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["model"]["name"].startswith("router")
    assert metrics["baseline"]["name"] == "tfidf-baseline"
    assert metrics["model"]["hierarchy_consistency"]["decoded"] == 1.0


def test_predict_routes_every_row_in_order(tiny_bundle, tmp_path):
    rows = [{"id": "a", "text": "小区门口有机动车乱停放"}, {"text": "路灯不亮"},
            {"id": 3, "text": "请问辞职后社保怎么交？"}]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["predict", str(source), "--model", str(tiny_bundle.path),
                                 "--output", str(out)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line.get("id") for line in lines] == ["a", None, 3]
    for line in lines:
        assert line["decision"] in ("auto", "review")
        assert line["subcategory"]["label"].split("/", 1)[0] == line["category"]["label"]


@pytest.mark.parametrize("content, message", [
    ('{"id": 1}\n', "non-empty string field `text`"),
    ('{"text": "路灯不亮"}\nnot json\n', ":2: not valid JSON"),
    ('{"text": "路灯不亮"}\n'.encode("gbk"), "not UTF-8"),
])
def test_predict_refuses_bad_rows_and_writes_nothing(tiny_bundle, tmp_path, content, message):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = runner.invoke(app, ["predict", str(source), "--model", str(tiny_bundle.path),
                                 "--output", str(out)])
    assert result.exit_code == 2
    assert message in result.output
    assert not out.exists()


def test_train_refuses_an_unknown_preset(tmp_path):
    result = runner.invoke(app, ["train", "data/datasets/haikou12345.yaml", "--preset", "fast",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "quick" in result.output


def test_train_prints_the_parts_the_held_out_figures_and_its_time(tmp_path, tiny_encoder_dir):
    yaml_path = Path(__file__).parent / "fixtures" / "haikou-sample.yaml"
    result = huying("train", yaml_path, "--preset", "tiny", "--base", tiny_encoder_dir,
                    "--epochs", "1", "--out", tmp_path / "bundles", "--version", "cli-v1")
    assert result.exit_code == 0, result.output
    out = result.output
    assert re.search(r"bundle written: .*cli-v1 \(\d+ s of training, \d+ s of export", out)
    assert "dev department (raw argmax): encoder" in out and "n-grams" in out
    assert re.search(r"^test: category \d\.\d{3} \(top-3", out, re.M)
    assert (tmp_path / "bundles" / "cli-v1" / "duplicates.json").is_file()


def test_audit_opens_a_fresh_store_and_refuses_a_missing_dataset(tmp_path, monkeypatch):
    db = tmp_path / "new" / "huying.db"
    monkeypatch.setenv("HUYING_DATABASE_URL", f"sqlite:///{db}")
    result = runner.invoke(app, ["audit", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert "missing.yaml" in result.output
    assert db.exists()  # the store was created and migrated, then the bad input refused


def test_up_reuses_a_router_trained_before_instead_of_training_again(tmp_path, monkeypatch,
                                                                     tiny_bundle, bundle_copy):
    """A run that trained and wrote the bundle but stopped before serving (or before ACTIVE was
    written) is picked up by the next run: no second 10-minute training."""
    import cli.server
    import serving.main
    from model.versions import active_version
    from training.datasets import data_hash, load_dataset

    yaml_path = Path(__file__).parent / "fixtures" / "haikou-sample.yaml"
    dataset = load_dataset(yaml_path)
    version = f"{dataset.config.name}-quick-{data_hash(dataset.records)[:8]}"
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    bundle_copy(tiny_bundle.path, bundles, version)
    served = []
    monkeypatch.setenv("HUYING_BUNDLES_DIR", str(bundles))
    monkeypatch.setattr(serving.main, "serve", lambda settings, replicas=1: served.append(settings))
    monkeypatch.setattr(cli.server, "train_router", lambda *a, **k: pytest.fail("trained again"))
    result = huying("up", "--dataset", yaml_path)
    assert result.exit_code == 0, result.output
    assert "Reusing the router trained before" in result.output
    assert active_version(bundles) == version and len(served) == 1


def test_hot_issues_writes_the_two_tables_and_refuses_bad_input(tiny_bundle, tmp_path):
    messages = tmp_path / "messages.jsonl"
    rows = [{"id": "1", "user": "u1", "time": "2019/12/10 12:34:21", "title": "丽发新城搅拌站噪音扰民",
             "text": "暮云街道丽发新城小区附近违建搅拌站噪音扰民", "likes": "2", "dislikes": "0"},
            {"id": "2", "user": "u2", "time": "2019/12/11 09:00:00", "title": "丽发新城搅拌站噪音扰民",
             "text": "暮云街道丽发新城小区附近违建搅拌站噪音扰民", "likes": "0", "dislikes": "1"},
            {"id": "3", "user": "u3", "time": "2019/12/12 09:00:00", "title": "社保怎么交",
             "text": "辞职以后个人社保怎么交费", "likes": "0", "dislikes": "0"}]
    messages.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                        encoding="utf-8")
    out = tmp_path / "hot"
    result = huying("hot-issues", str(messages), "--model", str(tiny_bundle.path), "--out", str(out))
    assert result.exit_code == 0, result.output
    table = (out / "hot-issues.csv").read_text(encoding="utf-8-sig").splitlines()
    assert table[0] == "热度排名,问题ID,热度指数,时间范围,地点/人群,问题描述"
    details = (out / "details.csv").read_text(encoding="utf-8-sig").splitlines()
    assert details[0].startswith("问题ID,留言编号,留言用户,留言时间,留言详情")
    assert sorted(line.split(",")[1] for line in details[1:]) == ["1", "2", "3"]
    assert "3 messages →" in result.output
    # the same two tables as the sheets of one workbook, cell for cell
    from openpyxl import load_workbook

    book = load_workbook(out / "hot-issues.xlsx", read_only=True)
    assert book.sheetnames == ["热点问题表", "热点问题留言明细表"]
    for sheet, name in zip(book.worksheets, ("hot-issues.csv", "details.csv"), strict=True):
        cells = [["" if c is None else str(c) for c in row]
                 for row in sheet.iter_rows(values_only=True)]
        with open(out / name, encoding="utf-8-sig", newline="") as f:
            assert cells == list(csv.reader(f))
    swapped = huying("hot-issues", str(messages), "--model", str(tiny_bundle.path), "--out",
                     str(tmp_path / "x"), "--from", "2019-12-12", "--to", "2019-12-01")
    assert swapped.exit_code != 0 and "swap them" in swapped.output
    assert not (tmp_path / "x").exists()
    empty = huying("hot-issues", str(messages), "--model", str(tiny_bundle.path), "--out",
                   str(tmp_path / "y"), "--from", "2020-01-01")
    assert empty.exit_code != 0 and "falls between" in empty.output
