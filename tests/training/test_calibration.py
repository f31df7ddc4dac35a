"""Calibration: temperature scaling reduces ECE; thresholds reach the target precision."""

from __future__ import annotations

import numpy as np

from model.calibration import NEVER, Calibration, softmax
from training.calibration import (
    expected_calibration_error,
    fit_calibration,
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
