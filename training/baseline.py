"""The TF-IDF baseline: character 1–3-grams and a calibrated linear SVM per head.

Every report shows the fine-tuned router beside it. One vectoriser is shared by all heads; each
head's classifier is trained on the rows that carry that head (the older Haikou tickets train the
department head only). The classifier choice was measured on Haikou dev (see `_fit_head`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.svm import LinearSVC

from model.errors import BundleError, DataError, InvalidInput
from model.hierarchy import Ranked, decode
from model.taxonomy import HEADS
from training.datasets import Dataset, Record, data_hash, load_dataset
from training.predictor import BASELINE_KIND, BASELINE_META

MODEL_FILE = "model.joblib"


@dataclass(frozen=True)
class BaselineConfig:
    """Knobs of the baseline; saved in meta.json next to the model they produced."""

    ngram_max: int = 3
    min_df: int = 2
    C: float = 0.5
    class_weight: str | None = None  # "balanced" moved Haikou dev scores by under 0.01
    calibration_folds: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.ngram_max <= 6:
            raise InvalidInput(f"ngram_max={self.ngram_max}: use 1 to 6 (3 is the default)",
                               "ngram_max")
        if self.min_df < 1:
            raise InvalidInput(f"min_df={self.min_df}: use an integer ≥ 1", "min_df")
        if self.C <= 0:
            raise InvalidInput(f"C={self.C}: the SVM's C must be positive, e.g. 0.5", "C")
        if self.class_weight not in (None, "balanced"):
            raise InvalidInput(f"class_weight={self.class_weight!r}: use None or 'balanced'",
                               "class_weight")
        if self.calibration_folds < 2:
            raise InvalidInput(f"calibration_folds={self.calibration_folds}: use 2 or more",
                               "calibration_folds")


class TfidfBaseline:
    """A trained baseline; implements `training.predictor.Predictor`."""

    def __init__(self, vectorizer: TfidfVectorizer, estimators: Mapping[str, Any],
                 spaces: Mapping[str, tuple[str, ...]], meta: Mapping[str, Any]):
        self.vectorizer = vectorizer
        self.estimators = dict(estimators)
        self.spaces = {h: tuple(spaces[h]) for h in estimators}
        self.meta = dict(meta)
        self.name = str(meta.get("name", BASELINE_KIND))

    def predict_proba(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        features = self.vectorizer.transform(list(texts))
        out = {}
        for head, estimator in self.estimators.items():
            position = {label: i for i, label in enumerate(self.spaces[head])}
            full = np.zeros((len(texts), len(position)))
            # Labels never seen in training keep probability 0; the rest land in their column.
            full[:, [position[c] for c in estimator.classes_]] = estimator.predict_proba(features)
            out[head] = full
        return out

    def predict(self, texts: Sequence[str], k: int = 3) -> list[dict[str, Ranked]]:
        """Hierarchy-consistent top-`k` answers per head."""
        return decode(self.predict_proba(texts), self.spaces, k=k)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump({"vectorizer": self.vectorizer, "estimators": self.estimators},
                    directory / MODEL_FILE, compress=3)
        meta = {**self.meta, "spaces": {h: list(s) for h, s in self.spaces.items()}}
        (directory / BASELINE_META).write_text(json.dumps(meta, ensure_ascii=False, indent=1),
                                               encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> TfidfBaseline:
        directory = Path(directory)
        try:
            meta = json.loads((directory / BASELINE_META).read_text(encoding="utf-8"))
            parts = joblib.load(directory / MODEL_FILE)
        except (OSError, ValueError) as exc:
            raise BundleError(f"cannot load baseline from {directory}: {exc}; retrain it with "
                              "`huying baseline DATASET_YAML --out DIR`") from exc
        spaces = {h: tuple(s) for h, s in meta["spaces"].items()}
        if set(spaces) != set(parts["estimators"]):
            raise BundleError(f"{directory}: meta.json lists heads {sorted(spaces)} but the model "
                              f"has {sorted(parts['estimators'])}; retrain the baseline")
        return cls(parts["vectorizer"], parts["estimators"], spaces, meta)


class _Constant:
    """Stands in for a classifier when a head's training rows carry a single label."""

    def __init__(self, label: str):
        self.classes_ = np.array([label])

    def predict_proba(self, features: Any) -> np.ndarray:
        return np.ones((features.shape[0], 1))


