"""Does the learning loop learn? Simulated officers correct a time-ordered stream, week by week.

    .venv/bin/python benchmarks/loop_bench.py                        # baseline learner, ~3 min
    .venv/bin/python benchmarks/loop_bench.py --every 300 --initial-weeks 3 --out runs/loop-bench
    .venv/bin/python benchmarks/loop_bench.py --learner router --preset quick     # hours on CPU

The Haikou 12345 tickets (data/datasets/haikou12345.yaml) are replayed in time order. A model is
trained on the first `--initial-weeks` weeks (the last of them is its dev split: calibration and
review thresholds), then each later week, day by day: the active model routes the day's
complaints; those it decides `review` are corrected by a simulated officer from the gold labels;
every `--every` corrections, the same code as `huying retrain` runs: `hold_out_recent` →
`training_set` (original data + corrections, test split frozen) → a candidate → `compare` with the
active model on the frozen test split (from 2018-04-16) and on the held-out newest corrections →
promoted only if the gate passes. After each week, the active model and a no-feedback control (the
initial model, never retrained) are scored on the FOLLOWING week, which neither has seen; the plot
shows that accuracy per head against the corrections received so far.

Learners:
- `baseline` (default): the TF-IDF + linear SVM baseline, seconds per retrain; `review` when the
  category or department confidence is below its per-class threshold, chosen on dev for
  `--target-precision` (exactly how a bundle's calibration decides).
- `router`: `training.pipeline.build_router` with `--preset` (`quick`: ~10 CPU-minutes per
  retrain on these data, 6 layers fine-tuned; `tiny` needs `--base` with a tiny encoder and only
  checks the plumbing). Decisions come from the bundle's own calibration.

Writes `--out`/loop.png (accuracy vs corrections), results.json and report.md.
"""

from __future__ import annotations

import os

# Modest CPU: one thread for BLAS; the baseline's solver is single-threaded anyway.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import date, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Protocol  # noqa: E402

import numpy as np  # noqa: E402

from model.calibration import Calibration  # noqa: E402
from model.hierarchy import decode  # noqa: E402
from training.baseline import BaselineConfig, train_baseline  # noqa: E402
from training.calibration import thresholds_for_precision  # noqa: E402
from training.datasets import Record, load_dataset  # noqa: E402
from training.gate import compare  # noqa: E402
from training.retrain import (  # noqa: E402
    SplitDataset,
    TrainingSet,
    correction_records,
    hold_out_recent,
    training_set,
)

REPO = Path(__file__).resolve().parent.parent
DATASET = REPO / "data" / "datasets" / "haikou12345.yaml"
DECISION_HEADS = ("category", "department")
HEADS = ("category", "subcategory", "department")


