"""How well a bundle's duplicate similarity separates same-event pairs, and its threshold.

    pairs = build_pairs(*default_sources())                   # training/pairs.py
    router = Router.load("bundles/haikou12345-full-1", batch_size=1)
    report = evaluate_pairs(pairs, router.embed, router.lexical)
    report["methods"]["served"]["evaluation"]["average_precision"]

`huying duplicates` runs `evaluate_bundle`; `huying train` keeps the threshold `calibrate` chooses
in the bundle (duplicates.json), where the server reads it (serving/duplicates.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from model.errors import InvalidInput
from model.lexical import EMBEDDING_WEIGHT, Lexical, blend
from model.normalize import normalize_text
from training import pairs as pair_data
from training.pairs import SPLITS, Pair, read_pairs, split_by_time, summarize, write_pairs

# The recall the "similar" floor keeps on the calibration positives: below it nothing is shown.
FLOOR_RECALL = 0.95
SERVED_BLEND = (f"{EMBEDDING_WEIGHT:g} x embedding cosine + {1 - EMBEDDING_WEIGHT:g} x "
                "char 1-3-gram TF-IDF cosine (bundle IDF)")


EmbedFn = Callable[[Sequence[str]], np.ndarray]


def evaluate_pairs(pairs: Sequence[Pair], embed_fn: EmbedFn, lexical: Lexical | None = None, *,
                   floor_recall: float = FLOOR_RECALL) -> dict[str, Any]:
    """The served similarity vs its parts and the baseline, on near-duplicate pairs.

    Methods: `served`, what the similarity index returns (model/lexical.py `blend` of the
    embedding cosine and the bundle's lexical cosine; the embedding cosine alone when `lexical`
    is None); `embedding`, the bundle's embedding cosine; `tfidf`, the baseline: char 1–3-gram
    TF-IDF cosine with the IDF fitted on the calibration half's texts.

    For each method the same-event threshold is the one with the best F1 on the calibration
    half (ties: the higher threshold), the floor the highest similarity that keeps
    `floor_recall` of the calibration positives; ROC-AUC, average precision and precision,
    recall and F1 at the threshold are reported on the evaluation half. Exact pairs (same
    normalised text) are reported apart: serving flags them by hash.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not pairs:
        raise InvalidInput("no pairs to evaluate", field="pairs")
    if not all(p.split in SPLITS for p in pairs):
        pairs = split_by_time(pairs)
    exact = [p for p in pairs if p.exact]
    near = [p for p in pairs if not p.exact]
    halves = {s: [p for p in near if p.split == s] for s in SPLITS}
    for s, rows in halves.items():
        labels = {p.label for p in rows}
        if labels != {0, 1}:
            raise InvalidInput(f"the {s} half has {len(rows)} near-duplicate pairs with labels "
                               f"{sorted(labels)}; it needs positives and negatives", field="pairs")

    texts = sorted({t for p in pairs for t in (p.a_text, p.b_text)})
    position = {t: i for i, t in enumerate(texts)}
    vectors = _unit(np.asarray(embed_fn(texts), dtype=np.float64))
    normalised = [normalize_text(t) for t in texts]
    calibration_texts = sorted({normalized for p in halves["calibration"]
                                for normalized in (normalised[position[p.a_text]],
                                                   normalised[position[p.b_text]])})
    tfidf = TfidfVectorizer(analyzer="char", ngram_range=(1, 3)).fit(calibration_texts)
    sparse = tfidf.transform(normalised)  # rows are L2-normalised by default

    def embedding(rows: Sequence[Pair]) -> np.ndarray:
        a = vectors[[position[p.a_text] for p in rows]]
        b = vectors[[position[p.b_text] for p in rows]]
        return np.einsum("ij,ij->i", a, b)

    def char_tfidf(rows: Sequence[Pair]) -> np.ndarray:
        a = sparse[[position[p.a_text] for p in rows]]
        b = sparse[[position[p.b_text] for p in rows]]
        return np.asarray(a.multiply(b).sum(axis=1)).ravel()

    def served(rows: Sequence[Pair]) -> np.ndarray:
        if lexical is None:
            return embedding(rows)
        lex = np.array([lexical.cosine(normalised[position[p.a_text]],
                                       normalised[position[p.b_text]]) for p in rows])
        return np.asarray(blend(embedding(rows), lex))

    methods = {}
    evaluation_scores = {}
    for name, score in (("served", served), ("embedding", embedding), ("tfidf", char_tfidf)):
        cal = score(halves["calibration"])
        cal_y = np.array([p.label for p in halves["calibration"]])
        threshold = best_f1_threshold(cal, cal_y)
        floor = min(threshold, recall_floor(cal, cal_y, floor_recall))
        ev = score(halves["evaluation"])
        ev_y = np.array([p.label for p in halves["evaluation"]])
        evaluation_scores[name] = ev
        methods[name] = {
            "threshold": round(threshold, 4), "floor": round(floor, 4),
            "calibration": score_metrics(cal, cal_y, threshold),
            "evaluation": score_metrics(ev, ev_y, threshold),
            "evaluation_by_kind": _by_kind(halves["evaluation"], ev, threshold),
        }
    exact_scores = embedding(exact) if exact else np.empty(0)
    return {
        "pairs": summarize(pairs),
        "near_duplicates": {s: {"pairs": len(r), "positives": sum(p.label for p in r)}
                            for s, r in halves.items()},
        "exact": {"pairs": len(exact), "positives": sum(p.label for p in exact),
                  "flagged_by_hash": len(exact),
                  "embedding_cosine_min": round(float(exact_scores.min()), 4) if exact else None},
        "methods": methods,
        "served_similarity": SERVED_BLEND if lexical is not None else "embedding cosine",
        "served_vs_tfidf": ap_difference(evaluation_scores["served"], evaluation_scores["tfidf"],
                                         ev_y),
        "rule": f"threshold: max F1 on the calibration half; floor: keeps {floor_recall:.0%} of "
                "calibration positives",
    }


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold (predict positive when score >= it) with the best F1; among equals the
    highest. It sits halfway to the next lower score, not on the lowest accepted score, so the
    same pairs pass with a margin."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    best = int(np.flatnonzero(f1 >= f1.max() - 1e-12)[-1])
    below = scores[scores < thresholds[best]]
    return float((thresholds[best] + below.max()) / 2 if below.size else thresholds[best])


