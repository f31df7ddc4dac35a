"""Label audit: out-of-fold probabilities flag training rows whose label is probably wrong.

    huying audit data/datasets/haikou12345.yaml --top 50     # suspects into the review queue

Every row is scored by a model that never saw it (k-fold), and cleanlab's confident learning
(`find_label_issues`, ranked by self-confidence: the out-of-fold probability of the given label)
picks the rows whose given label disagrees with what the rest of the data says. The out-of-fold
model is the TF-IDF baseline, not the fine-tuned router: k folds cost k trainings, which is seconds
to a few minutes for the baseline and k × 10+ CPU-minutes for the router, and confident learning
needs probabilities that rank labels sensibly rather than the best possible model.

Labels with fewer rows than folds cannot be judged out of fold (a fold's model has not seen them,
so every such row would look wrong): they are left out and counted as not auditable.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model.errors import DataError, InvalidInput
from model.hierarchy import decode
from model.taxonomy import HEADS, KEY_SEPARATOR
from training.baseline import BaselineConfig, train_baseline
from training.datasets import Dataset, Record, load_dataset

AUDIT_MODEL = "label-audit"  # model_version of the review items the audit enqueues


@dataclass(frozen=True)
class HeadIssue:
    """One head of one row whose given label is suspect."""

    head: str
    given: str
    given_probability: float  # out-of-fold probability of the given label (self-confidence)
    suggested: str
    suggested_probability: float
    rank: int  # 1 = the most suspect row of this head


@dataclass(frozen=True)
class Suspect:
    """A row with at least one suspect label, and what the out-of-fold model would answer."""

    record: Record
    issues: tuple[HeadIssue, ...]
    suggestion: dict[str, Any]  # Routing.to_dict()-shaped, for the review queue

    @property
    def score(self) -> float:
        """The lowest self-confidence among its issues: lower is more suspect."""
        return min(i.given_probability for i in self.issues)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for `serving.corrections.enqueue_suspects` (and for JSON reports)."""
        r = self.record
        return {"complaint_id": r.id, "text": r.raw_text or r.text, "source": r.source,
                "time": r.time.isoformat() if r.time else None, "given": dict(r.labels),
                "issues": [vars(i) for i in self.issues], "suggestion": self.suggestion}


@dataclass
class AuditResult:
    suspects: list[Suspect]  # most suspect first, across heads
    heads: dict[str, dict[str, int]]  # per head: rows, auditable rows, issues found
    folds: int
    rows: int

    def to_dicts(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.suspects]


@dataclass(frozen=True)
class AuditConfig:
    folds: int = 5
    min_label_rows: int | None = None  # default: `folds`
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise InvalidInput(f"folds={self.folds}: use 2 or more, e.g. 5", "folds")
        if self.min_label_rows is not None and self.min_label_rows < 2:
            raise InvalidInput(f"min_label_rows={self.min_label_rows}: use 2 or more",
                               "min_label_rows")


def out_of_fold_probabilities(records: Sequence[Record], spaces: Mapping[str, Sequence[str]],
                              *, folds: int = 5, config: BaselineConfig | None = None,
                              seed: int = 0) -> dict[str, np.ndarray]:
    """Per head, an n × len(space) matrix: each row predicted by a baseline trained on the other
    folds. Folds are stratified by each row's first label and grouped by normalised text, so a
    repeated complaint never sits on both sides."""
    from sklearn.model_selection import StratifiedGroupKFold

    if not 2 <= folds <= len(records):
        raise InvalidInput(f"folds={folds}: use 2 to {len(records)} folds", "folds")
    strata = [next((r.labels[h] for h in HEADS if h in r.labels), "") for r in records]
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # classes rarer than the fold count
        split_rows = list(splitter.split(records, strata, [r.text_hash for r in records]))
    probs = {h: np.zeros((len(records), len(s))) for h, s in spaces.items()}
    for train_rows, held_rows in split_rows:
        model = train_baseline([records[i] for i in train_rows], spaces, config=config)
        predicted = model.predict_proba([records[i].text for i in held_rows])
        for head, p in predicted.items():
            position = {label: j for j, label in enumerate(spaces[head])}
            columns = [position[label] for label in model.spaces[head]]
            probs[head][np.ix_(held_rows, columns)] = p
    return probs


