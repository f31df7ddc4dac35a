"""Calibrated confidences and the auto/review decision.

Temperatures (one per head) make softmax confidences mean what they say; per-class thresholds,
chosen on the dev split for a target precision, say when a prediction may be dispatched without a
person (`auto`) or must be checked first (`review`). Fitting lives in training/calibration.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

NEVER = 1.01  # a threshold no probability reaches: this class always goes to review


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Calibration:
    temperatures: Mapping[str, float]
    thresholds: Mapping[str, Sequence[float]]  # head -> one threshold per label
    decision_heads: tuple[str, ...]  # all of these must clear their threshold for `auto`
    target_precision: float = 0.95

    def probabilities(self, logits: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {h: softmax(v, self.temperatures.get(h, 1.0)) for h, v in logits.items()}

    def decide(self, chosen: Mapping[str, tuple[int, float]]) -> str:
        """`auto` if every decision head's chosen (label index, confidence) clears its threshold;
        a NaN confidence clears none (fail closed)."""
        for head in self.decision_heads:
            index, confidence = chosen[head]
            if not confidence >= self.thresholds[head][index]:
                return "review"
        return "auto"

    def to_dict(self) -> dict[str, Any]:
        return {"temperatures": dict(self.temperatures),
                "thresholds": {h: list(v) for h, v in self.thresholds.items()},
                "decision_heads": list(self.decision_heads),
                "target_precision": self.target_precision}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        return cls(temperatures=dict(data["temperatures"]),
                   thresholds={h: tuple(v) for h, v in data["thresholds"].items()},
                   decision_heads=tuple(data["decision_heads"]),
                   target_precision=float(data["target_precision"]))