def recall_floor(scores: np.ndarray, labels: np.ndarray, recall: float) -> float:
    """The highest threshold that still keeps `recall` of the positives."""
    positives = np.sort(scores[labels == 1])
    if not positives.size:
        return float(scores.min())
    keep = int(np.ceil(recall * positives.size))
    return float(positives[positives.size - keep])


def score_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, Any]:
    """ROC-AUC, average precision, and precision/recall/F1 when predicting score >= threshold."""
    from sklearn.metrics import (
        average_precision_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    predicted = scores >= threshold
    return {
        "pairs": int(labels.size), "positives": int(labels.sum()),
        "roc_auc": round(float(roc_auc_score(labels, scores)), 4),
        "average_precision": round(float(average_precision_score(labels, scores)), 4),
        "precision": round(float(precision_score(labels, predicted, zero_division=0)), 4),
        "recall": round(float(recall_score(labels, predicted, zero_division=0)), 4),
        "f1": round(float(f1_score(labels, predicted, zero_division=0)), 4),
    }


def ap_difference(a: np.ndarray, b: np.ndarray, labels: np.ndarray, *, resamples: int = 2000,
                  seed: int = 0) -> dict[str, Any]:
    """Average precision of scores `a` minus that of `b` on the same pairs, with a paired
    bootstrap 95% interval (pairs resampled with replacement; draws without both labels skipped)."""
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        i = rng.integers(0, labels.size, labels.size)
        if 0 < labels[i].sum() < labels.size:
            diffs.append(average_precision_score(labels[i], a[i])
                         - average_precision_score(labels[i], b[i]))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"difference": round(float(average_precision_score(labels, a)
                                      - average_precision_score(labels, b)), 4),
            "ci95": [round(float(lo), 4), round(float(hi), 4)], "resamples": len(diffs),
            "better_share": round(float(np.mean(np.array(diffs) > 0)), 4)}