def find_suspects(records: Sequence[Record], probs: Mapping[str, np.ndarray],
                  spaces: Mapping[str, Sequence[str]], *, min_label_rows: int = 5
                  ) -> tuple[list[Suspect], dict[str, dict[str, int]]]:
    """cleanlab's label issues per head, merged into one ranking of rows: the heads' rankings
    interleaved (each head's most suspect row, then each head's second…), so a head with many
    classes (low self-confidences everywhere) does not crowd out the others."""
    from cleanlab.filter import find_label_issues

    flagged: dict[int, dict[str, int]] = {}  # row -> {head: rank in that head}
    order: list[tuple[int, float, int]] = []  # (rank in head, self-confidence, row)
    stats = {}
    for head, p in probs.items():
        rows = [i for i, r in enumerate(records) if head in r.labels]
        counts: dict[str, int] = {}
        for i in rows:
            counts[records[i].labels[head]] = counts.get(records[i].labels[head], 0) + 1
        auditable = [i for i in rows if counts[records[i].labels[head]] >= min_label_rows]
        stats[head] = {"rows": len(rows), "auditable": len(auditable), "issues": 0}
        classes = sorted({records[i].labels[head] for i in auditable})
        if len(classes) < 2:
            continue
        position = {label: j for j, label in enumerate(spaces[head])}
        sub = p[np.ix_(auditable, [position[c] for c in classes])]
        total = sub.sum(axis=1, keepdims=True)
        sub = np.where(total > 0, sub / np.where(total > 0, total, 1), 1 / len(classes))
        labels = np.array([classes.index(records[i].labels[head]) for i in auditable])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cleanlab warns about classes with few rows
            ranked = find_label_issues(labels, sub, return_indices_ranked_by="self_confidence",
                                       n_jobs=1)
        stats[head]["issues"] = len(ranked)
        for rank, j in enumerate(ranked, 1):
            i = auditable[int(j)]
            flagged.setdefault(i, {})[head] = rank
            order.append((rank, float(p[i, position[records[i].labels[head]]]), i))
    rows_in_order: dict[int, None] = {}
    for _, _, i in sorted(order):
        rows_in_order.setdefault(i, None)
    wanted = list(rows_in_order)
    decoded = decode({h: p[wanted] for h, p in probs.items()}, spaces, k=3) if wanted else []
    suspects = []
    for i, answer in zip(wanted, decoded, strict=True):
        probs_i = {h: p[i] for h, p in probs.items()}
        chosen = _suggested_labels(records[i], set(flagged[i]), answer, probs_i, spaces)
        issues = tuple(
            HeadIssue(head=h, given=records[i].labels[h],
                      given_probability=_p(probs_i, spaces, h, records[i].labels[h]),
                      suggested=chosen[h], suggested_probability=_p(probs_i, spaces, h,
                                                                    chosen[h]),
                      rank=rank)
            for h, rank in flagged[i].items())
        suspects.append(Suspect(records[i], issues,
                                _suggestion(records[i], issues, chosen, answer, probs_i, spaces)))
    return suspects, stats


def _p(probs: Mapping[str, np.ndarray], spaces: Mapping[str, Sequence[str]], head: str,
       label: str) -> float:
    return round(float(probs[head][list(spaces[head]).index(label)]), 4)


