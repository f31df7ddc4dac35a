"""Evaluation metrics on hand-made predictions whose answers are known, and the files it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model.errors import DataError
from training.datasets import Record
from training.evaluate import (
    HeadPredictions,
    evaluate,
    expected_calibration_error,
    head_metrics,
    load_labelled_jsonl,
    precision_at_coverage,
    predict_heads,
    reliability,
)


class TablePredictor:
    """Returns fixed probability rows: text "i" gets row i of each head's matrix."""

    def __init__(self, name, spaces, probs):
        self.name, self.spaces, self.probs = name, spaces, probs

    def predict_proba(self, texts):
        rows = [int(t) for t in texts]
        return {h: np.asarray(p, dtype=float)[rows] for h, p in self.probs.items()}


def records(**labels_per_head):
    n = len(next(iter(labels_per_head.values())))
    return [Record(id=str(i), text=str(i), source="toy",
                   labels={h: v[i] for h, v in labels_per_head.items() if v[i] is not None})
            for i in range(n)]


def score_heads(model, data):
    heads, _ = predict_heads(model, data)
    return {h: head_metrics(p) for h, p in heads.items()}, heads


FOUR = ("A", "B", "C", "D")
# Row 0: A right. Row 1: gold B ranked 2nd. Row 2: gold C ranked 3rd. Row 3: gold D ranked 4th.
FOUR_PROBS = [[0.7, 0.1, 0.1, 0.1],
              [0.1, 0.3, 0.5, 0.1],
              [0.1, 0.2, 0.3, 0.4],
              [0.4, 0.3, 0.2, 0.1]]


def test_accuracy_top3_and_f1_match_hand_computed_values():
    model = TablePredictor("toy", {"category": FOUR}, {"category": FOUR_PROBS})
    metrics, heads = score_heads(model, records(category=list(FOUR)))
    m = metrics["category"]
    assert m["accuracy"] == pytest.approx(0.25)
    assert m["top3_accuracy"] == pytest.approx(0.75)
    # Predicted A, C, D, A: only A scores (P 1/2, R 1, F1 2/3); B, C, D have F1 0.
    assert m["macro_f1"] == pytest.approx((2 / 3) / 4)
    assert m["weighted_f1"] == pytest.approx((2 / 3) / 4)
    assert m["classes_f1_zero"] == 3
    assert [c["label"] for c in m["per_class"]] == ["A", "B", "C", "D"]


def test_macro_f1_counts_only_labels_in_gold_or_predicted():
    space = ("A", "B", "C", "D", "E", "F")
    probs = [[0.9, 0.1, 0, 0, 0, 0], [0.1, 0.9, 0, 0, 0, 0]]
    model = TablePredictor("toy", {"category": space}, {"category": probs})
    metrics, _ = score_heads(model, records(category=["A", "B"]))
    assert metrics["category"]["macro_f1"] == pytest.approx(1.0)
    assert metrics["category"]["classes_scored"] == 2


def test_ece_is_zero_for_a_perfectly_calibrated_toy_and_the_gap_otherwise():
    confidence = np.full(1000, 0.8)
    correct = np.arange(1000) < 800  # 80% right at 80% confidence
    assert expected_calibration_error(reliability(confidence, correct), 1000) == pytest.approx(0)
    sure = np.ones(50)
    assert expected_calibration_error(reliability(sure, np.ones(50, bool)), 50) == pytest.approx(0)
    overconfident = np.full(100, 0.9)
    half = np.arange(100) < 50
    assert expected_calibration_error(reliability(overconfident, half), 100) == pytest.approx(0.4)


def test_precision_at_coverage_takes_the_most_confident_rows_first():
    confidence = np.array([0.9, 0.8, 0.7, 0.6])
    correct = np.array([True, True, False, False])
    points = {p["coverage"]: p for p in precision_at_coverage(confidence, correct, (0.5, 1.0))}
    assert points[0.5]["precision"] == 1.0 and points[0.5]["rows"] == 2
    assert points[1.0]["precision"] == 0.5


def test_rows_lacking_a_head_are_skipped_for_that_head():
    spaces = {"category": ("A", "B"), "department": ("X", "Y")}
    probs = {"category": [[0.9, 0.1]] * 3, "department": [[0.2, 0.8]] * 3}
    model = TablePredictor("toy", spaces, probs)
    metrics, _ = score_heads(model, records(category=["A", None, None], department=["Y", "Y", "X"]))
    assert metrics["category"]["rows"] == 1 and metrics["category"]["accuracy"] == 1.0
    assert metrics["department"]["rows"] == 3
    assert metrics["department"]["accuracy"] == pytest.approx(2 / 3)