def _by_kind(rows: Sequence[Pair], scores: np.ndarray, threshold: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in sorted({p.kind for p in rows}):
        mask = np.array([p.kind == kind for p in rows])
        label = rows[int(np.flatnonzero(mask)[0])].label
        flagged = float((scores[mask] >= threshold).mean())
        out[kind] = {"pairs": int(mask.sum()), "label": label,
                     "mean_similarity": round(float(scores[mask].mean()), 4),
                     # positives: recall; negatives: false-positive rate
                     "flagged": round(flagged, 4)}
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def threshold_record(report: Mapping[str, Any], model_version: str) -> dict[str, Any]:
    """What a bundle keeps in duplicates.json and serving reads (see serving/duplicates.py)."""
    m = report["methods"]["served"]
    return {"model_version": model_version, "same_event": m["threshold"], "floor": m["floor"],
            "method": report["served_similarity"], "rule": report["rule"],
            "evaluation": m["evaluation"],
            "baseline_average_precision": report["methods"]["tfidf"]["evaluation"][
                "average_precision"],
            "pairs": report["near_duplicates"], "pairs_from": report.get("pairs_from"),
            "created": datetime.now(UTC).isoformat(timespec="seconds")}


def calibrate(router: Any, pairs_path: Path | None = None) -> dict[str, Any]:
    """The same-event threshold and floor of `router`'s similarity, chosen on labelled pairs (a
    JSONL file, or built from the vendored data), as its bundle records them."""
    pairs, provenance = _pairs(pairs_path)
    report = evaluate_pairs(pairs, router.embed, router.lexical)
    report["pairs_from"] = provenance
    return threshold_record(report, router.version)


def render_table(report: Mapping[str, Any]) -> str:
    """A Markdown table of the methods on the evaluation half, and the pair counts."""
    lines = ["| method | threshold | ROC-AUC | AP | precision | recall | F1 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, label in (("served", f"served: {report['served_similarity']}"),
                        ("embedding", "bundle embedding cosine alone"),
                        ("tfidf", "baseline: char 1-3-gram TF-IDF cosine")):
        m = report["methods"][name]
        e = m["evaluation"]
        lines.append(f"| {label} | {m['threshold']:.4f} | {e['roc_auc']:.4f} | "
                     f"{e['average_precision']:.4f} | {e['precision']:.4f} | {e['recall']:.4f} | "
                     f"{e['f1']:.4f} |")
    nd = report["near_duplicates"]
    d = report["served_vs_tfidf"]
    lines.append("")
    lines.append(f"served minus baseline AP: {d['difference']:+.4f} (paired bootstrap 95% interval "
                 f"{d['ci95'][0]:+.4f} to {d['ci95'][1]:+.4f}; served better in "
                 f"{d['better_share']:.0%} of {d['resamples']} resamples)")
    lines.append(f"near-duplicate pairs: calibration {nd['calibration']['pairs']} "
                 f"({nd['calibration']['positives']} positive), evaluation "
                 f"{nd['evaluation']['pairs']} ({nd['evaluation']['positives']} positive); "
                 f"exact pairs (found by hash, not in the table): {report['exact']['pairs']}")
    for split, counts in report["pairs"].items():
        kinds = ", ".join(f"{k} {v}" for k, v in counts["kinds"].items())
        lines.append(f"{split}: {kinds}")
    lines.append(report["rule"])
    return "\n".join(lines)



def evaluate_bundle(bundle: Path, pairs_path: Path | None = None, *,
                    haikou_dir: Path | None = None, teddy_dir: Path | None = None,
                    write_pairs_to: Path | None = None, out_dir: Path | None = None,
                    threads: int = 1) -> dict[str, Any]:
    """`huying duplicates`: a bundle's duplicate similarity against char TF-IDF on labelled
    pairs (a JSONL file, or built from the data); report.json/report.md written to `out_dir`."""
    from model.router import Router

    pairs, provenance = _pairs(pairs_path, haikou_dir, teddy_dir)
    if write_pairs_to is not None:
        write_pairs(pairs, write_pairs_to)
    # One text per call: a bundle exported with dynamic int8 (before weight-only int8) gives
    # outputs that depend on the other rows of a batch, so scores would depend on batch-mates.
    router = Router.load(bundle, threads=threads, batch_size=1)
    started = datetime.now(UTC)
    report = evaluate_pairs(pairs, router.embed, router.lexical)
    report.update({"bundle": str(bundle), "model_version": router.version, "pairs_from": provenance,
                   "seconds": round((datetime.now(UTC) - started).total_seconds(), 1)})
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1),
                                             encoding="utf-8")
        (out_dir / "report.md").write_text(f"# Duplicates: {router.version}\n\n"
                                           f"{render_table(report)}\n", encoding="utf-8")
    return report


def _pairs(pairs_path: Path | None, haikou_dir: Path | None = None,
           teddy_dir: Path | None = None) -> tuple[list[Pair], str]:
    if pairs_path is not None:
        return read_pairs(pairs_path), str(pairs_path)
    default_haikou, default_teddy = pair_data.default_sources()
    haikou_dir = haikou_dir or default_haikou
    teddy_dir = teddy_dir if teddy_dir is not None else default_teddy
    return pair_data.build_pairs(haikou_dir, teddy_dir), (
        f"built from {haikou_dir}" + (f" and {teddy_dir}" if teddy_dir else
                                      " (no Teddy messages found)"))
