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
from model.pair_model import PairModel, pair_features
from training import pairs as pair_data
from training.pairs import SPLITS, Pair, read_pairs, split_by_time, summarize, write_pairs

# The recall the "similar" floor keeps on the calibration positives: below it nothing is shown.
FLOOR_RECALL = 0.95
PRECISION = 0.9  # of `same_event` on the calibration half, with one-sided 95% confidence:
CONFIDENCE_Z = 1.645  # the normal quantile of that confidence
SERVED_BLEND = (f"{EMBEDDING_WEIGHT:g} x embedding cosine + {1 - EMBEDDING_WEIGHT:g} x "
                "char 1-3-gram TF-IDF cosine (bundle IDF)")


EmbedFn = Callable[[Sequence[str]], np.ndarray]


def evaluate_pairs(pairs: Sequence[Pair], embed_fn: EmbedFn, lexical: Lexical | None = None, *,
                   floor_recall: float = FLOOR_RECALL, fit_pair_model: bool = False,
                   judged_on: Sequence[Sequence[Pair]] = ()) -> dict[str, Any]:
    """The served similarity vs its parts and the baseline, on near-duplicate pairs.

    Methods: `served`, what the similarity index returns: with `fit_pair_model` (and a
    lexical part), the pair model (model/pair_model.py) fitted on the calibration half, else
    model/lexical.py's `blend` of the embedding cosine and the bundle's lexical cosine (the
    embedding cosine alone when `lexical` is None); `blend` and `embedding`, its parts;
    `tfidf`, the baseline: char 1–3-gram TF-IDF cosine with the IDF fitted on the calibration
    half's texts.

    For each method the same-event threshold is the best-F1 score whose precision on the
    calibration half — and on that of each set in `judged_on` — reaches PRECISION with 95%
    confidence (merging two events loses a complaint; see `precision_threshold`), the floor
    the highest similarity that keeps `floor_recall` of the calibration positives; ROC-AUC,
    average precision and precision, recall and F1 at the threshold are reported on the
    evaluation half, and on the evaluation half of each set in `judged_on` (subsets of
    `pairs`, e.g. the hard set apart from the easy one). Exact pairs (same
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

    def lexical_cosine(rows: Sequence[Pair]) -> np.ndarray:
        assert lexical is not None
        return np.array([lexical.cosine(normalised[position[p.a_text]],
                                        normalised[position[p.b_text]]) for p in rows])

    def blended(rows: Sequence[Pair]) -> np.ndarray:
        return embedding(rows) if lexical is None else np.asarray(
            blend(embedding(rows), lexical_cosine(rows)))

    def features(rows: Sequence[Pair]) -> np.ndarray:
        assert lexical is not None
        return np.array([pair_features(e, lexical, normalised[position[p.a_text]],
                                       normalised[position[p.b_text]], p.days_apart or 0.0)
                         for p, e in zip(rows, embedding(rows), strict=True)])

    members = [set(subset) for subset in judged_on]
    scorers: dict[str, Callable[[Sequence[Pair]], np.ndarray]] = {"served": blended}
    # what each threshold is chosen on: the method's calibration scores, except for a fitted
    # pair model, whose scores on its own training pairs are optimistic (a threshold chosen on
    # them reached 0.9 precision there and 0.68 on later pairs): its cross-fitted ones
    choosing: dict[str, Callable[[Sequence[Pair]], np.ndarray]] = {}
    if fit_pair_model and lexical is not None:
        cal_x = features(halves["calibration"])
        cal_labels = np.array([p.label for p in halves["calibration"]])
        model = fit_pair_model_on(cal_x, cal_labels)
        scorers = {"served": lambda rows: model.probability(features(rows)), "blend": blended}
        held_out = dict(zip(halves["calibration"], cross_fitted(cal_x, cal_labels), strict=True))
        choosing["served"] = lambda rows: np.array([held_out[p] for p in rows])
    scorers.update({"embedding": embedding, "tfidf": char_tfidf})
    methods = {}
    evaluation_scores = {}
    ev_y = np.array([p.label for p in halves["evaluation"]])
    for name, score in scorers.items():
        chosen_on = choosing.get(name, score)
        cal = chosen_on(halves["calibration"])
        cal_y = np.array([p.label for p in halves["calibration"]])
        threshold = precision_threshold(cal, cal_y, PRECISION)
        for subset in members:  # the precision must hold on each set, not only on the mix
            rows = [p for p in halves["calibration"] if p in subset]
            y = np.array([p.label for p in rows])
            if rows and 0 < y.sum() < len(y):
                threshold = max(threshold, precision_threshold(chosen_on(rows), y, PRECISION))
        floor = min(threshold, recall_floor(cal, cal_y, floor_recall))
        ev = score(halves["evaluation"])
        evaluation_scores[name] = ev
        methods[name] = {
            "threshold": round(threshold, 4), "floor": round(floor, 4),
            "calibration": score_metrics(cal, cal_y, threshold),
            "evaluation": score_metrics(ev, ev_y, threshold),
            "evaluation_by_kind": _by_kind(halves["evaluation"], ev, threshold),
        }
        for i, subset in enumerate(members):
            rows = [p for p in halves["evaluation"] if p in subset]
            y = np.array([p.label for p in rows])
            if rows and 0 < y.sum() < len(y):
                methods[name][f"evaluation_set_{i}"] = score_metrics(score(rows), y, threshold)
    exact_scores = embedding(exact) if exact else np.empty(0)
    report = {
        "pairs": summarize(pairs),
        "near_duplicates": {s: {"pairs": len(r), "positives": sum(p.label for p in r)}
                            for s, r in halves.items()},
        "exact": {"pairs": len(exact), "positives": sum(p.label for p in exact),
                  "flagged_by_hash": len(exact),
                  "embedding_cosine_min": round(float(exact_scores.min()), 4) if exact else None},
        "methods": methods,
        "served_similarity": ("pair model (model/pair_model.py) fitted on the calibration half"
                              if "blend" in scorers else
                              SERVED_BLEND if lexical is not None else "embedding cosine"),
        "served_vs_tfidf": ap_difference(evaluation_scores["served"], evaluation_scores["tfidf"],
                                         ev_y),
        "rule": f"threshold: the best F1 among those whose calibration precision reaches "
                f"{PRECISION:.0%} with 95% confidence (Wilson lower bound) on every set (the "
                f"highest lower bound if none; a fitted pair model's on its "
                f"cross-fitted scores); floor: keeps "
                f"{floor_recall:.0%} of calibration positives",
    }
    for i, subset in enumerate(members):
        rows = [p for p in halves["evaluation"] if p in subset]
        y = np.array([p.label for p in rows])
        if rows and 0 < y.sum() < len(y):
            report[f"served_vs_tfidf_set_{i}"] = ap_difference(
                scorers["served"](rows), char_tfidf(rows), y)
    if "blend" in scorers:
        report["pair_model"] = model.to_dict()
    return report


def fit_pair_model_on(features: np.ndarray, labels: np.ndarray) -> PairModel:
    """Logistic regression (C = 1) on pair features: its probability is the duplicate score."""
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression(C=1.0, max_iter=2000).fit(features, labels)
    return PairModel(tuple(float(c) for c in fitted.coef_[0]), float(fitted.intercept_[0]))


def cross_fitted(features: np.ndarray, labels: np.ndarray, folds: int = 5) -> np.ndarray:
    """Each pair's pair-model probability from a model fitted without it (stratified folds,
    fixed seed): scores a threshold can be chosen on as if they were new pairs."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = max(2, min(folds, int(labels.sum()), int(len(labels) - labels.sum())))
    return cross_val_predict(LogisticRegression(C=1.0, max_iter=2000), features, labels,
                             cv=StratifiedKFold(folds, shuffle=True, random_state=0),
                             method="predict_proba")[:, 1]


