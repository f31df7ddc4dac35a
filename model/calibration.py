"""Calibrated confidences and the auto/review decision.

Temperatures (one per head) make softmax confidences mean what they say; per-class thresholds,
chosen on the dev split for a target precision, say when a prediction may be dispatched without a
person (`auto`) or must be checked first (`review`). For a hybrid router a head may instead carry
a decision model: P(the chosen label is right) from how sure the whole and each part are and how
many training rows the label had, with one threshold; it is kept unless the thresholds do better
out-of-fold on dev. Fitting lives in training/calibration.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NEVER = 1.01  # a threshold no probability reaches: this class always goes to review


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class DecisionModel:
    """Logistic P(correct) of one head's chosen label over FEATURES; `auto` needs `threshold`.

    Why: a confidence alone ranks poorly where the parts disagree or the label is rare; on Haikou
    dev this covered 43% at 95% precision out-of-fold, where per-class thresholds covered 40% at
    92% out-of-fold (README, Measured)."""

    FEATURES = ("log confidence", "margin over the second label", "log encoder probability",
                "log n-gram probability", "log training rows of the label")

    coefficients: tuple[float, ...]
    intercept: float
    threshold: float
    part_temperatures: tuple[float, float]  # encoder logits, n-gram scores
    log_support: tuple[float, ...]  # per label: log(1 + training rows)

    def features(self, probs: np.ndarray, encoder: np.ndarray, lexical: np.ndarray,
                 chosen: np.ndarray | None = None) -> np.ndarray:
        """One row of FEATURES per text, for its `chosen` label index (default: the most
        probable in `probs`)."""
        rows = np.arange(len(probs))
        top = probs.argmax(1) if chosen is None else np.asarray(chosen)
        confidence = probs[rows, top]
        others = probs.copy()
        others[rows, top] = 0.0
        parts = [softmax(v, t)[rows, top] for v, t in zip((encoder, lexical),
                                                          self.part_temperatures, strict=True)]
        return np.column_stack([np.log(np.clip(confidence, 1e-12, None)),
                                confidence - others.max(1),
                                *(np.log(np.clip(p, 1e-12, None)) for p in parts),
                                np.asarray(self.log_support)[top]])

    def p_correct(self, probs: np.ndarray, encoder: np.ndarray, lexical: np.ndarray,
                  chosen: np.ndarray | None = None) -> np.ndarray:
        x = self.features(probs, encoder, lexical, chosen)
        return 1.0 / (1.0 + np.exp(-(x @ np.asarray(self.coefficients) + self.intercept)))

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.FEATURES), "coefficients": list(self.coefficients),
                "intercept": self.intercept, "threshold": self.threshold,
                "part_temperatures": list(self.part_temperatures),
                "log_support": list(self.log_support)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecisionModel:
        return cls(coefficients=tuple(data["coefficients"]), intercept=float(data["intercept"]),
                   threshold=float(data["threshold"]),
                   part_temperatures=(float(data["part_temperatures"][0]),
                                      float(data["part_temperatures"][1])),
                   log_support=tuple(data["log_support"]))


@dataclass(frozen=True)
class Calibration:
    temperatures: Mapping[str, float]
    thresholds: Mapping[str, Sequence[float]]  # head -> one threshold per label
    decision_heads: tuple[str, ...]  # all of these must clear their threshold for `auto`
    target_precision: float = 0.95
    # head -> its decision model, used instead of the head's thresholds where present
    decision_models: Mapping[str, DecisionModel] = field(default_factory=dict)

    def probabilities(self, logits: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {h: softmax(v, self.temperatures.get(h, 1.0)) for h, v in logits.items()}

    def p_correct(self, probs: Mapping[str, np.ndarray], encoder: Mapping[str, np.ndarray],
                  lexical: Mapping[str, np.ndarray] | None, chosen: Mapping[str, np.ndarray]
                  ) -> dict[str, np.ndarray]:
        """P(the chosen label index is right) per head with a decision model (needs the n-gram
        part)."""
        if lexical is None:
            return {}
        return {h: m.p_correct(probs[h], encoder[h], lexical[h], chosen[h])
                for h, m in self.decision_models.items() if h in lexical and h in chosen}

    def decide(self, chosen: Mapping[str, tuple[int, float]],
               p_correct: Mapping[str, float] | None = None) -> str:
        """`auto` if every decision head clears its bar: its decision model's threshold where it
        has one and `p_correct` gives it, else the chosen (label index, confidence)'s per-class
        threshold. A NaN clears nothing (fail closed)."""
        p_correct = p_correct or {}
        for head in self.decision_heads:
            if head in self.decision_models and head in p_correct:
                if not p_correct[head] >= self.decision_models[head].threshold:
                    return "review"
                continue
            index, confidence = chosen[head]
            if not confidence >= self.thresholds[head][index]:
                return "review"
        return "auto"

    def to_dict(self) -> dict[str, Any]:
        return {"temperatures": dict(self.temperatures),
                "thresholds": {h: list(v) for h, v in self.thresholds.items()},
                "decision_heads": list(self.decision_heads),
                "target_precision": self.target_precision,
                "decision_models": {h: m.to_dict() for h, m in self.decision_models.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        return cls(temperatures=dict(data["temperatures"]),
                   thresholds={h: tuple(v) for h, v in data["thresholds"].items()},
                   decision_heads=tuple(data["decision_heads"]),
                   target_precision=float(data["target_precision"]),
                   decision_models={h: DecisionModel.from_dict(m)
                                    for h, m in data.get("decision_models", {}).items()})