def test_gold_outside_the_label_space_counts_as_wrong():
    model = TablePredictor("toy", {"category": ("A", "B")}, {"category": [[0.6, 0.4]] * 2})
    metrics, _ = score_heads(model, records(category=["A", "Z"]))
    assert metrics["category"]["accuracy"] == 0.5
    assert metrics["category"]["gold_outside_label_space"] == 1


def test_evaluate_writes_metrics_report_and_plots_beside_the_baseline(tmp_path):
    spaces = {"category": ("A", "B"), "subcategory": ("A/a", "A/b", "B/c")}
    # Raw argmax of row 1 is inconsistent (category A, subcategory B/c); decoding resolves it.
    good = TablePredictor("good", spaces, {
        "category": [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]],
        "subcategory": [[0.8, 0.1, 0.1], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8]]})
    weak = TablePredictor("weak", spaces, {
        "category": [[0.5, 0.5]] * 3, "subcategory": [[0.4, 0.3, 0.3]] * 3})
    data = records(category=["A", "B", "B"], subcategory=["A/a", "B/c", "B/c"])
    metrics = evaluate(good, data, tmp_path, baseline=weak, split_name="toy")
    assert {p.name for p in tmp_path.iterdir()} == {
        "metrics.json", "report.md", "category.png", "subcategory.png"}
    assert json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8")) == metrics
    assert metrics["baseline"]["name"] == "weak"
    consistency = metrics["model"]["hierarchy_consistency"]
    assert consistency["decoded"] == 1.0 and consistency["argmax"] == pytest.approx(2 / 3)
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "good (model)" in report and "weak (baseline)" in report
    assert "![category](category.png)" in report


def test_evaluate_refuses_records_without_labels_for_the_model(tmp_path):
    model = TablePredictor("toy", {"category": ("A",)}, {"category": [[1.0]]})
    with pytest.raises(DataError, match="no record carries a label"):
        evaluate(model, records(department=["X"]), tmp_path)
    with pytest.raises(DataError, match="no records"):
        evaluate(model, [], tmp_path)


def test_labelled_jsonl_accepts_keys_or_names_beside_category(tmp_path):
    path = tmp_path / "gold.jsonl"
    rows = [{"text": "路灯坏了 请交警核实处理!", "subcategory": "市政/路灯"},
            {"text": "噪音", "category": "环境", "subcategory": "噪音", "department": "环保局"}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    first, second = load_labelled_jsonl(path)
    # a subcategory key names its category too (model/duty.py row_labels, as retraining reads it)
    assert first.labels == {"subcategory": "市政/路灯", "category": "市政"}
    assert "核实处理" not in first.text
    assert second.labels == {"category": "环境", "subcategory": "环境/噪音", "department": "环保局"}
    path.write_text(json.dumps({"text": "x", "subcategory": "噪音"}), encoding="utf-8")
    with pytest.raises(DataError, match="needs its category"):
        load_labelled_jsonl(path)


def test_pooled_predictions_concatenate():
    part = HeadPredictions(np.array(["A"], dtype=object), [("A", "B")], np.array([0.9]), ("A", "B"))
    both = HeadPredictions.concat([part, part])
    assert len(both.gold) == 2 and both.correct.all()


def test_prediction_in_chunks_changes_nothing(monkeypatch):
    model = TablePredictor("toy", {"category": FOUR}, {"category": FOUR_PROBS})
    data = records(category=list(FOUR))
    whole, _ = score_heads(model, data)
    monkeypatch.setattr("training.evaluate.CHUNK_ROWS", 3)
    chunked, _ = score_heads(model, data)
    assert chunked == whole


def test_the_hybrid_routers_parts_are_scored_beside_the_whole(tmp_path, tiny_bundle,
                                                               haikou_sample):
    from model.router import Router
    from training.evaluate import evaluate

    router = Router(tiny_bundle)
    parts = router.parts()
    assert set(parts) == {"encoder", "char n-grams"}
    records = [r for r in haikou_sample.records if "category" in r.labels][:60]
    metrics = evaluate(router, records, tmp_path, split_name="dev", parts=parts)
    assert set(metrics["parts"]) == {"encoder", "char n-grams"}
    lexical_alone = metrics["parts"]["char n-grams"]["heads"]["department"]["accuracy"]
    assert 0 <= lexical_alone <= 1
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "The hybrid router's parts" in report and "char n-grams" in report
