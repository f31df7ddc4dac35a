"""Dataset configs, readers, records, time splits that never leak a text, and the data report."""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from model.errors import DataError
from model.normalize import text_hash
from model.taxonomy import load_taxonomy
from training.datasets import (
    Dataset,
    DatasetConfig,
    Record,
    SourceConfig,
    load_dataset,
    load_dataset_config,
    read_rows,
    records_from_rows,
    report,
    split_by_time,
)

REPO = Path(__file__).resolve().parents[2]
HAIKOU_YAML = REPO / "data" / "datasets" / "haikou12345.yaml"
TEDDY_YAML = REPO / "data" / "datasets" / "teddy2020c.yaml"
HAIKOU_SPLITS = {"train": {"until": "2018-04-01"},
                 "dev": {"from": "2018-04-01", "until": "2018-04-16"},
                 "test": {"from": "2018-04-16"}}

CATEGORIES = "category,description\n交通管理,\n市容环境,\n"
DEPARTMENTS = "department,description\n交警,\n城管,\n"
DUTY_LIST = ("category,subcategory,department,time_limit,legal_basis,description\n"
             "交通管理,违章停车,交警,,,\n市容环境,占道经营,城管,,,\n")


def write_taxonomy_dir(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "categories.csv").write_text(CATEGORIES, encoding="utf-8")
    (directory / "departments.csv").write_text(DEPARTMENTS, encoding="utf-8")
    (directory / "duty_list.csv").write_text(DUTY_LIST, encoding="utf-8")
    return directory


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict], gz: bool = False) -> Path:
    content = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def config_error(tmp_path: Path, config: dict) -> str:
    with pytest.raises(DataError) as info:
        load_dataset_config(write_config(tmp_path / "city.yaml", config))
    return str(info.value)


GOOD_SOURCE = {"path": "tickets.jsonl", "text": "text",
               "heads": {"category": "cat", "subcategory": ["cat", "sub"], "department": "dept"}}


# --- config parsing ---------------------------------------------------------------------------

def test_vendored_configs_load() -> None:
    haikou = load_dataset_config(HAIKOU_YAML)
    assert haikou.name == "haikou12345"
    assert haikou.heads == ("category", "subcategory", "department")
    assert [s.name for s in haikou.sources] == ["tickets-2018-02-to-04.jsonl.gz",
                                               "tickets-2017-12-to-2018-01-older-taxonomy.jsonl.gz"]
    assert all(s.path.is_file() for s in haikou.sources)
    assert dict(haikou.sources[1].heads) == {"department": "dept"}
    assert (haikou.taxonomy_dir / "duty_list.csv").is_file()
    teddy = load_dataset_config(TEDDY_YAML)
    assert teddy.heads == ("category",)
    assert teddy.sources[0].text == ["title", "text"]


def test_unknown_head(tmp_path: Path) -> None:
    source = {**GOOD_SOURCE, "heads": {"category": "cat", "dept": "dept"}}
    message = config_error(tmp_path, {"taxonomy": "tax", "sources": [source]})
    assert "unknown head(s) ['dept']" in message and "department" in message


def test_subcategory_must_be_two_fields(tmp_path: Path) -> None:
    for sub in ("sub", ["sub"], ["a", "b", "c"]):
        source = {**GOOD_SOURCE, "heads": {"subcategory": sub}}
        message = config_error(tmp_path, {"taxonomy": "tax", "sources": [source]})
        assert "subcategory must be [category_field, subcategory_field]" in message
        assert "repeat across categories" in message


def test_missing_path(tmp_path: Path) -> None:
    source = {k: v for k, v in GOOD_SOURCE.items() if k != "path"}
    message = config_error(tmp_path, {"taxonomy": "tax", "sources": [GOOD_SOURCE, source]})
    assert message == f"{tmp_path / 'city.yaml'}: sources[1] needs a `path`"