def precision_threshold(scores: np.ndarray, labels: np.ndarray, precision: float,
                        z: float = CONFIDENCE_Z) -> float:
    """The best-F1 threshold among those whose pairs at or above it reach `precision` with
    one-sided 95% confidence (the Wilson lower bound of their precision), halfway to the next
    lower score; where none does, the one with the highest lower bound. A point estimate on a
    few hundred pairs did not carry over: chosen at 0.9 on earlier pairs, it gave 0.71 on later
    ones (the quick bundle, cross-fitted scores)."""
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(labels[order])
    counted = np.arange(1, len(order) + 1)
    bound = wilson_lower_bound(hits, counted, z)
    f1 = 2 * hits / (counted + labels.sum())
    ok = np.flatnonzero(bound >= precision)
    # among equals the lowest threshold
    best = int(ok[np.argmax(f1[ok] + 1e-9 * ok)]) if ok.size else int(
        np.flatnonzero(bound >= bound.max() - 1e-12)[-1])
    here = float(scores[order][best])
    below = scores[scores < here]
    return float((here + below.max()) / 2 if below.size else here)


def wilson_lower_bound(hits: np.ndarray, counted: np.ndarray, z: float = CONFIDENCE_Z
                       ) -> np.ndarray:
    """Lower end of the Wilson score interval of the proportion hits / counted."""
    p = hits / counted
    centre = p + z * z / (2 * counted)
    margin = z * np.sqrt(p * (1 - p) / counted + z * z / (4 * counted * counted))
    return (centre - margin) / (1 + z * z / counted)


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
    extra = {"pair_model": report["pair_model"]} if "pair_model" in report else {}
    return {"model_version": model_version, "same_event": m["threshold"], "floor": m["floor"],
            **extra,
            "method": report["served_similarity"], "rule": report["rule"],
            "evaluation": m["evaluation"],
            "baseline_average_precision": report["methods"]["tfidf"]["evaluation"][
                "average_precision"],
            "pairs": report["near_duplicates"], "pairs_from": report.get("pairs_from"),
            "created": datetime.now(UTC).isoformat(timespec="seconds")}