def _suggested_labels(record: Record, flagged: set[str], answer: Mapping[str, Any],
                      probs: Mapping[str, np.ndarray], spaces: Mapping[str, Sequence[str]]
                      ) -> dict[str, str]:
    """Per head, the label to suggest: for a suspect head the out-of-fold model's best label
    other than the given one, else the given label. Category and subcategory stay consistent: a
    suspect category brings its most likely subcategory, a suspect subcategory its category."""

    def alternative(head: str) -> str:
        given = record.labels.get(head)
        return next((lab for lab in answer[head].labels if lab != given), answer[head].label)

    out = {h: record.labels[h] if h in record.labels and h not in flagged else alternative(h)
           for h in spaces}
    if "category" in spaces and "subcategory" in spaces:
        if "category" in flagged:
            category = out["category"]
            under = [j for j, key in enumerate(spaces["subcategory"])
                     if key.split(KEY_SEPARATOR, 1)[0] == category]
            if under:
                best = under[int(np.argmax(probs["subcategory"][under]))]
                out["subcategory"] = spaces["subcategory"][best]
        elif "subcategory" in flagged:
            out["category"] = out["subcategory"].split(KEY_SEPARATOR, 1)[0]
    return out


def _suggestion(record: Record, issues: Sequence[HeadIssue], labels: Mapping[str, str],
                answer: Mapping[str, Any], probs: Mapping[str, np.ndarray],
                spaces: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """What the review item shows (shaped like `Routing.to_dict()`): the suggested labels, the
    out-of-fold model's top answers, and under `audit` the given labels and the issues."""
    out: dict[str, Any] = {}
    for head in spaces:
        ranked = answer[head]
        out[head] = {"label": labels[head],
                     "confidence": _p(probs, spaces, head, labels[head]),
                     "top": [{"label": lab, "confidence": round(c, 4)}
                             for lab, c in zip(ranked.labels, ranked.confidences, strict=True)]}
    out.update(decision="review", model_version=AUDIT_MODEL, duty=None,
               audit={"given": dict(record.labels), "issues": [vars(i) for i in issues]})
    return out


def audit(records: Sequence[Record], spaces: Mapping[str, Sequence[str]], *, top: int = 50,
          config: AuditConfig | None = None) -> AuditResult:
    """Out-of-fold baseline probabilities → cleanlab per head → the `top` most suspect rows."""
    config = config or AuditConfig()
    if top < 1:
        raise InvalidInput(f"top={top}: ask for at least 1 suspect, e.g. --top 50", "top")
    records = _unique(records)
    spaces = {h: s for h, s in spaces.items() if any(h in r.labels for r in records)}
    if not spaces:
        raise DataError("no record carries a label: nothing to audit")
    probs = out_of_fold_probabilities(records, spaces, folds=config.folds,
                                      config=config.baseline, seed=config.seed)
    suspects, stats = find_suspects(records, probs, spaces,
                                    min_label_rows=config.min_label_rows or config.folds)
    return AuditResult(suspects[:top], stats, config.folds, len(records))


def audit_dataset(dataset: Dataset | str | Path,
                  corrections: Iterable[Mapping[str, Any]] = (), *, top: int = 50,
                  split: str = "train", config: AuditConfig | None = None) -> AuditResult:
    """`huying audit`: the rows of `split` (with submitted corrections applied, so a label an
    officer already fixed is judged as fixed) → `audit`. The test split is never audited: it must
    stay frozen."""
    from training.retrain import training_set

    if split not in ("train", "dev"):
        raise InvalidInput(f"split {split!r}: audit train or dev (the test split stays frozen)",
                           "split")
    if not isinstance(dataset, Dataset):
        dataset = load_dataset(dataset)
    ts = training_set(dataset, corrections)
    records = ts.train if split == "train" else ts.dev
    spaces = {h: dataset.taxonomy.labels(h) for h in dataset.heads}
    return audit(records, spaces, top=top, config=config)


def _unique(records: Sequence[Record]) -> list[Record]:
    """Rows repeated for weighting count once."""
    return list({r.id: r for r in records}.values())