def test_time_needs_field_and_format(tmp_path: Path) -> None:
    source = {**GOOD_SOURCE, "time": {"field": "ticket_id", "chars": 8}}
    message = config_error(tmp_path, {"taxonomy": "tax", "sources": [source]})
    assert "time needs `field` and `format`" in message and "%Y%m%d" in message


@pytest.mark.parametrize("bound", ["April 2018", "2018/04/01", "01-04-2018"])
def test_bad_split_date(tmp_path: Path, bound: str) -> None:
    config = {"taxonomy": "tax", "sources": [GOOD_SOURCE],
              "splits": {"train": {"until": "2018-04-01"}, "test": {"from": bound}}}
    message = config_error(tmp_path, config)
    assert f"splits.test.from: {bound!r} is not an ISO date" in message
    assert "YYYY-MM-DD" in message


def test_bad_split_shape(tmp_path: Path) -> None:
    for splits in ({"train": "2018-04-01"}, {"train": {"before": "2018-04-01"}}):
        message = config_error(tmp_path, {"taxonomy": "tax", "sources": [GOOD_SOURCE],
                                          "splits": splits})
        assert "splits.train must be a mapping with `from` and/or `until`" in message


def test_unknown_split_and_source_key(tmp_path: Path) -> None:
    message = config_error(tmp_path, {"taxonomy": "tax", "sources": [GOOD_SOURCE],
                                      "splits": {"validation": {"from": "2018-04-01"}}})
    assert "unknown split(s) ['validation']" in message
    message = config_error(tmp_path, {"taxonomy": "tax", "sources": [{**GOOD_SOURCE, "txt": "x"}]})
    assert "sources[0] has unknown keys ['txt']" in message


def test_config_needs_taxonomy_and_sources(tmp_path: Path) -> None:
    assert "needs `name`, `taxonomy` and `sources`" in config_error(tmp_path, {"name": "x"})
    assert "needs `name`, `taxonomy` and `sources`" in config_error(tmp_path, ["a", "list"])


