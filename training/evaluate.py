"""Judge any Predictor on labelled records: metrics per head beside the baseline, as files.

Answers are decoded hierarchy-consistently (`model.hierarchy.decode`), as the router serves them;
the confidence of an answer is its own head's probability. Plots carry no Chinese text (classes
appear as ranks by support) so they render without a CJK font; the report's tables hold the names.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from model.duty import row_labels
from model.errors import DataError
from model.hierarchy import Ranked, decode
from model.normalize import normalize_text
from model.taxonomy import KEY_SEPARATOR
from training.datasets import Record, read_rows
from training.predictor import Predictor

TOP_K = 3
CHUNK_ROWS = 4096
ECE_BINS = 15
COVERAGES = (0.1, 0.25, 0.5, 0.75, 1.0)
RARE_SUPPORT = 5  # classes with fewer gold rows than this count as the long tail
HEAD_ROWS_SHOWN = 10


@dataclass(frozen=True)
class HeadPredictions:
    """One head's decoded answers for the records that carry its gold label."""

    gold: np.ndarray  # n labels
    ranked: list[tuple[str, ...]]  # top-k labels per row, best first
    confidence: np.ndarray  # n: probability of the top-1 label
    space: tuple[str, ...]

    @property
    def top1(self) -> np.ndarray:
        return np.array([r[0] for r in self.ranked], dtype=object)

    @property
    def correct(self) -> np.ndarray:
        return self.top1 == self.gold

    @staticmethod
    def concat(parts: Sequence[HeadPredictions]) -> HeadPredictions:
        return HeadPredictions(np.concatenate([p.gold for p in parts]),
                               [r for p in parts for r in p.ranked],
                               np.concatenate([p.confidence for p in parts]), parts[0].space)


def predict_heads(predictor: Predictor, records: Sequence[Record]
                  ) -> tuple[dict[str, HeadPredictions], dict[str, float] | None]:
    """Decoded answers per head (rows lacking that head's label skipped), hierarchy consistency."""
    decoded: list[dict[str, Ranked]] = []
    raw_top: dict[str, list[int]] = {h: [] for h in predictor.spaces}
    # In chunks: full probability matrices of a large archive would not fit in memory.
    for start in range(0, len(records), CHUNK_ROWS):
        probs = predictor.predict_proba([r.text for r in records[start:start + CHUNK_ROWS]])
        decoded += decode(probs, predictor.spaces, k=TOP_K)
        for head, p in probs.items():
            raw_top[head] += p.argmax(axis=1).tolist()
    heads = {}
    for head in predictor.spaces:
        rows = [i for i, r in enumerate(records) if head in r.labels]
        if rows:
            heads[head] = HeadPredictions(
                gold=np.array([records[i].labels[head] for i in rows], dtype=object),
                ranked=[decoded[i][head].labels for i in rows],
                confidence=np.array([decoded[i][head].confidence for i in rows]),
                space=tuple(predictor.spaces[head]))
    consistency = None
    if "category" in predictor.spaces and "subcategory" in predictor.spaces:
        cats, subs = predictor.spaces["category"], predictor.spaces["subcategory"]
        raw_cat = [cats[j] for j in raw_top["category"]]
        raw_sub = [subs[j] for j in raw_top["subcategory"]]
        consistency = {
            "decoded": _share(_parent(d["subcategory"].label) == d["category"].label
                              for d in decoded),
            "argmax": _share(_parent(s) == c for s, c in zip(raw_sub, raw_cat, strict=True)),
        }
    return heads, consistency


