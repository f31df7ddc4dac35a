"""Calibration: temperature scaling reduces ECE; thresholds reach the target precision."""

from __future__ import annotations

import numpy as np

from model.calibration import NEVER, Calibration, DecisionModel, softmax
from training.calibration import (
    expected_calibration_error,
    fit_calibration,
    fit_decision_model,
    fit_temperature,
    thresholds_for_precision,
)


def _overconfident(n=3000, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, classes, n)
    logits = rng.normal(0, 1, (n, classes))
    logits[np.arange(n), targets] += 1.0  # right about half the time
    return logits * 4.0, targets  # ×4: far too sure of itself


def test_temperature_scaling_reduces_ece():
    logits, targets = _overconfident()
    before = expected_calibration_error(softmax(logits), targets)
    t = fit_temperature(logits, targets)
    after = expected_calibration_error(softmax(logits, t), targets)
    assert t > 2.0
    assert after < before / 3


def test_fit_ignores_unlabelled_rows():
    logits, targets = _overconfident()
    targets[:100] = -100
    assert fit_temperature(logits, targets) > 2.0


def test_thresholds_reach_the_target_precision_on_the_rows_they_pass():
    logits, targets = _overconfident(seed=1)
    probs = softmax(logits, fit_temperature(logits, targets))
    thresholds = thresholds_for_precision(probs, targets, target=0.9, min_support=10)
    predicted, confidence = probs.argmax(1), probs.max(1)
    passed = confidence >= np.array(thresholds)[predicted]
    assert passed.any()
    assert (predicted[passed] == targets[passed]).mean() >= 0.9


def test_unreachable_precision_means_always_review():
    rng = np.random.default_rng(2)
    probs = softmax(rng.normal(0, 1, (200, 4)))
    targets = rng.integers(0, 4, 200)  # noise: no threshold gives 99% precision
    assert set(thresholds_for_precision(probs, targets, target=0.99)) == {NEVER}


def test_decide_needs_every_decision_head_to_pass():
    cal = Calibration(temperatures={"category": 1.0, "department": 1.0},
                      thresholds={"category": (0.5, 0.9), "department": (0.6,)},
                      decision_heads=("category", "department"))
    assert cal.decide({"category": (0, 0.7), "department": (0, 0.7)}) == "auto"
    assert cal.decide({"category": (1, 0.7), "department": (0, 0.7)}) == "review"
    assert Calibration.from_dict(cal.to_dict()) == cal


def test_fit_calibration_covers_every_head():
    logits, targets = _overconfident()
    cal = fit_calibration({"category": logits}, {"category": targets}, ["category"])
    assert len(cal.thresholds["category"]) == logits.shape[1]


def test_a_nan_confidence_is_never_auto():
    cal = Calibration(temperatures={"department": 1.0}, thresholds={"department": (0.0,)},
                      decision_heads=("department",))
    assert cal.decide({"department": (0, float("nan"))}) == "review"


def _two_parts(n=4000, classes=6, seed=0):
    """An encoder and an n-gram part, each right on its own rows: where they agree the fused
    answer is nearly always right, which the fused confidence alone does not show."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, classes, n)
    encoder, lexical = rng.normal(0, 1, (2, n, classes))
    encoder[np.arange(n), np.where(rng.random(n) < 0.7, targets, rng.integers(0, classes, n))] += 2.5
    lexical[np.arange(n), np.where(rng.random(n) < 0.7, targets, rng.integers(0, classes, n))] += 2.5
    support = np.bincount(targets, minlength=classes)
    return encoder, lexical, targets, support


def test_a_decision_model_reaches_the_target_precision_on_new_rows():
    encoder, lexical, targets, support = _two_parts()
    fused = encoder + lexical
    probs = softmax(fused, fit_temperature(fused, targets))
    model, share = fit_decision_model(probs, encoder, lexical, targets, support, target=0.95)
    assert 0.2 < share < 1.0
    encoder, lexical, targets, _ = _two_parts(seed=1)
    fused = encoder + lexical
    probs = softmax(fused, fit_temperature(fused, targets))
    passed = model.p_correct(probs, encoder, lexical) >= model.threshold
    assert 0.2 < passed.mean() < 1.0
    assert (probs.argmax(1)[passed] == targets[passed]).mean() >= 0.93


def test_fit_calibration_keeps_a_decision_model_only_with_the_parts():
    encoder, lexical, targets, support = _two_parts()
    fused = {"department": encoder + lexical}
    plain = fit_calibration(fused, {"department": targets}, ["department"])
    assert plain.decision_models == {}
    cal = fit_calibration(fused, {"department": targets}, ["department"],
                          parts=({"department": encoder}, {"department": lexical}),
                          support={"department": support})
    assert set(cal.decision_models) == {"department"}
    assert Calibration.from_dict(cal.to_dict()) == cal


def test_too_few_wrong_rows_fit_no_decision_model():
    encoder, lexical, targets, support = _two_parts(n=300)
    right = np.eye(6)[targets] * 50  # every answer right: nothing to learn from
    assert fit_decision_model(softmax(right), right, right, targets, support, 0.95) is None


def test_decide_uses_the_decision_model_where_it_has_the_probability():
    model = DecisionModel(coefficients=(1.0, 0.0, 0.0, 0.0, 0.0), intercept=0.0, threshold=0.8,
                          part_temperatures=(1.0, 1.0), log_support=(0.0, 0.0))
    cal = Calibration(temperatures={"department": 1.0}, thresholds={"department": (NEVER, 0.0)},
                      decision_heads=("department",), decision_models={"department": model})
    assert cal.decide({"department": (0, 0.99)}, {"department": 0.85}) == "auto"
    assert cal.decide({"department": (1, 0.99)}, {"department": 0.75}) == "review"
    assert cal.decide({"department": (0, 0.99)}, {"department": float("nan")}) == "review"
    assert cal.decide({"department": (1, 0.5)}) == "auto"  # no probability: the thresholds