def test_unreadable_config(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read dataset config"):
        load_dataset_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("sources: [unclosed", encoding="utf-8")
    with pytest.raises(DataError, match="cannot read dataset config"):
        load_dataset_config(tmp_path / "bad.yaml")


def test_source_paths_are_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    config = load_dataset_config(write_config(tmp_path / "configs" / "city.yaml", {
        "taxonomy": "../tax", "sources": [{**GOOD_SOURCE, "path": "../data/tickets.jsonl.gz"}]}))
    assert config.sources[0].path == (tmp_path / "data" / "tickets.jsonl.gz").resolve()
    assert config.sources[0].name == "tickets.jsonl.gz"
    assert config.taxonomy_dir.resolve() == (tmp_path / "tax").resolve()
    assert config.name == "city"  # defaults to the file name


# --- readers ----------------------------------------------------------------------------------

ROWS = [{"id": "1", "text": "市民来电反映: 路灯坏了", "cat": "市容环境"},
        {"id": "2", "text": "有车违停,请交警核实处理!", "cat": "交通管理"}]


@pytest.mark.parametrize("gz", [False, True])
def test_read_jsonl(tmp_path: Path, gz: bool) -> None:
    path = write_jsonl(tmp_path / ("rows.jsonl.gz" if gz else "rows.jsonl"), ROWS, gz=gz)
    assert list(read_rows(path)) == ROWS


@pytest.mark.parametrize("gz", [False, True])
def test_read_csv(tmp_path: Path, gz: bool) -> None:
    path = tmp_path / ("rows.csv.gz" if gz else "rows.csv")
    with (gzip.open(path, "wt", encoding="utf-8", newline="") if gz
          else open(path, "w", encoding="utf-8", newline="")) as f:
        writer = csv.DictWriter(f, fieldnames=["id", "text", "cat"])
        writer.writeheader()
        writer.writerows(ROWS)
    assert list(read_rows(path)) == ROWS


def test_read_csv_with_byte_order_mark(tmp_path: Path) -> None:
    """A spreadsheet's "CSV UTF-8" export starts with a BOM; it is not part of the first column."""
    path = tmp_path / "rows.csv"
    path.write_text("text,cat\n路灯坏了,市容环境\n", encoding="utf-8-sig")
    assert list(read_rows(path)) == [{"text": "路灯坏了", "cat": "市容环境"}]


def test_read_jsonl_blank_lines_and_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "a"}\n\n   \n{"text": "b"}\n{"text": \n', encoding="utf-8")
    rows = read_rows(path)
    assert [next(rows), next(rows)] == [{"text": "a"}, {"text": "b"}]
    with pytest.raises(DataError, match=rf"{path.name}:5: not valid JSON"):
        next(rows)


def test_read_missing_and_unsupported(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        list(read_rows(tmp_path / "nope.jsonl"))
    (tmp_path / "rows.xlsx").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match=r"unsupported format '\.xlsx'; use \.jsonl or \.csv"):
        list(read_rows(tmp_path / "rows.xlsx"))


# --- records ----------------------------------------------------------------------------------

def source(**kwargs) -> SourceConfig:
    return SourceConfig(**{"path": Path("mem.jsonl"), "name": "mem", **kwargs})


def test_records_keep_only_the_heads_they_have() -> None:
    src = source(id="id", heads={"category": "cat", "subcategory": ["cat", "sub"],
                                 "department": "dept"})
    rows = [{"id": 1, "text": "路灯坏了", "cat": "市容环境", "sub": "路灯", "dept": "城管"},
            {"id": 2, "text": "噪音扰民", "dept": "城管"},  # older taxonomy: department only
            {"id": 3, "text": "违停", "cat": "交通管理", "sub": "", "dept": None},  # no subcategory
            {"id": 4, "text": "投诉", "cat": " ", "sub": "其他"}]
    records = list(records_from_rows(rows, src))
    assert [dict(r.labels) for r in records] == [
        {"category": "市容环境", "subcategory": "市容环境/路灯", "department": "城管"},
        {"department": "城管"},
        {"category": "交通管理"},
        {}]
    assert [r.id for r in records] == ["1", "2", "3", "4"]


def test_auxiliary_labels_are_kept_apart_from_the_heads() -> None:
    src = source(heads={"department": "dept"}, auxiliary={"older_topic": ["cat1", "cat2"]})
    rows = [{"text": "路灯坏了", "cat1": "城管问题", "cat2": "路灯", "dept": "城管"},
            {"text": "噪音扰民", "cat1": "城管问题", "cat2": "", "dept": "城管"}]
    records = list(records_from_rows(rows, src))
    assert [dict(r.labels) for r in records] == [{"department": "城管"}] * 2
    assert [dict(r.auxiliary) for r in records] == [{"older_topic": "城管问题/路灯"}, {}]


def test_auxiliary_names_must_be_identifiers(tmp_path: Path) -> None:
    message = config_error(tmp_path, {"name": "c", "taxonomy": "t", "sources": [
        {**GOOD_SOURCE, "auxiliary": {"older topic": "cat1"}}]})
    assert "auxiliary label names must be identifiers" in message and "older topic" in message
    for bad in ({"older_topic": 3}, ["cat1"], {"older_topic": []}):
        message = config_error(tmp_path, {"name": "c", "taxonomy": "t", "sources": [
            {**GOOD_SOURCE, "auxiliary": bad}]})
        assert "auxiliary must map a name to a field or a list of fields" in message


def test_a_label_zero_is_kept() -> None:
    records = list(records_from_rows([{"text": "路灯坏了", "label": 0}],
                                     source(heads={"category": "label"})))
    assert dict(records[0].labels) == {"category": "0"}


def test_record_text_is_normalised_and_raw_kept() -> None:
    raw = "市民来电反映: 有车违停，请交警核实处理！（请职能局按规定在30分钟内联系市民，响应处置）"
    [rec] = records_from_rows([{"text": raw}], source())
    assert rec.text == "有车违停"
    assert rec.raw_text == raw
    assert rec.id == "mem:0" and rec.source == "mem" and rec.time is None
    assert rec.text_hash == text_hash("有车违停") == text_hash(raw)


def test_empty_texts_are_skipped_and_missing_texts_refused() -> None:
    rows = [{"text": "市民来电反映: "}, {"text": "路灯坏了"}]
    assert [r.text for r in records_from_rows(rows, source())] == ["路灯坏了"]
    with pytest.raises(DataError, match=r"row 2: field\(s\) \['text'\] missing or not text"):
        list(records_from_rows([{"text": "a"}, {"body": "b"}], source()))


def test_several_text_fields_are_joined() -> None:
    [rec] = records_from_rows([{"title": "路灯坏了", "text": "已经一个星期"}],
                              source(text=["title", "text"]))
    assert rec.raw_text == "路灯坏了\n已经一个星期" and rec.text == "路灯坏了 已经一个星期"


def test_time_parsing() -> None:
    src = source(time={"field": "ticket_id", "format": "%Y%m%d", "chars": 8})
    [rec] = records_from_rows([{"text": "a", "ticket_id": 20180322995008}], src)
    assert rec.time == datetime(2018, 3, 22)
    with pytest.raises(DataError) as info:
        list(records_from_rows([{"text": "a", "ticket_id": "20180322"},
                                {"text": "b", "ticket_id": "2018-03-22"}], src))
    message = str(info.value)
    assert "row 2: time '2018-03-' (field 'ticket_id') does not match format '%Y%m%d'" in message


def test_records_from_a_huggingface_dataset() -> None:
    hf = pytest.importorskip("datasets")
    rows = hf.Dataset.from_list([
        {"id": "a", "text": "市民来电反映: 路灯坏了，请城管核实处理！", "cat": "市容环境",
         "sub": "路灯"},
        {"id": "b", "text": "有车违停", "cat": "交通管理", "sub": "违章停车"}])
    records = list(records_from_rows(rows, source(
        id="id", heads={"category": "cat", "subcategory": ["cat", "sub"]})))
    assert [(r.id, r.text, dict(r.labels)) for r in records] == [
        ("a", "路灯坏了", {"category": "市容环境", "subcategory": "市容环境/路灯"}),
        ("b", "有车违停", {"category": "交通管理", "subcategory": "交通管理/违章停车"})]


def test_load_dataset_drops_labels_outside_the_taxonomy(tmp_path: Path) -> None:
    write_taxonomy_dir(tmp_path / "tax")
    write_jsonl(tmp_path / "tickets.jsonl", [
        {"text": "有车违停", "cat": "交通管理", "sub": "违章停车", "dept": "交警"},
        {"text": "路边摆摊", "cat": "市容环境", "sub": "乱摆摊", "dept": "城管"},
        {"text": "楼上漏水", "cat": "住房", "sub": "漏水", "dept": "住建局"}])
    dataset = load_dataset(write_config(tmp_path / "city.yaml",
                                        {"taxonomy": "tax", "sources": [GOOD_SOURCE]}))
    assert [dict(r.labels) for r in dataset.records] == [
        {"category": "交通管理", "subcategory": "交通管理/违章停车", "department": "交警"},
        {"category": "市容环境", "department": "城管"},
        {}]
    assert dataset.dropped_labels == Counter({"subcategory": 2, "category": 1, "department": 1})


# --- splits -----------------------------------------------------------------------------------

def rec(text: str, time: datetime | None, rid: str = "", **labels: str) -> Record:
    return Record(id=rid or text, text=text, labels=labels, source="mem", time=time)


def assert_no_text_shared(splits: dict[str, list[Record]]) -> None:
    hashes = {name: {r.text_hash for r in recs} for name, recs in splits.items()}
    names = list(hashes)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not hashes[a] & hashes[b], (a, b)


def test_split_by_time_bounds_and_repeats() -> None:
    records = [rec("早", datetime(2018, 3, 31, 23, 59)), rec("中", datetime(2018, 4, 1)),
               rec("晚", datetime(2018, 4, 16)), rec("无时间", None),
               rec("早", datetime(2018, 4, 20), rid="repeat-in-test"),
               rec("中", datetime(2018, 4, 5), rid="repeat-in-dev"),
               rec("晚", datetime(2018, 4, 17), rid="repeat-in-test-only")]
    splits = split_by_time(records, HAIKOU_SPLITS)
    assert {k: [r.id for r in v] for k, v in splits.items()} == {
        "train": ["早", "无时间"], "dev": ["中", "repeat-in-dev"],
        "test": ["晚", "repeat-in-test-only"]}
    assert_no_text_shared(splits)


def test_records_without_time_go_to_train() -> None:
    records = [rec("a", None), rec("b", None)]
    splits = split_by_time(records, {"dev": {"from": "2018-04-01"}})
    assert [r.id for r in splits["train"]] == ["a", "b"] and splits["dev"] == []
    assert [r.id for r in split_by_time(records, {})["train"]] == ["a", "b"]


def test_records_outside_every_split_are_left_out() -> None:
    records = [rec("a", datetime(2018, 1, 1)), rec("b", datetime(2018, 5, 1))]
    splits = split_by_time(records, {"dev": {"from": "2018-03-01", "until": "2018-04-01"}})
    assert splits == {"train": [], "dev": []}


def test_a_repeat_is_recognised_after_normalisation() -> None:
    records = [rec("路灯坏了", datetime(2018, 3, 1)),
               rec("市民微信反映：路灯坏了，请城管核实处理！", datetime(2018, 4, 20))]
    assert split_by_time(records, HAIKOU_SPLITS)["test"] == []


_TEXTS = st.sampled_from(["路灯坏了", "路灯坏了。", "市民来电反映: 路灯坏了", "有车违停",
                          "噪音扰民", "噪音扰民,请城管核实处理!", "ＡＢＣ", "ABC", "其他"])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_TEXTS, st.one_of(st.none(), st.integers(0, 120))), max_size=40),
       st.lists(st.integers(0, 39), max_size=10), st.integers(1, 120))
