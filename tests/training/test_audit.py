"""Label audit: planted label flips in an easy, separable set come out on top."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from model.errors import InvalidInput
from training.audit import (
    AUDIT_MODEL,
    AuditConfig,
    audit,
    audit_dataset,
    out_of_fold_probabilities,
)
from training.baseline import BaselineConfig
from training.datasets import Record

FIXTURE_YAML = Path(__file__).resolve().parent.parent / "fixtures" / "haikou-sample.yaml"
DEPARTMENTS = ("住建局", "交通局", "城管局", "市场监管局")
# Each department's complaints are written with characters of their own: easy to separate.
VOCABULARY = ("楼房屋墙漏水电梯物业装修小区业主", "车路公交站地铁出租司机堵塞红绿灯",
              "摊贩占道垃圾广告噪音违建工地夜间", "食品药店价格超市过期商品发票退款")


@pytest.fixture(scope="module")
def flipped():
    """240 separable rows, 12 (5%) of them given another department's label."""
    rng = random.Random(0)
    records = []
    for d, chars in enumerate(VOCABULARY):
        for i in range(60):
            text = "".join(rng.choice(chars) for _ in range(24))
            records.append(Record(f"{d}-{i}", text, {"department": DEPARTMENTS[d]}, "synthetic"))
    flips = set(rng.sample(range(len(records)), 12))
    for i in flips:
        r = records[i]
        wrong = rng.choice([x for x in DEPARTMENTS if x != r.labels["department"]])
        records[i] = Record(r.id, r.text, {"department": wrong}, r.source, raw_text=r.text)
    return records, {records[i].id for i in flips}


FAST = AuditConfig(folds=4, baseline=BaselineConfig(calibration_folds=2))


def test_planted_flips_rank_first(flipped):
    records, flips = flipped
    result = audit(records, {"department": DEPARTMENTS}, top=15, config=FAST)
    found = [s.record.id for s in result.suspects]
    assert len(set(found[:12]) & flips) >= 10  # most flips among the top 12…
    assert set(found[:10]) <= flips  # …and nothing else at the very top
    # ranked by self-confidence: the probability of the given label only rises down the list
    scores = [s.score for s in result.suspects]
    assert scores[:10] == sorted(scores[:10])
    first = result.suspects[0]
    [issue] = first.issues
    assert issue.head == "department" and issue.rank == 1
    assert issue.suggested != issue.given and issue.suggested_probability > 0.5
    assert result.heads["department"]["rows"] == 240 and result.rows == 240


def test_a_suspect_is_ready_for_the_review_queue(flipped):
    records, _ = flipped
    [suspect] = audit(records, {"department": DEPARTMENTS}, top=1, config=FAST).suspects
    data = suspect.to_dict()
    assert data["complaint_id"] == suspect.record.id and data["text"] == suspect.record.text
    s = data["suggestion"]
    assert s["department"]["label"] == suspect.issues[0].suggested
    assert s["model_version"] == AUDIT_MODEL and s["decision"] == "review"
    assert s["audit"]["given"] == dict(suspect.record.labels)
    assert [t["label"] for t in s["department"]["top"]][0] == s["department"]["label"]


def test_out_of_fold_rows_are_predicted_by_a_model_that_never_saw_them(flipped):
    records, flips = flipped
    probs = out_of_fold_probabilities(records, {"department": DEPARTMENTS}, folds=3,
                                      config=BaselineConfig(calibration_folds=2))["department"]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    given = np.array([DEPARTMENTS.index(r.labels["department"]) for r in records])
    flipped_rows = [i for i, r in enumerate(records) if r.id in flips]
    # a model that had seen a flipped row would give its wrong label some weight
    assert probs[flipped_rows, given[flipped_rows]].max() < 0.5


def test_rare_labels_are_not_judged(flipped):
    records, _ = flipped
    rare = [Record("rare-1", "罕见的投诉内容", {"department": "卫健委"}, "synthetic")]
    result = audit(records + rare, {"department": (*DEPARTMENTS, "卫健委")}, top=300,
                   config=FAST)
    assert "rare-1" not in {s.record.id for s in result.suspects}
    assert result.heads["department"]["auditable"] == 240


def test_audit_of_a_real_dataset_with_corrections(tmp_path):
    from training.datasets import load_dataset

    dataset = load_dataset(FIXTURE_YAML)
    train = dataset.split()["train"]
    fixed = train[0]
    correction = {"complaint_id": fixed.id, "text": fixed.raw_text, "kind": "correct",
                  "department": next(d for d in dataset.taxonomy.labels("department")
                                     if d != fixed.labels["department"])}
    result = audit_dataset(dataset, [correction], top=10, config=FAST)
    assert 0 < len(result.suspects) <= 10
    assert set(result.heads) == {"category", "subcategory", "department"}
    for s in result.suspects:
        sug = s.suggestion
        # category and subcategory stay consistent in what the officer is shown
        assert sug["subcategory"]["label"].split("/", 1)[0] == sug["category"]["label"]
        for issue in s.issues:
            assert issue.suggested != issue.given
            assert sug[issue.head]["label"] == issue.suggested
    with pytest.raises(InvalidInput, match="frozen"):
        audit_dataset(dataset, split="test")
