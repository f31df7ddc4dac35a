"""Hierarchy-consistent decoding: a subcategory never contradicts its category.

Every predictor (the TF-IDF baseline, the fine-tuned router) yields one probability row per head
over that head's label space; `decode` turns those rows into ranked answers per head. Category and
subcategory are chosen jointly by p(category) · p(subcategory), over subcategories whose parent is
that category, so the top category is always the parent of the top subcategory. Confidences stay
each head's own (calibrated) probability. Other heads (department) are ranked independently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from model.taxonomy import KEY_SEPARATOR


@dataclass(frozen=True)
class Ranked:
    """One head's answer: labels best first, with their confidences."""

    labels: tuple[str, ...]
    confidences: tuple[float, ...]

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def confidence(self) -> float:
        return self.confidences[0]


def parent_index(categories: Sequence[str], subcategories: Sequence[str]) -> np.ndarray:
    """For each subcategory key, the index of its category (-1 if the category is unknown)."""
    position = {c: i for i, c in enumerate(categories)}
    return np.array([position.get(s.split(KEY_SEPARATOR, 1)[0], -1) for s in subcategories])


def decode(probs: Mapping[str, np.ndarray], spaces: Mapping[str, Sequence[str]],
           k: int = 3) -> list[dict[str, Ranked]]:
    """Rank the top `k` labels of every head for each row of `probs` (shape n × labels)."""
    n = len(next(iter(probs.values())))
    order: dict[str, np.ndarray] = {}
    if "category" in probs and "subcategory" in probs:
        cat, sub = probs["category"], probs["subcategory"]
        parents = parent_index(spaces["category"], spaces["subcategory"])
        if (parents < 0).any():
            raise ValueError("subcategory keys must start with a known category")
        joint = sub * cat[:, parents]  # n × subcategories
        order["subcategory"] = np.argsort(-joint, axis=1, kind="stable")
        # A category ranks by its best subcategory's place in that order (so by its best joint
        # score, ties broken as the subcategories' were): top-1 is the top subcategory's parent.
        # Categories without subcategories come last.
        place = np.empty_like(order["subcategory"])
        np.put_along_axis(place, order["subcategory"],
                          np.broadcast_to(np.arange(joint.shape[1]), joint.shape), axis=1)
        first = np.full(cat.shape, joint.shape[1])
        np.minimum.at(first.T, parents, place.T)
        order["category"] = np.argsort(first, axis=1, kind="stable")
    for head, p in probs.items():
        if head not in order:
            order[head] = np.argsort(-p, axis=1, kind="stable")
    out = []
    for i in range(n):
        row = {}
        for head, p in probs.items():
            idx = order[head][i, :k]
            row[head] = Ranked(labels=tuple(spaces[head][j] for j in idx),
                               confidences=tuple(float(p[i, j]) for j in idx))
        out.append(row)
    return out