def test_split_never_shares_a_text_across_splits(items: list[tuple[str, int | None]],
                                                 duplicates: list[int], shift: int) -> None:
    """Synthetic records over four months, with repeats injected later in time."""
    start = datetime(2018, 2, 1)
    records = [rec(text, None if day is None else start + timedelta(days=day), rid=str(i))
               for i, (text, day) in enumerate(items)]
    for k, j in enumerate(duplicates):
        if j < len(records) and records[j].time is not None:
            original = records[j]
            records.append(rec(original.text, original.time + timedelta(days=shift),
                               rid=f"dup{k}"))
    splits = split_by_time(records, HAIKOU_SPLITS)
    assert_no_text_shared(splits)
    # nothing is invented, and every kept record is in the split its time says
    kept = [r for recs in splits.values() for r in recs]
    assert len({r.id for r in kept}) == len(kept) <= len(records)
    for r in splits["dev"]:
        assert datetime(2018, 4, 1) <= r.time < datetime(2018, 4, 16)
    for r in splits["test"]:
        assert r.time >= datetime(2018, 4, 16)
    # train keeps every record of its period (repeats are dropped only from later splits)
    assert len(splits["train"]) == sum(1 for r in records
                                       if r.time is None or r.time < datetime(2018, 4, 1))


# --- the real Haikou dataset ------------------------------------------------------------------

