"""Fitting the router's char n-gram part and choosing its fusion with the encoder (on dev).

    heads = fit_lexical_heads(train, spaces)
    weights, figures = choose_fusion(encoder_dev_logits, heads.scores(dev_texts), dev_targets)

The linear models are LinearSVCs (C=0.5, as the baseline's; measured in training/baseline.py) on
the baseline's features, capped at the 50,000 most frequent n-grams: on Haikou dev the three
heads' raw accuracies moved by under 0.4 points between 25k, 50k and all 110k n-grams, and 50k
keeps the bundle's weights at ~60 MB (float16). Both parts are trained on the train split only, so
their dev predictions are held out; the fusion weights are chosen on those, per head, from a grid
that includes each part alone: on dev the fusion is never worse than either part.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from model.lexical_heads import LexicalHeads
from model.normalize import normalize_text
from training.datasets import Record

MAX_FEATURES = 50_000
C = 0.5
# (encoder weight, lexical weight), the encoder alone first and the n-grams alone last.
FUSION_GRID = ((1.0, 0.0), *((1.0, b) for b in (0.5, 1, 2, 3, 4, 6, 8, 12, 16, 24)), (0.0, 1.0))


def fit_lexical_heads(records: Sequence[Record], spaces: Mapping[str, Sequence[str]],
                      max_features: int = MAX_FEATURES) -> LexicalHeads:
    """One LinearSVC per head over char 1–3-gram TF-IDF of the normalised texts; labels of the
    space that no record carries get zero weights and the lowest bias."""
    texts = [normalize_text(r.text) for r in records]
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3),
                                 min_df=2 if len(records) > 2 else 1, sublinear_tf=True,
                                 max_features=max_features, dtype=np.float32)
    features = vectorizer.fit_transform(texts)
    vocabulary = vectorizer.get_feature_names_out()
    weights, biases = {}, {}
    for head, space in spaces.items():
        rows = [i for i, r in enumerate(records) if head in r.labels]
        labels = np.array([records[i].labels[head] for i in rows])
        w = np.zeros((len(vocabulary), len(space)), dtype=np.float32)
        b = np.zeros(len(space), dtype=np.float32)
        column = {label: j for j, label in enumerate(space)}
        classes = sorted(set(labels))
        if len(classes) == 1:  # one label: it always wins
            b[:] = -1.0
            b[column[classes[0]]] = 1.0
        elif classes:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence warnings on the long tail
                svm = LinearSVC(C=C).fit(features[rows], labels)
            coef = svm.coef_ if len(svm.classes_) > 2 else np.vstack([-svm.coef_, svm.coef_])
            intercept = svm.intercept_ if len(svm.classes_) > 2 else np.array(
                [-svm.intercept_[0], svm.intercept_[0]])
            b[:] = float(intercept.min()) - 1.0
            for k, label in enumerate(svm.classes_):
                w[:, column[label]] = coef[k]
                b[column[label]] = intercept[k]
        weights[head], biases[head] = w, b
    return LexicalHeads(list(vocabulary), vectorizer.idf_, weights, biases)


def choose_fusion(encoder: Mapping[str, np.ndarray], lexical: Mapping[str, np.ndarray],
                  targets: Mapping[str, np.ndarray]
                  ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, Any]]]:
    """Per head, the grid's weights with the best dev accuracy — among equally accurate ones, the
    lowest dev log-loss (at its best temperature): a small dev set ties often, and accuracy alone
    then kept the encoder by default — and each part's and the fused dev accuracy (what the
    bundle records as its parts' figures)."""
    from training.calibration import log_loss
    weights: dict[str, dict[str, float]] = {}
    figures: dict[str, dict[str, Any]] = {}
    for head, logits in encoder.items():
        keep = targets[head] >= 0
        if head not in lexical or not keep.any():
            continue
        y = targets[head][keep]
        accuracy = [float(((a * logits[keep] + b * lexical[head][keep]).argmax(1) == y).mean())
                    for a, b in FUSION_GRID]
        tied = [i for i, acc in enumerate(accuracy) if acc == max(accuracy)]
        best = min(tied, key=lambda i: log_loss(FUSION_GRID[i][0] * logits[keep]
                                                + FUSION_GRID[i][1] * lexical[head][keep], y))
        a, b = FUSION_GRID[best]
        weights[head] = {"encoder": a, "lexical": b}
        figures[head] = {"encoder": round(accuracy[0], 4), "lexical": round(accuracy[-1], 4),
                         "fused": round(accuracy[best], 4), "rows": int(keep.sum())}
    return weights, figures
