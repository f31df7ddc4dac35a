"""Fit the calibration on the dev split: a temperature per head, thresholds per class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import minimize_scalar

from model.calibration import NEVER, Calibration, softmax


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature minimising negative log-likelihood on labelled rows (targets ≥ 0)."""
    keep = targets >= 0
    if keep.sum() < 2:
        return 1.0
    z, t = logits[keep], targets[keep]

    def nll(log_t: float) -> float:
        p = softmax(z, float(np.exp(log_t)))
        return float(-np.log(np.clip(p[np.arange(len(t)), t], 1e-12, None)).mean())

    return float(np.exp(minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded").x))


def log_loss(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean negative log-likelihood at the best temperature (labelled rows: targets ≥ 0)."""
    keep = targets >= 0
    p = softmax(logits[keep], fit_temperature(logits, targets))
    return float(-np.log(np.clip(p[np.arange(int(keep.sum())), targets[keep]], 1e-12, None)).mean())


def thresholds_for_precision(probs: np.ndarray, targets: np.ndarray, target: float,
                             min_support: int = 10) -> list[float]:
    """Per class, the lowest confidence above which top-1 predictions of that class reach `target`
    precision on these rows. Classes predicted fewer than `min_support` times use the head-wide
    threshold; if no threshold reaches the target, the class always goes to review."""
    keep = targets >= 0
    probs, targets = probs[keep], targets[keep]
    predicted, confidence = probs.argmax(1), probs.max(1)
    correct = predicted == targets
    head_wide = _lowest_threshold(confidence, correct, target, min_support)
    out = []
    for c in range(probs.shape[1]):
        rows = predicted == c
        if rows.sum() < min_support:
            out.append(head_wide)
        else:
            out.append(_lowest_threshold(confidence[rows], correct[rows], target, min_support))
    return out


def _lowest_threshold(confidence: np.ndarray, correct: np.ndarray, target: float,
                      min_support: int) -> float:
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    counted = np.arange(1, len(order) + 1)
    ok = (hits / counted >= target) & (counted >= min_support)
    if not ok.any():
        return NEVER
    # the largest prefix (lowest threshold) whose precision still reaches the target
    return float(confidence[order][np.nonzero(ok)[0].max()])


def fit_calibration(logits: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray],
                    decision_heads: Sequence[str], target_precision: float = 0.95,
                    min_support: int = 10) -> Calibration:
    temperatures = {h: fit_temperature(v, targets[h]) for h, v in logits.items()}
    thresholds = {h: tuple(thresholds_for_precision(softmax(v, temperatures[h]), targets[h],
                                                    target_precision, min_support))
                  for h, v in logits.items()}
    return Calibration(temperatures=temperatures, thresholds=thresholds,
                       decision_heads=tuple(decision_heads), target_precision=target_precision)


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray) -> float:
    """ECE of the top-1 confidences on labelled rows, with the evaluation report's bins."""
    from training.evaluate import expected_calibration_error as ece
    from training.evaluate import reliability

    keep = targets >= 0
    confidence, correct = probs[keep].max(1), probs[keep].argmax(1) == targets[keep]
    return ece(reliability(confidence, correct), int(keep.sum()))