@pytest.fixture(scope="module")
def haikou() -> Dataset:
    return load_dataset(HAIKOU_YAML)


def test_real_haikou_dataset(haikou: Dataset) -> None:
    by_source = Counter(r.source for r in haikou.records)
    assert by_source["tickets-2018-02-to-04.jsonl.gz"] > 6900
    assert by_source["tickets-2017-12-to-2018-01-older-taxonomy.jsonl.gz"] > 6100
    older = [r for r in haikou.records if r.source.endswith("older-taxonomy.jsonl.gz")]
    assert all(set(r.labels) <= {"department"} for r in older)
    assert sum("department" in r.labels for r in older) > 0.95 * len(older)
    current = [r for r in haikou.records if r.source == "tickets-2018-02-to-04.jsonl.gz"]
    assert sum(set(r.labels) == {"category", "subcategory", "department"}
               for r in current) > 0.95 * len(current)
    assert not any("核实处理" in r.text for r in haikou.records)


def test_real_haikou_split_never_shares_a_text(haikou: Dataset) -> None:
    splits = haikou.split()
    assert set(splits) == {"train", "dev", "test"}
    assert all(len(v) > 500 for v in splits.values())
    assert_no_text_shared(splits)
    assert all(r.time < datetime(2018, 4, 1) for r in splits["train"])
    assert all(r.time >= datetime(2018, 4, 16) for r in splits["test"])