def train_baseline(records: Sequence[Record], spaces: Mapping[str, Sequence[str]], *,
                   config: BaselineConfig | None = None, dataset: str = "",
                   name: str = BASELINE_KIND) -> TfidfBaseline:
    """Fit the vectoriser on every record, then one calibrated classifier per labelled head."""
    config = config or BaselineConfig()
    heads = [h for h in spaces if any(h in r.labels for r in records)]
    if not heads:
        raise DataError(f"no training record carries a label for any of {list(spaces)}; check "
                        "the dataset config's `heads` mapping and its train split")
    # A handful of rows (a new city's first labels) would leave no n-gram at min_df 2.
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, config.ngram_max),
                                 min_df=config.min_df if len(records) > config.min_df else 1,
                                 sublinear_tf=True, dtype=np.float32)
    features = vectorizer.fit_transform([r.text for r in records])
    estimators, rows_per_head = {}, {}
    for head in heads:
        rows = [i for i, r in enumerate(records) if head in r.labels]
        labels = np.array([records[i].labels[head] for i in rows])
        unknown = sorted(set(labels) - set(spaces[head]))
        if unknown:
            raise DataError(f"{head} label(s) {unknown[:5]} are not in the label space; add them "
                            "to the duty list or fix the data")
        estimators[head] = _fit_head(features[rows], labels, config)
        rows_per_head[head] = len(rows)
    meta = {"kind": BASELINE_KIND, "name": name, "dataset": dataset, "heads": heads,
            "training_rows": len(records), "training_rows_per_head": rows_per_head,
            "data_hash": data_hash(records), "config": asdict(config),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "sklearn_version": sklearn.__version__}
    return TfidfBaseline(vectorizer, estimators, {h: tuple(spaces[h]) for h in heads}, meta)


# Why LinearSVC + sigmoid calibration. Haikou dev, raw argmax, accuracy / macro-F1 / ECE:
#                          category         subcategory      department
#   LinearSVC C=0.5 + sig  .509/.245/.042   .396/.152/.042   .686/.345/.067
#   one-vs-rest LogReg C=10 .500/.200/.050  .377/.110/.110   .656/.253/.077
# with fit times of about 5 and 10 minutes for the three heads on 2 busy cores; multinomial
# LogReg (lbfgs) needed 4 minutes and 11 GB for the category head alone. Temperature scaling of
# the SVM scores left ECE above 0.3; class_weight="balanced" moved every score by under 0.01.
def _fit_head(features: Any, labels: np.ndarray, config: BaselineConfig) -> Any:
    if len(set(labels)) == 1:
        return _Constant(str(labels[0]))
    svm = LinearSVC(C=config.C, class_weight=config.class_weight)
    largest = int(np.unique(labels, return_counts=True)[1].max())
    folds = min(config.calibration_folds, max(2, largest))
    splitter = (StratifiedKFold(folds, shuffle=True, random_state=0) if largest >= folds
                else KFold(folds, shuffle=True, random_state=0))
    with warnings.catch_warnings():
        # Rare classes missing from a fold are expected; sklearn warns about each.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        # Explicit fold indices: sklearn refuses an integer cv when a class has fewer rows than
        # folds, and the long tail (hundreds of subcategories under 5 rows) always does.
        splits = list(splitter.split(features, labels))
        calibrated = CalibratedClassifierCV(svm, method="sigmoid", cv=splits, ensemble=False)
        return calibrated.fit(features, labels)


def cross_validate(dataset: Dataset | str | Path, folds: int = 5, *,
                   config: BaselineConfig | None = None,
                   fit: Callable[[list[Record], dict[str, tuple[str, ...]]], Any] | None = None
                   ) -> dict[str, Any]:
    """K-fold cross-validation over every labelled row (data without a time split).

    Folds are stratified by each row's first label and grouped by normalised text, so a repeated
    complaint never sits on both sides. `fit(train_records, spaces)` returns a Predictor; the
    default trains this baseline. Returns per-head mean ± sd over folds and pooled metrics.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    from training.evaluate import HeadPredictions, head_metrics, predict_heads

    if not isinstance(dataset, Dataset):
        dataset = load_dataset(dataset)
    records = [r for r in dataset.records if r.labels]
    if not 2 <= folds <= len(records):
        raise InvalidInput(f"--cv {folds}: use 2 to {len(records)} folds, e.g. --cv 5", "cv")
    spaces = {h: dataset.taxonomy.labels(h) for h in dataset.heads}
    strata = [next(r.labels[h] for h in HEADS if h in r.labels) for r in records]
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=0)
    pooled: dict[str, list[HeadPredictions]] = {}
    per_fold = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # classes rarer than the fold count
        split_indices = list(splitter.split(records, strata, [r.text for r in records]))
    for train_rows, test_rows in split_indices:
        train_records = [records[i] for i in train_rows]
        model = (fit(train_records, spaces) if fit is not None else
                 train_baseline(train_records, spaces, config=config, dataset=dataset.config.name))
        heads, _ = predict_heads(model, [records[i] for i in test_rows])
        per_fold.append({h: _summary(head_metrics(p)) for h, p in heads.items()})
        for head, predictions in heads.items():
            pooled.setdefault(head, []).append(predictions)
    summary: dict[str, dict[str, Any]] = {}
    for head, parts in pooled.items():
        scores = [fold[head] for fold in per_fold if head in fold]
        summary[head] = {f"{k}_{stat}": float(fn([s[k] for s in scores]))
                         for k in ("macro_f1", "accuracy")
                         for stat, fn in (("mean", np.mean), ("std", np.std))}
        summary[head]["pooled"] = _summary(head_metrics(HeadPredictions.concat(parts)))
    return {"dataset": dataset.config.name, "folds": folds, "rows": len(records),
            "config": asdict(config or BaselineConfig()), "heads": summary, "per_fold": per_fold}


def _summary(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: metrics[k] for k in ("rows", "accuracy", "macro_f1", "weighted_f1", "top3_accuracy",
                                    "ece")}