def calibrate(router: Any, pairs_path: Path | None = None) -> dict[str, Any]:
    """The same-event threshold and floor of `router`'s similarity, chosen on labelled pairs (a
    JSONL file, or built from the vendored data), as its bundle records them."""
    pairs, provenance, sets = _pairs(pairs_path)
    report = evaluate_pairs(pairs, router.embed, router.lexical, fit_pair_model=True,
                            judged_on=sets)
    report["pairs_from"] = provenance
    return threshold_record(report, router.version)


def render_table(report: Mapping[str, Any]) -> str:
    """A Markdown table of the methods on the evaluation half (and on each judged set's
    evaluation half: the hard read pairs, the easy built ones), and the pair counts."""
    sets = [(k, n) for k, n in (("evaluation", "all"), ("evaluation_set_0", "hard"),
                                 ("evaluation_set_1", "easy"))
            if k in report["methods"]["served"]]
    lines = ["| method | threshold | " + " | ".join(
                f"{n}: ROC-AUC | {n}: AP | {n}: precision | {n}: recall" for _, n in sets) + " |",
             "| --- | --- |" + " --- | --- | --- | --- |" * len(sets)]
    names = {"served": f"served: {report['served_similarity']}",
             "blend": f"blend ({SERVED_BLEND})", "embedding": "bundle embedding cosine alone",
             "tfidf": "baseline: char 1-3-gram TF-IDF cosine"}
    for name, m in report["methods"].items():
        cells = [f"{m[k]['roc_auc']:.4f} | {m[k]['average_precision']:.4f} | "
                 f"{m[k]['precision']:.4f} | {m[k]['recall']:.4f}" for k, _ in sets]
        lines.append(f"| {names[name]} | {m['threshold']:.4f} | " + " | ".join(cells) + " |")
    lines.append("")
    for key, label in (("served_vs_tfidf", "all"), ("served_vs_tfidf_set_0", "hard"),
                       ("served_vs_tfidf_set_1", "easy")):
        if key in report:
            d = report[key]
            lines.append(f"served minus baseline AP ({label}): {d['difference']:+.4f} (paired "
                         f"bootstrap 95% interval {d['ci95'][0]:+.4f} to {d['ci95'][1]:+.4f}; "
                         f"served better in {d['better_share']:.0%} of {d['resamples']} resamples)")
    nd = report["near_duplicates"]
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

    pairs, provenance, sets = _pairs(pairs_path, haikou_dir, teddy_dir)
    if write_pairs_to is not None:
        write_pairs(pairs, write_pairs_to)
    # One text per call: a bundle exported with dynamic int8 (before per-token int8) gives
    # outputs that depend on the other rows of a batch, so scores would depend on batch-mates.
    router = Router.load(bundle, threads=threads, batch_size=1)
    started = datetime.now(UTC)
    report = evaluate_pairs(pairs, router.embed, router.lexical, fit_pair_model=True,
                            judged_on=sets)
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
           teddy_dir: Path | None = None) -> tuple[list[Pair], str, list[list[Pair]]]:
    """The pairs, where they come from, and the sets judged apart: a file's pairs alone; by
    default the easy pairs built from the data plus the hard, read pairs (data/pairs/)."""
    if pairs_path is not None:
        return read_pairs(pairs_path), str(pairs_path), []
    from training.hard_pairs import PATH, as_pairs, load_hard_pairs

    default_haikou, default_teddy = pair_data.default_sources()
    haikou_dir = haikou_dir or default_haikou
    teddy_dir = teddy_dir if teddy_dir is not None else default_teddy
    easy = pair_data.build_pairs(haikou_dir, teddy_dir)
    hard = as_pairs(load_hard_pairs(PATH, haikou_dir, teddy_dir))
    return easy + hard, (f"built from {haikou_dir}" + (f" and {teddy_dir}" if teddy_dir else
                         " (no Teddy messages found)") + f", plus the hard pairs of {PATH.name}"
                         ), [hard, easy]