# --- report -----------------------------------------------------------------------------------

def test_report_counts_duplicates_and_conflicts(tmp_path: Path) -> None:
    t = datetime(2018, 3, 1)
    records = [
        # one text three times (two spellings of it): departments disagree, categories agree
        rec("路灯坏了", t, "1", category="市容环境", department="城管"),
        rec("路灯坏了", t, "2", category="市容环境", department="城管"),
        Record("3", "市民来电反映: 路灯坏了", {"category": "市容环境", "department": "交警"},
               "mem", t),
        # one text twice: one row has only a department (older taxonomy)
        rec("有车违停", t, "4", category="交通管理", department="交警"),
        rec("有车违停", t, "5", department="交警"),
        rec("噪音扰民", t, "6", category="市容环境", department="城管"),
    ]
    config = DatasetConfig(name="city", taxonomy_dir=tmp_path, sources=(
        SourceConfig(path=tmp_path / "x.jsonl", heads={"category": "c", "department": "d"}),),
        splits={})
    taxonomy = load_taxonomy(write_taxonomy_dir(tmp_path / "tax"))
    dataset = Dataset(config=config, taxonomy=taxonomy, records=records,
                      dropped_labels=Counter({"category": 2}))
    out = report(dataset)
    assert out["dataset"] == "city"
    assert out["rows"] == 6 and out["rows_by_source"] == {"mem": 6}
    assert out["splits"] == {"train": 6}
    assert out["duplicate_groups"] == 2
    assert out["rows_in_duplicate_groups"] == 5
    assert out["labels_dropped_not_in_taxonomy"] == {"category": 2}
    category, department = out["heads"]["category"], out["heads"]["department"]
    assert category["rows_labelled"] == 5 and category["labels_used"] == 2
    assert category["labels_in_taxonomy"] == 2
    assert category["duplicate_groups_with_conflict"] == 0
    assert category["majority_share_in_duplicate_groups"] == 1.0
    assert department["rows_labelled"] == 6
    assert department["duplicate_groups_with_conflict"] == 1
    # majority 2 of 3 in the first group, 2 of 2 in the second
    assert department["majority_share_in_duplicate_groups"] == round(4 / 5, 3)
    assert department["top"][0] == ("城管", 3)


def test_a_dataset_without_a_time_split_gets_a_stratified_reproducible_one():
    from training.datasets import HELD_OUT, load_dataset

    teddy = load_dataset(REPO / "data" / "datasets" / "teddy2020c.yaml")
    splits = teddy.split()
    assert splits == teddy.split()  # reproducible
    assert "stratified" in teddy.split_note
    assert sum(len(v) for v in splits.values()) == len(teddy.records)
    hashes = {name: {r.text_hash for r in rows} for name, rows in splits.items()}
    assert not hashes["train"] & hashes["dev"] and not hashes["dev"] & hashes["test"]
    assert not hashes["train"] & hashes["test"]
    labels = {r.labels["category"] for r in teddy.records}
    for label in labels:  # every label keeps about its share in dev and test
        total = sum(r.labels["category"] == label for r in teddy.records)
        dev = sum(r.labels["category"] == label for r in splits["dev"])
        assert abs(dev - total * HELD_OUT) <= 1 + total * 0.02