def head_metrics(pred: HeadPredictions) -> dict[str, Any]:
    """Accuracy, macro/weighted F1, top-k, calibration, coverage, per-class scores of one head."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    top1, gold, correct = pred.top1, pred.gold, pred.correct
    labels = sorted(set(gold) | set(top1))  # macro-F1 over labels in gold ∪ predicted
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, top1, labels=labels, zero_division=0)
    per_class = sorted(({"label": lab, "precision": float(p), "recall": float(r), "f1": float(f),
                         "support": int(s)}
                        for lab, p, r, f, s in zip(labels, precision, recall, f1, support,
                                                   strict=True)),
                       key=lambda c: (-c["support"], c["label"]))
    rare = [c for c in per_class if 0 < c["support"] < RARE_SUPPORT]
    space = set(pred.space)
    bins = reliability(pred.confidence, correct)
    return {
        "rows": len(gold),
        "accuracy": float(correct.mean()),
        "macro_f1": float(f1_score(gold, top1, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(gold, top1, labels=labels, average="weighted",
                                      zero_division=0)),
        f"top{TOP_K}_accuracy": _share(g in r for g, r in zip(gold, pred.ranked, strict=True)),
        "ece": expected_calibration_error(bins, len(gold)),
        "gold_outside_label_space": int(sum(g not in space for g in gold)),
        "classes_in_gold": len(set(gold)),
        "classes_scored": len(labels),
        "classes_f1_zero": sum(1 for c in per_class if c["f1"] == 0),
        "rare_classes": len(rare),
        "rare_classes_mean_f1": float(np.mean([c["f1"] for c in rare])) if rare else None,
        "precision_at_coverage": precision_at_coverage(pred.confidence, correct),
        "reliability": bins,
        "per_class": per_class,
    }


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS
                ) -> list[dict[str, float]]:
    """Equal-width confidence bins: rows, mean confidence and accuracy of each non-empty bin."""
    index = np.minimum((np.asarray(confidence) * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        inside = index == b
        if inside.any():
            out.append({"low": b / bins, "high": (b + 1) / bins, "rows": int(inside.sum()),
                        "confidence": float(confidence[inside].mean()),
                        "accuracy": float(correct[inside].mean())})
    return out


def expected_calibration_error(bins: Sequence[Mapping[str, float]], rows: int) -> float:
    """ECE: the row-weighted gap between confidence and accuracy over the reliability bins."""
    return float(sum(b["rows"] / rows * abs(b["accuracy"] - b["confidence"]) for b in bins))


def precision_at_coverage(confidence: np.ndarray, correct: np.ndarray,
                          coverages: Sequence[float] = COVERAGES) -> list[dict[str, float]]:
    """Accuracy of the most confident share of rows: what auto-routing that share would deliver."""
    order = np.argsort(-confidence, kind="stable")
    running = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    out = []
    for share in coverages:
        rows = max(1, math.ceil(share * len(order)))
        out.append({"coverage": share, "rows": rows, "precision": float(running[rows - 1]),
                    "min_confidence": float(confidence[order][rows - 1])})
    return out


def score(predictor: Predictor, records: Sequence[Record]
          ) -> tuple[dict[str, Any], dict[str, HeadPredictions]]:
    """Every metric of one predictor on `records` (no files written), and its raw answers."""
    started = time.perf_counter()
    heads, consistency = predict_heads(predictor, records)
    seconds = time.perf_counter() - started
    return {"name": predictor.name, "predict_seconds": round(seconds, 3),
            "heads": {h: head_metrics(p) for h, p in heads.items()},
            "hierarchy_consistency": consistency}, heads


def evaluate(predictor: Predictor, records: Sequence[Record], out_dir: str | Path, *,
             baseline: Predictor | None = None, split_name: str = "dev",
             parts: Mapping[str, Predictor] | None = None) -> dict[str, Any]:
    """Score `predictor` (and `baseline`, and the hybrid router's `parts`) on `records`; write
    metrics.json, report.md and plots."""
    if not records:
        raise DataError(f"split {split_name!r} has no records to evaluate; check the dataset "
                        "config's `splits` or the JSONL file")
    model_metrics, model_heads = score(predictor, records)
    if not model_heads:
        raise DataError(f"no record carries a label for the heads the model predicts "
                        f"({', '.join(predictor.spaces)}); evaluate on labelled data")
    baseline_metrics, baseline_heads = score(baseline, records) if baseline else (None, {})
    metrics = {"split": split_name, "rows": len(records),
               "created": datetime.now(UTC).isoformat(timespec="seconds"),
               "model": model_metrics, "baseline": baseline_metrics,
               "parts": {name: score(part, records)[0] for name, part in (parts or {}).items()}}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=1),
                                          encoding="utf-8")
    plots = _plot(model_heads, baseline_heads, metrics, out_dir)
    (out_dir / "report.md").write_text(render_report(metrics, plots), encoding="utf-8")
    return metrics


def load_labelled_jsonl(path: str | Path) -> list[Record]:
    """Records from a JSONL (or .jsonl.gz): `text` and any of category, subcategory, department.

    `subcategory` is the key `category/subcategory`; a bare subcategory name is accepted when the
    row also gives `category` (the key is then built from the two). Texts are normalised here.
    """
    path = Path(path)
    records = []
    for n, row in enumerate(read_rows(path), 1):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise DataError(f"{path}:{n}: each line needs a string field `text`")
        labels = row_labels(row, f"{path}:{n}")
        records.append(Record(id=str(row.get("id", f"{path.name}:{n}")),
                              text=normalize_text(row["text"]), labels=labels, source=path.name,
                              raw_text=row["text"]))
    if not records:
        raise DataError(f"{path} holds no records")
    return records


def render_report(metrics: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    """The Markdown report: summary beside the baseline, then per head coverage, tail, classes."""
    model, base = metrics["model"], metrics["baseline"]
    # Roles in the names: a model compared with a baseline of the same name stays readable.
    runs = [model]
    if base:
        runs = [{**model, "name": f"{model['name']} (model)"},
                {**base, "name": f"{base['name']} (baseline)"}]
    lines = [f"# {model['name']} on {metrics['split']} ({metrics['rows']} rows)", "",
             f"Baseline: {base['name'] if base else 'none given'}. Created {metrics['created']}. "
             f"Answers are hierarchy-consistent top-{TOP_K}; confidence is the answer's own "
             f"probability; ECE uses {ECE_BINS} equal-width bins.", "", "## Summary", "",
             f"| head | model | rows | accuracy | macro-F1 | weighted-F1 | top-{TOP_K} | ECE |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for head in model["heads"]:
        for run in runs:
            m = run["heads"].get(head)
            cells = ([str(m["rows"])] + [_f(m[k]) for k in ("accuracy", "macro_f1", "weighted_f1",
                                                           f"top{TOP_K}_accuracy", "ece")]
                     if m else ["—"] * 6)
            lines.append(f"| {head} | {run['name']} | " + " | ".join(cells) + " |")
    lines += ["", "Hierarchy consistency (share of rows whose subcategory's parent is the "
              "category): " + "; ".join(_consistency(run) for run in runs), ""]
    if metrics.get("parts"):
        lines += ["## The hybrid router's parts", "",
                  "Each part alone (its logits through the same decoding), beside the whole:", "",
                  "| head | " + " | ".join(["whole", *metrics["parts"],
                                            *(["baseline"] if base else [])])
                  + " |", "| --- |" + " ---: |" * (len(metrics["parts"]) + 1 + bool(base))]
        for head in model["heads"]:
            parts = [model["heads"][head]] + [p["heads"].get(head)
                                              for p in metrics["parts"].values()]
            parts += [base["heads"].get(head)] if base else []
            lines.append(f"| {head} accuracy / top-{TOP_K} | " + " | ".join(
                f"{_f(c['accuracy'])} / {_f(c[f'top{TOP_K}_accuracy'])}" if c else "—"
                for c in parts) + " |")
        lines.append("")
    for head, m in model["heads"].items():
        b = base["heads"].get(head) if base else None
        lines += [f"## {head}", "",
                  "Precision of the most confident rows (auto-routing that share):", "",
                  "| coverage | rows | " + " | ".join(r["name"] for r in runs) + " |",
                  "| ---: | ---: |" + " ---: |" * len(runs)]
        for i, point in enumerate(m["precision_at_coverage"]):
            cells = [_f(point["precision"])]
            if base:
                cells.append(_f(b["precision_at_coverage"][i]["precision"]) if b else "—")
            lines.append(f"| {point['coverage']:.0%} | {point['rows']} | " + " | ".join(cells)
                         + " |")
        lines += ["", _tail(m, runs[0]["name"])] + ([_tail(b, runs[1]["name"])] if b else [])
        lines += ["", f"Top {HEAD_ROWS_SHOWN} classes by support (rank = x axis of the plot):", "",
                  "| rank | label | support | precision | recall | F1 |"
                  + (" baseline F1 |" if b else ""),
                  "| ---: | --- | ---: | ---: | ---: | ---: |" + (" ---: |" if b else "")]
        base_f1 = {c["label"]: c["f1"] for c in b["per_class"]} if b else {}
        for rank, c in enumerate(m["per_class"][:HEAD_ROWS_SHOWN], 1):
            lines.append(f"| {rank} | {c['label']} | {c['support']} | {_f(c['precision'])} | "
                         f"{_f(c['recall'])} | {_f(c['f1'])} |"
                         + (f" {_f(base_f1.get(c['label'], 0.0))} |" if b else ""))
        if head in plots:
            lines += ["", f"![{head}]({plots[head]})"]
        lines.append("")
    return "\n".join(lines)


def _tail(m: Mapping[str, Any], name: str) -> str:
    rare = m["rare_classes_mean_f1"]
    return (f"- {name}: {m['classes_f1_zero']} of {m['classes_scored']} classes (gold ∪ predicted) "
            f"have F1 = 0; {m['rare_classes']} classes have under {RARE_SUPPORT} gold rows"
            + (f" (mean F1 {rare:.3f})" if rare is not None else "")
            + (f"; {m['gold_outside_label_space']} gold labels are outside the label space"
               if m["gold_outside_label_space"] else "") + ".")


def _consistency(run: Mapping[str, Any]) -> str:
    c = run["hierarchy_consistency"]
    if not c:
        return f"{run['name']}: n/a (no category and subcategory heads)"
    return f"{run['name']}: decoded {c['decoded']:.3f}, raw argmax {c['argmax']:.3f}"


def _plot(model_heads: Mapping[str, HeadPredictions],
          baseline_heads: Mapping[str, HeadPredictions], metrics: Mapping[str, Any],
          out_dir: Path) -> dict[str, str]:
    """One PNG per head: precision vs coverage, reliability diagram, per-class F1 by rank."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    runs = [("model", metrics["model"], model_heads)]
    if metrics["baseline"]:
        runs.append(("baseline", metrics["baseline"], baseline_heads))
    files = {}
    for head in model_heads:
        fig, (cov, rel, tail) = plt.subplots(1, 3, figsize=(15, 4.5))
        rank = {c["label"]: i for i, c in
                enumerate(metrics["model"]["heads"][head]["per_class"], 1)}
        for role, run, heads in runs:
            if head not in heads:
                continue
            pred, m = heads[head], run["heads"][head]
            order = np.argsort(-pred.confidence, kind="stable")
            running = np.cumsum(pred.correct[order]) / np.arange(1, len(order) + 1)
            label = f"{run['name']} ({role})"
            cov.plot(np.arange(1, len(order) + 1) / len(order), running, label=label)
            bins = m["reliability"]
            rel.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-",
                     label=f"{label}, ECE {m['ece']:.3f}")
            scored = [(rank[c["label"]], c["f1"]) for c in m["per_class"] if c["label"] in rank]
            tail.scatter(*zip(*scored, strict=True), s=8, label=label, alpha=0.7)
        cov.set(title=f"{head}: precision vs coverage", xlabel="coverage (most confident first)",
                ylabel="precision", ylim=(0, 1.02))
        rel.plot([0, 1], [0, 1], ":", color="grey")
        rel.set(title=f"{head}: reliability ({ECE_BINS} bins)", xlabel="confidence",
                ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
        tail.set(title=f"{head}: per-class F1", xlabel="class rank by gold support", ylabel="F1",
                 ylim=(-0.02, 1.02))
        for ax in (cov, rel, tail):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        files[head] = f"{head}.png"
        fig.savefig(out_dir / files[head], dpi=100)
        plt.close(fig)
    return files


def _parent(key: str) -> str:
    return key.split(KEY_SEPARATOR, 1)[0]


def _share(flags: Any) -> float:
    values = list(flags)
    return float(np.mean(values)) if values else 0.0


def _f(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
