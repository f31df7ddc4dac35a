"""Retraining: corrections join the data (test split frozen), the gate, promote and rollback."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from model import versions
from model.errors import BundleError, Conflict, DataError, InvalidInput
from model.normalize import normalize_text
from model.versions import promote, rollback
from training.datasets import Record, load_dataset
from training.gate import Comparison, compare, write_comparison
from training.retrain import (
    correction_records,
    hold_out_recent,
    retrain,
    training_set,
)

FIXTURE_YAML = Path(__file__).resolve().parent.parent / "fixtures" / "haikou-sample.yaml"


@pytest.fixture(scope="module")
def sample():
    return load_dataset(FIXTURE_YAML)


def _other(dataset, head: str, label: str) -> str:
    return next(lab for lab in dataset.taxonomy.labels(head) if lab != label)


# --- training_set -------------------------------------------------------------------------------

def test_a_correction_overrides_the_labels_of_its_complaint(sample):
    splits = sample.split()
    target, dev_row = splits["train"][0], splits["dev"][0]
    department = _other(sample, "department", target.labels["department"])
    corrections = [
        {"complaint_id": target.id, "text": target.raw_text, "kind": "correct",
         "department": "no such department", "submitted_at": "2026-03-01T09:00:00+00:00"},
        # the latest answer for the complaint wins
        {"complaint_id": target.id, "text": target.raw_text, "kind": "correct",
         "department": department, "submitted_at": "2026-03-02T09:00:00+00:00"},
        {"complaint_id": dev_row.id, "text": dev_row.raw_text, "kind": "correct",
         "department": _other(sample, "department", dev_row.labels["department"])},
    ]
    ts = training_set(sample, corrections)
    [fixed] = [r for r in ts.train if r.id == target.id]
    assert fixed.labels == {**target.labels, "department": department}
    assert (fixed.text, fixed.time) == (target.text, target.time)
    assert len(ts.train) == len(splits["train"])  # overridden, not added
    # a dev row keeps its place, with the person's label
    [dev_fixed] = [r for r in ts.dev if r.id == dev_row.id]
    assert dev_fixed.labels["department"] != dev_row.labels["department"]
    assert sorted(ts.overridden) == sorted([target.id, dev_row.id])
    assert not ts.added and not ts.excluded
    # and the original dataset is untouched
    assert next(r for r in sample.split()["train"] if r.id == target.id).labels == target.labels


def test_category_corrected_alone_drops_the_old_subcategory(sample):
    target = sample.split()["train"][0]
    category = _other(sample, "category", target.labels["category"])
    ts = training_set(sample, [{"complaint_id": target.id, "text": target.raw_text,
                                "category": category}])
    [fixed] = [r for r in ts.train if r.id == target.id]
    assert fixed.labels["category"] == category and "subcategory" not in fixed.labels


def test_new_complaints_join_training_with_their_time(sample):
    new_time = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    sub = sample.taxonomy.labels("subcategory")[0]
    ts = training_set(sample, [
        {"complaint_id": "N1", "text": "小区门口 机动车乱停放，堵住了消防通道", "kind": "correct",
         "subcategory": sub, "department": sample.taxonomy.labels("department")[0],
         "received_at": new_time, "submitted_at": new_time + timedelta(hours=5)},
        {"complaint_id": "N2", "text": "这不是投诉", "kind": "not_a_complaint"},
        {"text": "没有编号的一条投诉，说的是路灯不亮", "department": "no such department"},
    ])
    [added] = [r for r in ts.train if r.id == "N1"]
    assert added.text == normalize_text("小区门口 机动车乱停放，堵住了消防通道")
    assert added.labels["subcategory"] == sub
    assert added.labels["category"] == sub.split("/", 1)[0]  # the key carries its category
    assert added.time == datetime(2026, 3, 2, 9, 30)  # naive China time, like the dataset's
    assert added.source == "corrections"
    assert ts.added == ["N1"]
    assert {e.complaint_id for e in ts.excluded} == {"N2", None}
    assert ts.dropped_labels["department"] == 1


def test_the_test_split_stays_frozen(sample):
    splits = sample.split()
    test_row, train_row = splits["test"][0], splits["train"][1]
    corrections = [
        {"complaint_id": test_row.id, "text": test_row.raw_text, "kind": "correct",
         "department": _other(sample, "department", test_row.labels["department"])},
        # a new id with the text of a test complaint would leak it just the same
        {"complaint_id": "copy-of-test", "text": test_row.raw_text, "kind": "correct",
         "department": test_row.labels["department"]},
        {"complaint_id": train_row.id, "text": train_row.raw_text, "kind": "not_a_complaint"},
    ]
    ts = training_set(sample, corrections)
    assert [r.id for r in ts.test] == [r.id for r in splits["test"]]
    assert [r.labels for r in ts.test] == [r.labels for r in splits["test"]]
    test_hashes = {r.text_hash for r in ts.test}
    assert not any(r.text_hash in test_hashes for r in ts.train + ts.dev)
    assert {(e.complaint_id, e.reason) for e in ts.excluded} == {
        (test_row.id, "complaint is in the frozen test split"),
        ("copy-of-test", "same text as a complaint in the frozen test split")}
    assert ts.removed == [train_row.id] and train_row.id not in {r.id for r in ts.train}
    # build_router reads these splits as given
    assert ts.dataset.split()["test"] == ts.test and ts.dataset.split()["train"] == ts.train


def test_split_answers_become_rows_of_their_own(sample):
    target = sample.split()["train"][2]
    departments = sample.taxonomy.labels("department")
    ts = training_set(sample, [{"complaint_id": target.id, "text": target.raw_text,
                                "kind": "split", "parts": [
                                    {"text": "第一件事：路灯不亮", "department": departments[0]},
                                    {"text": "第二件事：噪音扰民", "department": departments[1]}]}])
    assert target.id not in {r.id for r in ts.train}
    parts = [r for r in ts.train if r.id.startswith(target.id + "#")]
    assert [r.labels["department"] for r in parts] == list(departments[:2])


def test_recent_rows_are_weighted_by_repetition(sample):
    train = sample.split()["train"]
    newest = max(r.time for r in train)
    recent = [r for r in train if r.time >= newest - timedelta(days=10)]
    ts = training_set(sample, [], recent_weight=3, recent_days=10)
    assert ts.repeated_rows == 2 * len(recent) > 0
    assert len(ts.train) == len(train) + 2 * len(recent)
    with pytest.raises(InvalidInput, match="recent_weight"):
        training_set(sample, [], recent_weight=0)


def test_bad_corrections_say_what_to_fix(sample):
    with pytest.raises(DataError, match="kind 'maybe'"):
        training_set(sample, [{"text": "x", "kind": "maybe"}])
    with pytest.raises(DataError, match="needs its category"):
        training_set(sample, [{"text": "x", "subcategory": "no key"}])
    with pytest.raises(DataError, match="not an ISO time"):
        training_set(sample, [{"text": "x", "department": "d", "submitted_at": "yesterday"}])


def test_the_newest_corrections_of_new_complaints_are_held_out(sample):
    known = sample.split()["train"][0]
    department = sample.taxonomy.labels("department")[0]
    new = [{"complaint_id": f"N{i}", "text": f"新投诉第{i}号，内容各不相同{i * 7}",
            "department": department,
            "submitted_at": datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=i)}
           for i in range(10)]
    audit_fix = {"complaint_id": known.id, "text": known.raw_text, "department": department,
                 "submitted_at": datetime(2026, 4, 1, tzinfo=UTC)}
    to_train, held = hold_out_recent(sample, new + [audit_fix], 0.2)
    assert [c.complaint_id for c in held] == ["N8", "N9"]
    assert known.id in {c.complaint_id for c in to_train} and len(to_train) == 9
    assert [r.id for r in correction_records(held)] == ["N8", "N9"]


# --- compare and the gate -----------------------------------------------------------------------

class Lookup:
    """A predictor that answers each text from a table (one-hot probabilities)."""

    def __init__(self, name: str, answers: dict[str, dict[str, str]],
                 spaces: dict[str, tuple[str, ...]]):
        self.name, self.answers, self.spaces = name, answers, spaces

    def predict_proba(self, texts):
        out = {}
        for head, space in self.spaces.items():
            p = np.full((len(texts), len(space)), 0.01)
            for i, t in enumerate(texts):
                p[i, space.index(self.answers[t][head])] = 1.0
            out[head] = p / p.sum(axis=1, keepdims=True)
        return out


SPACES = {"department": ("住建局", "交通局", "城管局")}


def _gate_case():
    """60 rows of 住建局 and 60 of 交通局. The current model misses 10 住建局 rows; the
    candidate gets all of those but misses 5 交通局 rows: better overall, worse on one department."""
    records = [Record(f"r{i}", f"text{i}", {"department": "住建局" if i < 60 else "交通局"},
                      "test") for i in range(120)]
    truth = {r.text: dict(r.labels) for r in records}
    current = {t: ({"department": "城管局"} if i < 10 else dict(labels))
               for i, (t, labels) in enumerate(truth.items())}
    candidate = {t: ({"department": "城管局"} if 60 <= i < 65 else dict(labels))
                 for i, (t, labels) in enumerate(truth.items())}
    return records, Lookup("candidate", candidate, SPACES), Lookup("current", current, SPACES)


def test_a_candidate_worse_on_one_department_fails_with_that_reason():
    records, candidate, current = _gate_case()
    result = compare(candidate, current, records, tolerance=0.005, department_tolerance=0.03,
                     min_support=50)
    overall = result.scores["test"]["overall"]["department"]
    assert (overall["candidate"], overall["current"], overall["rows"]) == (
        pytest.approx(115 / 120), pytest.approx(110 / 120), 120)
    assert not result.passed
    [reason] = result.reasons
    assert reason.startswith("test, department 交通局, department: candidate 0.917 vs current "
                             "1.000 on 60 rows")
    # the improvement on 住建局 is a passing check, not a reason
    assert {(c.group, c.passed) for c in result.checks} == {
        ("overall", True), ("住建局", True), ("交通局", False)}
    # with a significance level, a drop that could be chance does not fail: 5 of 5 disagreements
    # going the current model's way has p = 1/32
    assert not compare(candidate, current, records, significance=0.05).passed
    noisy = compare(candidate, current, records, significance=0.01)
    assert noisy.passed
    assert [round(c.p_value, 4) for c in noisy.checks if c.group == "交通局"] == [0.0312]
    # departments under min_support are reported, not gated
    lenient = compare(candidate, current, records, min_support=61)
    assert lenient.passed and lenient.scores["test"]["departments"] == {}


def test_the_gate_fails_overall_and_passes_an_equal_candidate():
    records, candidate, current = _gate_case()
    reverse = compare(current, candidate, records)  # 110 vs 115 overall
    assert not reverse.passed
    assert any("test, overall, department" in r for r in reverse.reasons)
    assert compare(current, current, records).passed
    first = compare(candidate, None, records)
    assert first.passed and "nothing to compare" in first.notes[0]


def test_recent_corrections_are_a_second_scope():
    records, candidate, current = _gate_case()
    recent = [{"complaint_id": r.id, "text": r.text, "department": r.labels["department"]}
              for r in records[60:]]  # only 交通局 rows: the candidate is worse there
    recent = correction_records(recent)
    result = compare(candidate, current, records[:60], recent, min_support=50)
    assert set(result.scores) == {"test", "recent"}
    assert any(r.startswith("recent, overall, department") for r in result.reasons)
    small = compare(candidate, current, records[:60], recent[:10], min_support=50)
    assert small.passed and any("only 10 rows" in n for n in small.notes)


def test_a_missing_head_fails():
    records, candidate, _ = _gate_case()
    both = {**SPACES, "category": ("城乡建设",)}
    current = Lookup("current", {r.text: {**r.labels, "category": "城乡建设"} for r in records},
                     both)
    result = compare(candidate, current, records)
    assert not result.passed and "does not predict category" in result.reasons[0]


def test_the_comparison_is_written_and_read_back(tmp_path):
    records, candidate, current = _gate_case()
    result = compare(candidate, current, records)
    out = write_comparison(result, tmp_path / "cmp")
    saved = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    assert saved["passed"] is False and saved["reasons"] == result.reasons
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "**Gate: FAIL.**" in report and "交通局" in report
    again = Comparison.from_dict(saved)
    assert again.reasons == result.reasons and again.passed is False


# --- model management ---------------------------------------------------------------------------

@pytest.fixture
def bundles_with(tmp_path, tiny_bundle, bundle_copy):
    """A bundles directory holding copies of the tiny bundle under the versions asked for."""
    def make(*names: str) -> Path:
        root = tmp_path / "bundles"
        root.mkdir(exist_ok=True)
        for name in names:
            bundle_copy(tiny_bundle.path, root, name)
        return root

    return make


def test_promote_and_rollback_walk_the_history(bundles_with):
    root = bundles_with("v1", "v2", "v3")
    versions.set_active(root, "v1")
    with pytest.raises(Conflict, match="nothing to roll back to"):
        rollback(root)
    promote(root, "v2", actor="lead")
    promote(root, "v3")
    assert versions.active_version(root) == "v3"
    assert rollback(root, actor="lead") == ("v3", "v2")
    assert rollback(root) == ("v2", "v1")  # twice back, not back and forth
    with pytest.raises(Conflict):
        rollback(root)
    promote(root, "v3")
    assert rollback(root) == ("v3", "v1")
    history = versions.activation_history(root)
    assert [(h.action, h.version, h.previous) for h in history] == [
        ("activate", "v1", None), ("promote", "v2", "v1"), ("promote", "v3", "v2"),
        ("rollback", "v2", "v3"), ("rollback", "v1", "v2"), ("promote", "v3", "v1"),
        ("rollback", "v1", "v3")]
    assert history[1].actor == "lead"


def test_rollback_of_a_pointer_set_before_the_history(bundles_with):
    root = bundles_with("v1", "v2")
    (root / "ACTIVE").write_text("v1\n", encoding="utf-8")  # written by an older Huying
    versions.set_active(root, "v2")
    assert rollback(root) == ("v2", "v1")


def test_promote_refuses_a_failed_comparison_unless_forced(bundles_with):
    root = bundles_with("v1", "v2")
    versions.set_active(root, "v1")
    records, candidate, current = _gate_case()
    write_comparison(compare(candidate, current, records), root / "comparisons" / "v2")
    with pytest.raises(Conflict, match="交通局.*--force"):
        promote(root, "v2")
    assert versions.active_version(root) == "v1"
    entries = {s.version: s for s in versions.list_bundles(root)}
    assert entries["v2"].gate == "fail" and entries["v1"].gate is None and entries["v1"].active
    assert versions.gate_verdict(root, "v2").report is not None
    promote(root, "v2", force=True, actor="lead", reason="approved")
    assert versions.active_version(root) == "v2"
    assert versions.gate_verdict(root, "v1") is None
    last = versions.activation_history(root)[-1]
    assert (last.action, last.actor) == ("promote", "lead")
    assert last.reason.startswith("approved; forced past a failed gate: ") and "交通局" in last.reason


@pytest.mark.parametrize("damage", ["nan", "scrambled"])
def test_promote_and_rollback_refuse_a_damaged_model(bundles_with, damage_weights, damage):
    root = bundles_with("v1", "v2")
    versions.set_active(root, "v1")
    damage_weights(root / "v2", damage)
    with pytest.raises(BundleError, match="probe complaints"):
        promote(root, "v2")
    assert versions.active_version(root) == "v1"
    versions.set_active(root, "v2")  # made active by hand; then v1 is damaged too
    damage_weights(root / "v1", damage)
    with pytest.raises(BundleError, match="probe complaints"):
        rollback(root)
    assert versions.active_version(root) == "v2"


# --- the whole retrain, with the tiny encoder ---------------------------------------------------

def test_retrain_builds_compares_and_promotes(tmp_path, haikou_sample, tiny_bundle,
                                              tiny_encoder_dir):
    from training.finetune import FinetuneConfig
    from training.gate import Gate
    from training.pipeline import BuildOptions
    from training.retrain import RetrainConfig

    root = tmp_path / "bundles"
    root.mkdir()
    shutil.copytree(tiny_bundle.path, root / "tiny-v1")
    versions.set_active(root, "tiny-v1")
    splits = haikou_sample.split()
    fix, test_row = splits["train"][0], splits["test"][0]
    department = _other(haikou_sample, "department", fix.labels["department"])
    corrections = [{"complaint_id": fix.id, "text": fix.raw_text, "kind": "correct",
                    "department": department},
                   {"complaint_id": test_row.id, "text": test_row.raw_text, "kind": "accept",
                    "department": test_row.labels["department"]}]
    config = FinetuneConfig.from_preset("tiny", base=str(tiny_encoder_dir), epochs=1)
    lenient = RetrainConfig(gate=Gate(tolerance=0.99, department_tolerance=0.99))
    result = retrain(haikou_sample, corrections, root, config, promote=True, settings=lenient,
                     options=BuildOptions(version="tiny-v2"), run_dir=tmp_path / "run")
    assert result.version == "tiny-v2" and result.bundle_path == root / "tiny-v2"
    assert result.comparison.current == "router tiny-v1"
    assert result.comparison.scores["test"]["rows"] == len(splits["test"])
    assert (result.report_dir / "report.md").is_file()
    assert result.training["overridden"] == 1
    assert result.training["excluded"] == [{"complaint_id": test_row.id,
                                            "reason": "complaint is in the frozen test split"}]
    assert result.promoted and versions.active_version(root) == "tiny-v2"
    assert rollback(root) == ("tiny-v2", "tiny-v1")
    manifest = json.loads((root / "tiny-v2" / "bundle.json").read_text(encoding="utf-8"))
    assert manifest["splits"] == {"train": len(splits["train"]), "dev": len(splits["dev"]),
                                  "test": len(splits["test"])}


def test_correction_times_are_read_on_the_datasets_clock():
    """Store times are aware (UTC); dataset times are naive China time. 01:00 UTC is 09:00 there,
    not 01:00: an 8-hour skew would move corrections across the recent-window and split bounds."""
    from training.retrain import parse_corrections

    [aware, naive] = parse_corrections([
        {"text": "路灯不亮", "category": "城乡建设", "received_at": "2018-04-20T01:00:00+00:00"},
        {"text": "路灯不亮", "category": "城乡建设", "received_at": "2018-04-20T09:00:00"}])
    assert aware.received_at == naive.received_at == datetime(2018, 4, 20, 9, 0)