class Model(Protocol):
    name: str
    spaces: dict[str, tuple[str, ...]]

    def predict_proba(self, texts: Sequence[str]) -> dict[str, np.ndarray]: ...

    def route(self, texts: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
        """Per text: the decision (auto or review) and the answer per head."""


class CalibratedBaseline:
    """The TF-IDF baseline with review thresholds chosen on dev, as a bundle's calibration."""

    def __init__(self, model: Any, calibration: Calibration, name: str):
        self.model, self.calibration, self.name = model, calibration, name
        self.spaces = model.spaces

    def predict_proba(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return self.model.predict_proba(texts)

    def route(self, texts: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
        if not texts:
            return []
        ranked = decode(self.predict_proba(texts), self.spaces, k=1)
        return [(self.calibration.decide(
            {h: (self.spaces[h].index(row[h].label), row[h].confidence) for h in
             self.calibration.decision_heads}), {h: a.label for h, a in row.items()})
            for row in ranked]


def fit_baseline(ts: TrainingSet, name: str, target_precision: float,
                 config: BaselineConfig) -> CalibratedBaseline:
    taxonomy = ts.dataset.taxonomy
    spaces = {h: taxonomy.labels(h) for h in ts.dataset.heads}
    model = train_baseline(ts.train, spaces, config=config, name=name)
    heads = [h for h in DECISION_HEADS if h in model.spaces]
    probs = model.predict_proba([r.text for r in ts.dev])
    thresholds = {}
    for h in model.spaces:
        index = {label: j for j, label in enumerate(model.spaces[h])}
        targets = np.array([index.get(r.labels.get(h, ""), -1) for r in ts.dev])
        thresholds[h] = tuple(thresholds_for_precision(probs[h], targets, target_precision))
    calibration = Calibration(temperatures={h: 1.0 for h in model.spaces}, thresholds=thresholds,
                              decision_heads=tuple(heads), target_precision=target_precision)
    return CalibratedBaseline(model, calibration, name)


class RoutedBundle:
    """A bundle built by build_router, routed exactly as served."""

    def __init__(self, router: Any):
        self.router, self.name, self.spaces = router, router.name, router.spaces

    def predict_proba(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return self.router.predict_proba(texts)

    def route(self, texts: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
        return [(r.decision, {h: p.label for h, p in r.heads.items()})
                for r in self.router.route(texts)] if texts else []


def fit_router(ts: TrainingSet, name: str, args: argparse.Namespace) -> RoutedBundle:
    from model.router import Router
    from training.finetune import FinetuneConfig
    from training.pipeline import BuildOptions, build_router

    overrides = {"base": args.base} if args.base else {}
    config = FinetuneConfig.from_preset(args.preset, **overrides)
    bundle = build_router(ts.dataset, config, args.out / "bundles",
                          BuildOptions(version=name, target_precision=args.target_precision),
                          run_dir=args.out / "runs" / name)
    return RoutedBundle(Router(bundle))


def accuracy(model: Model, records: Sequence[Record]) -> dict[str, float]:
    ranked = decode(model.predict_proba([r.text for r in records]), model.spaces, k=1)
    out = {}
    for h in model.spaces:
        pairs = [(r.labels[h], row[h].label) for r, row in zip(records, ranked, strict=True)
                 if h in r.labels]
        if pairs:
            out[h] = round(float(np.mean([g == p for g, p in pairs])), 4)
    return out


def week_of(t: datetime) -> date:
    return (t - timedelta(days=t.weekday())).date()


def officer(record: Record, routed_on: datetime, model_right: bool) -> dict[str, Any]:
    """What a simulated officer submits: the gold labels (an accept when the model had them)."""
    return {"complaint_id": record.id, "text": record.raw_text or record.text,
            "kind": "accept" if model_right else "correct", **record.labels,
            "received_at": record.time, "submitted_at": routed_on + timedelta(hours=18)}


@dataclass
class Point:
    """Accuracy of both models on the week after `after_week`, and on the frozen test split."""

    after_week: str
    corrections: int
    scored_week: str
    scored_rows: int
    loop: dict[str, float]
    control: dict[str, float]
    ungated: dict[str, float]  # the latest candidate, promoted or not: what the gate cost
    loop_test: dict[str, float]
    control_test: dict[str, float]
    ungated_test: dict[str, float]
    loop_model: str


@dataclass
class Retrain:
    corrections: int
    trained_on: int
    held_out: int
    seconds: float
    passed: bool
    reasons: list[str] = field(default_factory=list)
    test: dict[str, Any] = field(default_factory=dict)


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    dataset = load_dataset(DATASET)
    test = dataset.split()["test"]
    test_start = min(r.time for r in test)
    current = sorted((r for r in dataset.records if "category" in r.labels and r.time),
                     key=lambda r: r.time)
    stream = [r for r in current if r.time < test_start]
    weeks: dict[date, list[Record]] = defaultdict(list)
    for r in stream:
        weeks[week_of(r.time)].append(r)
    order = sorted(weeks)
    if len(order) <= args.initial_weeks + 1:
        raise SystemExit(f"--initial-weeks {args.initial_weeks} leaves no stream to replay "
                         f"({len(order)} weeks before {test_start:%Y-%m-%d})")
    initial, replay = order[:args.initial_weeks], order[args.initial_weeks:]
    base_train = [r for w in initial[:-1] for r in weeks[w]]
    if args.with_older:  # the older-taxonomy tickets: department labels only
        base_train += [r for r in dataset.records if "category" not in r.labels]
    base = SplitDataset(config=dataset.config, taxonomy=dataset.taxonomy,
                        records=base_train + weeks[initial[-1]] + test,
                        splits={"train": base_train, "dev": list(weeks[initial[-1]]),
                                "test": test})
    # Scored weeks: each replayed week is scored after the one before it; the last replayed
    # week is followed by the first week of the frozen test split.
    following = {**{w: weeks[w] for w in replay}, **_weeks_of(test)}
    timeline = sorted(following)

    count = 0

    def fit(ts: TrainingSet) -> Model:
        nonlocal count
        count += 1
        name = f"loop-{count:02d}"
        if args.learner == "router":
            return fit_router(ts, name, args)
        return fit_baseline(ts, name, args.target_precision,
                            BaselineConfig(calibration_folds=args.calibration_folds))

    t = time.monotonic()
    control = model = fit(training_set(base, []))
    latest = [model]  # the newest candidate, whatever the gate said
    first_fit = time.monotonic() - t
    test_scores: dict[str, dict[str, float]] = {}

    def on_test(m: Model) -> dict[str, float]:
        if m.name not in test_scores:
            test_scores[m.name] = accuracy(m, test)
        return test_scores[m.name]

    corrections: list[dict[str, Any]] = []
    retrains: list[Retrain] = []
    points: list[Point] = []
    weekly: list[dict[str, Any]] = []

    def score(after: str, scored: date) -> None:
        rows = following[scored]
        loop = accuracy(model, rows)
        ungated = loop if latest[0] is model else accuracy(latest[0], rows)
        points.append(Point(after, len(corrections), scored.isoformat(), len(rows), loop,
                            accuracy(control, rows), ungated, on_test(model), on_test(control),
                            on_test(latest[0]), model.name))
        print(f"after {after}: {len(corrections)} corrections, {model.name}: "
              f"{points[-1].loop} | control {points[-1].control}", flush=True)

    score(initial[-1].isoformat() + " (initial)", replay[0])
    last_retrain = 0
    for w in replay:
        days: dict[date, list[Record]] = defaultdict(list)
        for r in weeks[w]:
            days[r.time.date()].append(r)
        reviewed = 0
        for day in sorted(days):
            rows = days[day]
            for r, (decision, answer) in zip(rows, model.route([r.text for r in rows]),
                                             strict=True):
                if decision == "review":
                    right = all(answer.get(h) == v for h, v in r.labels.items())
                    corrections.append(officer(r, datetime.combine(day, datetime.min.time()),
                                               right))
                    reviewed += 1
            if len(corrections) - last_retrain >= args.every:
                model, latest[0] = _retrain(base, corrections, model, test, fit, retrains,
                                            args)
                last_retrain = len(corrections)
        weekly.append({"week": w.isoformat(), "rows": len(weeks[w]), "reviewed": reviewed,
                       "review_share": round(reviewed / len(weeks[w]), 3)})
        nxt = timeline[timeline.index(w) + 1]
        score(w.isoformat(), nxt)
    seconds = time.monotonic() - started
    return {"learner": args.learner, "every": args.every, "initial_weeks": args.initial_weeks,
            "initial_rows": {"train": len(base_train), "dev": len(weeks[initial[-1]])},
            "stream_rows": sum(len(weeks[w]) for w in replay), "test_rows": len(test),
            "target_precision": args.target_precision, "holdout_share": args.holdout,
            "recent_weight": args.recent_weight,
            "gate": {"tolerance": args.tolerance,
                     "department_tolerance": args.department_tolerance,
                     "min_support": args.min_support, "significance": args.significance},
            "first_fit_seconds": round(first_fit, 1), "seconds": round(seconds, 1),
            "weekly": weekly, "retrains": [vars(r) for r in retrains],
            "points": [vars(p) for p in points]}


def _weeks_of(records: Sequence[Record]) -> dict[date, list[Record]]:
    out: dict[date, list[Record]] = defaultdict(list)
    for r in records:
        out[week_of(r.time)].append(r)
    first = min(out)
    return {first: out[first]}


def _retrain(base: SplitDataset, corrections: list[dict[str, Any]], model: Model,
             test: list[Record], fit: Any, retrains: list[Retrain],
             args: argparse.Namespace) -> tuple[Model, Model]:
    """(the active model after the gate, the candidate)."""
    t = time.monotonic()
    to_train, held = hold_out_recent(base, corrections, args.holdout)
    ts = training_set(base, to_train, recent_weight=args.recent_weight,
                      recent_days=args.recent_days)
    candidate = fit(ts)
    result = compare(candidate, model, test, correction_records(held),
                     tolerance=args.tolerance, department_tolerance=args.department_tolerance,
                     min_support=args.min_support, significance=args.significance)
    retrains.append(Retrain(len(corrections), len(ts.train), len(held),
                            round(time.monotonic() - t, 1), result.passed, result.reasons,
                            result.scores.get("test", {}).get("overall", {})))
    verdict = "promoted" if result.passed else f"rejected ({len(result.reasons)} reasons)"
    print(f"  retrain at {len(corrections)} corrections: {candidate.name} on {len(ts.train)} "
          f"rows, {verdict}, {retrains[-1].seconds} s", flush=True)
    return (candidate if result.passed else model), candidate


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = results["points"]
    x = [p["corrections"] for p in points]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), sharex=True)
    for col, head in enumerate(HEADS):
        for row, (suffix, title) in enumerate((("", "following week"),
                                                ("_test", "frozen test split"))):
            ax = axes[row][col]
            ax.plot(x, [p["loop" + suffix].get(head) for p in points], "o-",
                    label="with corrections (gated)")
            ax.plot(x, [p["ungated" + suffix].get(head) for p in points], ":", color="grey",
                    label="latest candidate (no gate)")
            ax.plot(x, [p["control" + suffix].get(head) for p in points], "s--",
                    label="no feedback (control)")
            for r in results["retrains"]:
                ax.axvline(r["corrections"], color="green" if r["passed"] else "red", alpha=0.25,
                           lw=1)
            ax.set(title=f"{head}: accuracy on the {title}", ylabel="accuracy")
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("corrections received (cumulative)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Learning loop, {results['learner']} learner: retrain every "
                 f"{results['every']} corrections (vertical lines: green promoted, red rejected "
                 "by the gate)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(results: dict[str, Any], command: str) -> str:
    first, last = results["points"][0], results["points"][-1]
    lines = [f"# Loop benchmark ({results['learner']} learner)", "", f"`{command}`", "",
             f"Initial model: {results['initial_rows']['train']} training rows, "
             f"{results['initial_rows']['dev']} dev rows ({results['initial_weeks']} weeks). "
             f"Stream: {results['stream_rows']} complaints; frozen test: "
             f"{results['test_rows']} rows. Retrain every {results['every']} corrections; "
             f"{results['seconds']} s in all.", "",
             "| after | corrections | scored week | rows | " + " | ".join(
                 f"{h} loop / control" for h in HEADS) + " |",
             "| --- | ---: | --- | ---: |" + " ---: |" * len(HEADS)]
    for p in results["points"]:
        lines.append(f"| {p['after_week']} | {p['corrections']} | {p['scored_week']} | "
                     f"{p['scored_rows']} | " + " | ".join(
                         f"{p['loop'].get(h, 0):.3f} / {p['control'].get(h, 0):.3f}"
                         for h in HEADS) + " |")
    lines += ["", "Frozen test split (gated loop / latest candidate, no gate / control):", "",
              "| corrections | " + " | ".join(HEADS) + " |", "| ---: |" + " ---: |" * len(HEADS)]
    for p in (first, last):
        lines.append(f"| {p['corrections']} | " + " | ".join(
            f"{p['loop_test'].get(h, 0):.3f} / {p['ungated_test'].get(h, 0):.3f} / "
            f"{p['control_test'].get(h, 0):.3f}" for h in HEADS) + " |")
    lines += ["", "Retrains:", "", "| corrections | trained on | held out | s | gate |",
              "| ---: | ---: | ---: | ---: | --- |"]
    for r in results["retrains"]:
        gate = "pass" if r["passed"] else "fail: " + "; ".join(r["reasons"][:2])
        lines.append(f"| {r['corrections']} | {r['trained_on']} | {r['held_out']} | "
                     f"{r['seconds']} | {gate} |")
    lines += ["", "Review share per week: " + ", ".join(
        f"{w['week']} {w['review_share']:.0%}" for w in results["weekly"]), "",
        "![loop](loop.png)", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--learner", choices=("baseline", "router"), default="baseline")
    parser.add_argument("--every", type=int, default=500, help="retrain every N corrections")
    parser.add_argument("--initial-weeks", type=int, default=4)
    parser.add_argument("--target-precision", type=float, default=0.95)
    parser.add_argument("--holdout", type=float, default=0.2,
                        help="newest share of corrections held out to judge candidates on")
    parser.add_argument("--recent-weight", type=int, default=1)
    parser.add_argument("--recent-days", type=int, default=14)
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--department-tolerance", type=float, default=0.03)
    parser.add_argument("--min-support", type=int, default=50)
    parser.add_argument("--significance", type=float, default=None,
                        help="gate: fail a drop only if significant at this level (McNemar)")
    parser.add_argument("--calibration-folds", type=int, default=3,
                        help="baseline learner: folds of its sigmoid calibration")
    parser.add_argument("--with-older", action="store_true",
                        help="add the older-taxonomy tickets (department only) to the initial data")
    parser.add_argument("--preset", default="quick", help="router learner: FinetuneConfig preset")
    parser.add_argument("--base", default=None, help="router learner: encoder directory")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "loop-bench")
    args = parser.parse_args(argv)
    if args.every < 1:
        parser.error("--every must be at least 1")
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(args)
    command = "python benchmarks/loop_bench.py " + " ".join(argv if argv is not None else
                                                            sys.argv[1:])
    results["command"] = command.strip()
    (args.out / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=1),
                                           encoding="utf-8")
    plot(results, args.out / "loop.png")
    (args.out / "report.md").write_text(report(results, results["command"]), encoding="utf-8")
    print(f"wrote {args.out / 'loop.png'}, results.json, report.md")


if __name__ == "__main__":
    main()
